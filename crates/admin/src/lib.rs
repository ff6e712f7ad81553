//! The admin API (DESIGN.md §7): REST under `/api/v1`, served by the admin listener
//! beside `/healthz`.
//!
//! Layout:
//! - [`auth`]: who is calling (a bearer token from a configured provider, or an API key)
//!   and whether `admins` in the config grants them the admin API;
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
//! - Every route but the OpenAPI document authenticates its caller through the same
//!   [`sluice_identity::Authenticator`] the data path uses; a caller `admins` does not name
//!   gets 403, whatever else it may do elsewhere.
//! - Read-only over the store: nothing here writes to the audit trail, and events leave
//!   exactly as stored (so a receiver can check their hashes itself).
//! - Store calls are synchronous; they run on blocking threads, never on the runtime's.

pub mod auth;
mod error;
pub mod openapi;
pub mod sessions;
pub mod since;
pub mod tls;
pub mod views;

use std::sync::Arc;

use axum::routing::get;
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
}

/// The `/api/v1` routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/export", get(sessions::export))
        .route("/api/v1/sessions/{id}", get(sessions::show))
        .route("/api/v1/sessions/{id}/verify", get(sessions::verify))
        .with_state(state)
}
