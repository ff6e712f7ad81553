//! `sluice sessions list`: recorded sessions, one line each, oldest first.
//!
//! Reads the session summaries the store keeps beside the events (who, which connection,
//! from where, how it ended, how many events), filtered by principal, connection and
//! opening time. Works on the store directly, so it runs while the gateway does.

use std::path::Path;

use anyhow::Result;
use sluice_store::{SessionEnd, SessionFilter, SessionSummary};

use crate::cli::SessionsList;
use crate::context::{load_config, open_store};
use crate::output::{instant, table};
use crate::time_arg::parse_since;

pub fn run(config_path: &Path, args: &SessionsList) -> Result<u8> {
    let config = load_config(config_path)?;
    let since = args
        .since
        .as_deref()
        .map(|text| parse_since(text, time::OffsetDateTime::now_utc()))
        .transpose()?;
    let filter = SessionFilter {
        principal: args.principal.clone(),
        connection: args.connection.clone(),
        since,
    };
    let sessions = open_store(&config)?.list_sessions(&filter)?;
    if args.json {
        let rows: Vec<serde_json::Value> = sessions.iter().map(as_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let rows: Vec<Vec<String>> = sessions.iter().map(as_row).collect();
        table(
            &[
                "SESSION",
                "OPENED",
                "PRINCIPAL",
                "CONNECTION",
                "CLIENT",
                "EVENTS",
                "STATUS",
            ],
            &rows,
        );
    }
    Ok(0)
}

fn as_row(session: &SessionSummary) -> Vec<String> {
    let status = match &session.end {
        SessionEnd::Open => "open".to_owned(),
        SessionEnd::Closed { at, reason } => format!("closed {}: {reason}", instant(at)),
        SessionEnd::LoginRefused { reason } => format!("login refused: {reason}"),
    };
    vec![
        session.session_id.clone(),
        instant(&session.opened_at),
        session
            .principal
            .as_ref()
            .map_or_else(|| "-".to_owned(), |p| p.subject.clone()),
        session.connection.clone(),
        session.client_addr.clone(),
        session.events.to_string(),
        status,
    ]
}

fn as_json(session: &SessionSummary) -> serde_json::Value {
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
