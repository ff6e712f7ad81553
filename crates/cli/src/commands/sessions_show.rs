//! `sluice sessions show ID`: one recorded session, event by event, as a reader wants it:
//! who opened it from where, each request with its decision and rule, each result as the
//! agent saw it (masked) as a table, and how it ended. `--json` gives the events exactly
//! as stored.

use std::path::Path;

use anyhow::{bail, Result};
use sluice_audit::{Event, EventBody};

use crate::cli::SessionsShow;
use crate::context::{load_config, open_store};
use crate::output::{table, visible};

pub fn run(config_path: &Path, args: &SessionsShow) -> Result<u8> {
    let config = load_config(config_path)?;
    let events = open_store(&config)?.session_events(&args.session)?;
    if events.is_empty() {
        bail!("no recorded session {}", args.session);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(0);
    }
    println!("session {}", args.session);
    for event in &events {
        print_event(event);
    }
    Ok(0)
}

/// A serde enum's name as it is stored (`allow`, `postgres`).
fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One event as `sessions show` and `sessions replay` print it.
pub(crate) fn print_event(event: &Event) {
    let at = event.at.to_string();
    let head = format!("{:>4}  {at}", event.seq);
    match &event.body {
        EventBody::SessionOpened(opened) => {
            let p = &opened.principal;
            println!(
                "{head}  opened   {} ({}, provider {}) on {} ({}) from {}{}",
                p.subject,
                p.display_name,
                p.provider,
                opened.connection,
                word(&opened.protocol),
                opened.client_addr,
                if opened.tls { ", TLS" } else { "" }
            );
            if !p.roles.is_empty() || !p.groups.is_empty() {
                println!(
                    "{:>6}roles [{}], groups [{}]",
                    "",
                    p.roles.join(", "),
                    p.groups.join(", ")
                );
            }
        }
        EventBody::LoginRefused(refused) => println!(
            "{head}  login refused on {} ({}) from {}: {}",
            refused.connection,
            word(&refused.protocol),
            refused.client_addr,
            refused.reason
        ),
        EventBody::Request(request) => {
            let mut why = request.rule.clone().unwrap_or_default();
            if let Some(id) = &request.approval_id {
                why = format!("{why} approval {id}").trim().to_owned();
            }
            println!(
                "{head}  request  {}{}",
                word(&request.decision),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                }
            );
            for line in request.text.lines() {
                println!("{:>6}{}", "", visible(line));
            }
            if !request.parameters.is_empty() {
                let values: Vec<String> = request
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("${}={}", i + 1, visible(v.as_deref().unwrap_or("NULL"))))
                    .collect();
                println!("{:>6}-- with {}", "", values.join(", "));
            }
        }
        EventBody::Result(result) => {
            let summary = match &result.error {
                Some(error) => format!("error {} {}", error.code, error.message),
                None => format!(
                    "{} row{}, {} bytes{}",
                    result.row_count,
                    if result.row_count == 1 { "" } else { "s" },
                    result.bytes,
                    if result.truncated {
                        ", recorded in part"
                    } else {
                        ""
                    }
                ),
            };
            println!(
                "{head}  result   of {} after {:.1} ms: {summary}",
                result.request_seq,
                result.duration_us as f64 / 1000.0
            );
            if is_http_response(&result.columns) {
                print_http_response(result);
            } else if !result.columns.is_empty() {
                let headers: Vec<&str> = result.columns.iter().map(String::as_str).collect();
                let rows: Vec<Vec<String>> = result
                    .rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|v| v.as_deref().map(visible).unwrap_or_else(|| "NULL".into()))
                            .collect()
                    })
                    .collect();
                table(&headers, &rows);
            }
        }
        EventBody::SessionClosed(closed) => println!("{head}  closed   {}", closed.reason),
        EventBody::Purged(purged) => println!(
            "{head}  purged   {} sessions that ended before {}",
            purged.sessions, purged.before
        ),
        EventBody::ApprovalDecided(decided) => println!(
            "{head}  {}  approval {} by {} ({}) at {}: {}",
            if decided.verdict == sluice_core::Verdict::Approve {
                "approved"
            } else {
                "denied  "
            },
            decided.approval_id,
            decided.approver.subject,
            decided.approver.display_name,
            decided.decided_at,
            decided.reason
        ),
        EventBody::ApprovalResolved(resolved) => println!(
            "{head}  approval {} {}",
            resolved.approval_id, resolved.status
        ),
    }
}

/// HTTP and Kubernetes responses are recorded as one row `(status, body)`, upgraded
/// streams as one row per direction `(stream, bytes)`: shown as an exchange, not a table.
fn is_http_response(columns: &[String]) -> bool {
    matches!(
        columns
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["status", "body"] | ["stream", "bytes"]
    )
}

/// Lines of a recorded body shown before the rest is summed up.
const BODY_LINES: usize = 40;

fn print_http_response(result: &sluice_audit::StatementResult) {
    for row in &result.rows {
        let (Some(Some(first)), Some(second)) = (row.first(), row.get(1)) else {
            continue;
        };
        let body = second.as_deref().unwrap_or("");
        if result.columns[0] == "status" {
            println!("{:>6}HTTP {}", "", visible(first));
        } else {
            println!("{:>6}{}:", "", visible(first));
        }
        // JSON is shown indented; anything else as it came.
        let shown = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.to_string());
        let lines: Vec<&str> = shown.lines().collect();
        for line in lines.iter().take(BODY_LINES) {
            println!("{:>8}{}", "", visible(line));
        }
        if lines.len() > BODY_LINES {
            println!("{:>8}... ({} more lines)", "", lines.len() - BODY_LINES);
        }
    }
}
