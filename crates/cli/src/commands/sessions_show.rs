//! `sluice sessions show ID`: one recorded session, event by event, as a reader wants it:
//! who opened it from where, each request with its decision and rule, each result as the
//! agent saw it (masked) as a table, and how it ended. `--json` gives the events exactly
//! as stored.

use std::path::Path;

use anyhow::{bail, Result};
use sluice_audit::{Event, EventBody};

use crate::cli::SessionsShow;
use crate::context::{load_config, open_store};
use crate::output::table;

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
                println!("{:>6}{line}", "");
            }
            if !request.parameters.is_empty() {
                let values: Vec<String> = request
                    .parameters
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("${}={}", i + 1, v.as_deref().unwrap_or("NULL")))
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
            if !result.columns.is_empty() {
                let headers: Vec<&str> = result.columns.iter().map(String::as_str).collect();
                let rows: Vec<Vec<String>> = result
                    .rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
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
