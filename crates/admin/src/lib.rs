//! The admin API (DESIGN.md §7): REST under `/api/v1`, served by the admin listener
//! beside `/healthz`.
//!
//! Layout:
//! - [`auth`]: who is calling (a bearer token from a configured provider, or an API key)
//!   and whether `admins` in the config grants them the admin API;
//! - [`approvals`]: just-in-time approval: `GET /api/v1/approvals` (what concerns the
//!   caller), `/approvals/{id}`, `POST /approvals/{id}/approve` and `/deny`;
//! - [`console`]: the web console's approval page at `/approvals/{id}`, where links in
//!   notices and webhooks lead;
//! - [`sessions`]: the recorded audit trail: `GET /api/v1/sessions` (list, filtered),
//!   `/sessions/{id}` (its events as stored), `/sessions/{id}/verify` (its chain) and
//!   `/sessions/export` (JSON Lines for a SIEM);
//! - [`views`]: the JSON shapes the API and the command line share;
//! - [`since`]: how `since` is read (RFC 3339 or a duration back from now);
//! - [`openapi`]: the OpenAPI document at `/api/v1/openapi.json`;
//! - [`tls`]: the admin listener over TLS (the config's `tls`), handshakes off the
//!   accept path;
//! - `error`: errors in HTTP terms, always `{"error": "..."}`.
//!
//! Architecture invariants:
//! - Every route but the OpenAPI document and the console's static page authenticates its
//!   caller through the same [`sluice_identity::Authenticator`] the data path uses. The
//!   sessions routes are for principals `admins` names (403 for anyone else); the
//!   approvals routes serve any caller, each only what concerns them.
//! - Read-only over the audit trail: nothing here writes to it, and events leave exactly
//!   as stored (so a receiver can check their hashes itself). Approval decisions go
//!   through the broker, which checks who makes them.
//! - Store calls are synchronous; they run on blocking threads, never on the runtime's.

pub mod approvals;
pub mod auth;
pub mod console;
mod error;
pub mod openapi;
pub mod sessions;
pub mod since;
pub mod tls;
pub mod views;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use sluice_identity::Authenticator;
use sluice_store::Store;

pub use auth::Admins;
pub use error::ApiError;

/// What the admin API needs, shared by every request.
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub authenticator: Authenticator,
    pub admins: Admins,
    /// Just-in-time approval; `None` when the gateway runs without it.
    pub approvals: Option<Arc<sluice_approvals::Broker>>,
}

/// The `/api/v1` routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/export", get(sessions::export))
        .route("/api/v1/sessions/{id}", get(sessions::show))
        .route("/api/v1/sessions/{id}/verify", get(sessions::verify))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/approvals/{id}", get(approvals::show))
        .route("/api/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/api/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/approvals/{id}", get(console::approval_page))
        .with_state(state)
}
