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
use sluice_admin::since::parse_since;

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
        let rows: Vec<serde_json::Value> = sessions
            .iter()
            .map(sluice_admin::views::session_summary)
            .collect();
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
