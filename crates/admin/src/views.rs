//! The JSON shapes the admin API and `sluice ... --json` share, with stable field names.

use sluice_store::{SessionEnd, SessionSummary};

/// A recorded session as listed: who, which connection, from where, how it stands.
pub fn session_summary(session: &SessionSummary) -> serde_json::Value {
    let (status, closed_at, reason) = match &session.end {
        SessionEnd::Open => ("open", None, None),
        SessionEnd::Closed { at, reason } => ("closed", Some(at.to_string()), Some(reason)),
        SessionEnd::LoginRefused { reason } => ("login_refused", None, Some(reason)),
    };
    serde_json::json!({
        "session_id": session.session_id,
        "opened_at": session.opened_at.to_string(),
        "principal": session.principal.as_ref().map(|p| serde_json::json!({
            "provider": p.provider, "subject": p.subject, "display_name": p.display_name,
        })),
        "connection": session.connection,
        "protocol": session.protocol,
        "client_addr": session.client_addr,
        "tls": session.tls,
        "events": session.events,
        "status": status,
        "closed_at": closed_at,
        "reason": reason,
    })
}
