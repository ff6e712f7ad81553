//! `sluice approvals list|show|approve|deny`: the approver's side of just-in-time
//! approval (DESIGN.md §5).
//!
//! These talk to a running gateway's admin API (`--gateway`, default
//! `http://127.0.0.1:8470`) with the caller's own token (`--token` or `SLUICE_TOKEN`):
//! a decision must reach the gateway holding the statement, and is made in the name of
//! whoever the token says, with every check (an approver, a person, not their own
//! request) made by the gateway. Exit 0 on success, 1 when the gateway refuses (not an
//! approver, already decided, unknown id), 2 when it cannot be asked.

use anyhow::{Context, Result};
use sluice_approvals::ApprovalView;
use sluice_core::Verdict;

use crate::cli::{ApprovalsDecide, ApprovalsList, ApprovalsShow, GatewayArgs};
use crate::output::{table, visible};

pub fn list(args: &ApprovalsList) -> Result<u8> {
    let mut path = format!("/api/v1/approvals?status={}", args.status);
    if let Some(connection) = &args.connection {
        path.push_str(&format!("&connection={}", url_escape(connection)));
    }
    let approvals: Vec<ApprovalView> = match call(&args.gateway, reqwest::Method::GET, &path, None)?
    {
        Ok(body) => serde_json::from_str(&body).context("reading the gateway's answer")?,
        Err(refused) => return Ok(refused.report()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&approvals)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = approvals
        .iter()
        .map(|a| {
            vec![
                visible(&a.id),
                a.status.to_string(),
                a.mode.as_str().to_string(),
                visible(&a.principal.subject),
                visible(&a.connection),
                format!("{}/{}", a.approvals, a.min_approvals),
                a.requested_at.clone(),
                visible(&one_line(&a.statement, 60)),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "MODE",
            "PRINCIPAL",
            "CONNECTION",
            "APPROVALS",
            "REQUESTED",
            "STATEMENT",
        ],
        &rows,
    );
    Ok(0)
}

pub fn show(args: &ApprovalsShow) -> Result<u8> {
    let path = format!("/api/v1/approvals/{}", url_escape(&args.id));
    match call(&args.gateway, reqwest::Method::GET, &path, None)? {
        Ok(body) => print_one(&body, args.json),
        Err(refused) => Ok(refused.report()),
    }
}

pub fn decide(args: &ApprovalsDecide, verdict: Verdict) -> Result<u8> {
    let path = format!(
        "/api/v1/approvals/{}/{}",
        url_escape(&args.id),
        verdict.as_str()
    );
    let body = serde_json::json!({ "reason": args.reason });
    match call(&args.gateway, reqwest::Method::POST, &path, Some(body))? {
        Ok(body) => print_one(&body, args.json),
        Err(refused) => Ok(refused.report()),
    }
}

fn print_one(body: &str, json: bool) -> Result<u8> {
    let a: ApprovalView = serde_json::from_str(body).context("reading the gateway's answer")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(0);
    }
    // Text the agent wrote (the statement, its values, names in the reason) is printed
    // with control and direction-changing characters made visible, so it cannot redraw
    // the approver's terminal or pass itself off as another field.
    println!("approval    {}", visible(&a.id));
    println!("status      {}", a.status);
    println!(
        "mode        {} ({} of {} approvals)",
        a.mode.as_str(),
        a.approvals,
        a.min_approvals
    );
    println!(
        "principal   {} ({}, {})",
        visible(&a.principal.subject),
        visible(&a.principal.display_name),
        visible(&a.principal.provider)
    );
    println!("connection  {}", visible(&a.connection));
    println!("reason      {}", visible(&a.reason));
    println!("rule        {}", visible(&a.rule));
    println!("requested   {}", a.requested_at);
    println!("decide by   {}", a.expires_at);
    if let Some(until) = &a.grant_expires_at {
        println!("grant until {until}");
    }
    for (n, line) in a.statement.split('\n').enumerate() {
        let head = if n == 0 { "statement" } else { "" };
        println!("{head:<11} | {}", visible(line));
    }
    for (i, value) in a.parameters.iter().enumerate() {
        let head = if i == 0 { "parameters" } else { "" };
        match value {
            Some(v) => println!(
                "{head:<11} ${} = '{}'",
                i + 1,
                visible(&v.replace('\'', "''"))
            ),
            None => println!("{head:<11} ${} = NULL", i + 1),
        }
    }
    for d in &a.decisions {
        println!(
            "decision    {} by {} at {}: {}",
            d.verdict.as_str(),
            visible(&d.approver.subject),
            d.at,
            visible(&d.reason)
        );
    }
    println!("console     {}", visible(&a.console_url));
    Ok(0)
}

/// The gateway said no: its status and message.
struct Refused {
    status: reqwest::StatusCode,
    message: String,
}

impl Refused {
    fn report(&self) -> u8 {
        eprintln!(
            "sluice: the gateway refused ({}): {}",
            self.status, self.message
        );
        1
    }
}

/// Calls the admin API. `Err` when the gateway cannot be asked; `Ok(Err)` when it
/// answered with an error.
fn call(
    gateway: &GatewayArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<Result<String, Refused>> {
    let url = format!("{}{path}", gateway.gateway.trim_end_matches('/'));
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(ca) = &gateway.ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        client = client.add_root_certificate(cert);
    }
    let client = client.build().context("setting up the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut request = client.request(method, &url).bearer_auth(&gateway.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", gateway.gateway))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        if status.is_success() {
            return Ok(Ok(text));
        }
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        Ok(Err(Refused { status, message }))
    })
}

/// A statement on one line, cut at `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max - 1).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// Percent-escapes what a path segment or query value must not carry raw.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
