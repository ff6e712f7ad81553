//! What the store keeps of the audit trail besides the events themselves: one summary row
//! per session, for listing, and the filter `sluice sessions list` passes.
//!
//! Events and checkpoints are stored as `sluice-audit` defines them ([`sluice_audit::Event`],
//! [`sluice_audit::Checkpoint`]) and come back unchanged, so verification reads exactly what
//! was recorded. A [`SessionSummary`] is different: it is an index derived from a session's
//! opening, refused-login and closing events, written in the same transaction as they are,
//! convenient to list and filter but never what verification relies on.

use sluice_audit::{Protocol, Timestamp};

/// One session as `sessions list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub session_id: String,
    /// When the session was opened, or the login refused.
    pub opened_at: Timestamp,
    /// Who the session ran as; `None` for a refused login, which has no principal.
    pub principal: Option<SessionPrincipal>,
    /// The connection the session was for (for a refused login: as the agent asked).
    pub connection: String,
    pub protocol: Protocol,
    /// The agent's address as the listener saw it.
    pub client_addr: String,
    /// Whether the agent's side was encrypted (false for a refused login, which does not
    /// record it).
    pub tls: bool,
    pub end: SessionEnd,
    /// Events recorded for the session so far.
    pub events: u64,
}

/// The identity a session ran as, as much of it as listing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPrincipal {
    pub provider: String,
    pub subject: String,
    pub display_name: String,
}

/// How a session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// No closing event is recorded: still running, or the gateway stopped without
    /// recording one (a crash).
    Open,
    Closed {
        at: Timestamp,
        reason: String,
    },
    /// The login was refused; the session is that one event.
    LoginRefused {
        reason: String,
    },
}

/// Which sessions [`Store::list_sessions`](crate::Store::list_sessions) returns; every
/// field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Sessions whose principal has this subject or this display name, exactly.
    pub principal: Option<String>,
    /// Sessions for this connection, exactly.
    pub connection: Option<String>,
    /// Sessions opened (or logins refused) at or after this time.
    pub since: Option<Timestamp>,
}
