//! `sluice policy explain`: the decision for a statement, the rule that made it, the masks,
//! and which result columns the data path will mask (or why masking refuses the statement).
//!
//! Exit codes (DESIGN.md §1): 0 allow, 1 deny, 2 usage error, 3 needs approval. For a
//! string of several statements the strictest decision sets the code, because the gateway
//! runs none of them if any is refused.

use std::path::Path;

use anyhow::{bail, Result};
use sluice_config::ConnectionKind;
use sluice_core::{Principal, PrincipalKind};
use sluice_policy::{Decision, MaskSpec, MaskedColumn, PolicySet, Verdict};
use sluice_sql::{classify, SearchPath, StatementClass};

use crate::cli::Explain;
use crate::context::load_config;

pub fn run(config_path: &Path, args: &Explain) -> Result<u8> {
    let config = load_config(config_path)?;
    let Some(connection) = config.connection(&args.connection) else {
        bail!("unknown connection `{}`", args.connection);
    };
    match (connection.kind, &args.http) {
        (ConnectionKind::Http, None) => bail!(
            "connection `{}` is kind http: explain a request with --http 'METHOD /path'",
            connection.name
        ),
        (ConnectionKind::Kubernetes, None) => bail!(
            "connection `{}` is kind kubernetes: explain a request with --http 'METHOD /api/v1/...'",
            connection.name
        ),
        (ConnectionKind::Http | ConnectionKind::Kubernetes, Some(_)) => {}
        (_, Some(_)) => bail!(
            "connection `{}` is kind {}: explain a statement with --sql",
            connection.name,
            connection.kind.as_str()
        ),
        _ => {}
    }
    if connection.kind == ConnectionKind::Mysql {
        bail!(
            "connection `{}` is kind mysql: MySQL classification arrives with the MySQL data path",
            connection.name
        );
    }
    let sql = args.sql.as_deref().unwrap_or_default();
    let provider = match &args.provider {
        Some(p) => p.clone(),
        None => config
            .identity
            .providers
            .first()
            .map(|p| p.value.name.clone())
            .unwrap_or_else(|| "local".into()),
    };
    let principal = Principal {
        provider,
        subject: args.subject.clone(),
        tenant_id: None,
        display_name: args.subject.clone(),
        kind: PrincipalKind::App,
        roles: args.roles.clone(),
        groups: args.groups.clone(),
        token_id: None,
        expires_at: None,
    };
    let policies = PolicySet::compile(&config).map_err(anyhow::Error::msg)?;
    let session = policies.for_session(&principal, &connection.name);
    if let Some(request) = &args.http {
        let kubernetes = connection.kind == ConnectionKind::Kubernetes;
        return explain_http(
            request,
            &connection.name,
            kubernetes,
            &principal,
            &session,
            args.json,
        );
    }
    let search_path = connection
        .search_path
        .as_ref()
        .map(SearchPath::new)
        .unwrap_or_default();

    let classification = match classify(sql, &search_path) {
        Ok(c) => c,
        Err(err) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "decision": "deny", "reason": err.to_string(), "statements": [] })
                );
            } else {
                println!("decision: deny");
                println!("reason:   {err}");
            }
            return Ok(1);
        }
    };
    let verdicts: Vec<(&StatementClass, Verdict, Vec<MaskedColumn>)> = classification
        .statements
        .iter()
        .map(|s| {
            let verdict = session.decide_statement(s);
            let masked = if verdict.decision.is_deny() {
                Vec::new()
            } else {
                session.masked_columns(s)
            };
            (s, verdict, masked)
        })
        .collect();
    let overall = overall(&verdicts);

    if args.json {
        let statements: Vec<serde_json::Value> = verdicts
            .iter()
            .map(|(s, v, masked)| {
                serde_json::json!({
                    "statement": s.text,
                    "kind": s.kind,
                    "accesses": s.accesses,
                    "flows": s.flows,
                    "verdict": v,
                    "masked_columns": masked,
                    "message": v.decision.client_message(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "connection": connection.name,
            "principal": principal,
            "policies": session.policy_names(),
            "decision": overall_name(overall),
            "statements": statements,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_header(&principal, &session);
        for (i, (statement, verdict, masked)) in verdicts.iter().enumerate() {
            print_statement(i + 1, statement, verdict, masked);
        }
        if verdicts.is_empty() {
            println!("(no statements)");
        }
        println!("decision:   {}", overall_name(overall));
    }
    Ok(overall)
}

/// 0 allow, 1 deny, 3 approve; deny beats approve beats allow.
fn overall(verdicts: &[(&StatementClass, Verdict, Vec<MaskedColumn>)]) -> u8 {
    let mut code = 0;
    for (_, v, _) in verdicts {
        match v.decision {
            Decision::Deny { .. } => return 1,
            Decision::Approve { .. } => code = 3,
            Decision::Allow { .. } => {}
        }
    }
    code
}

fn overall_name(code: u8) -> &'static str {
    match code {
        0 => "allow",
        1 => "deny",
        _ => "approve",
    }
}

/// `--http 'METHOD /path'`: the request read as the gateway reads it (a target it would
/// refuse as ambiguous is a deny, as the gateway's 400 is), then judged.
fn explain_http(
    request: &str,
    connection: &str,
    kubernetes: bool,
    principal: &Principal,
    session: &sluice_policy::SessionPolicy,
    json: bool,
) -> Result<u8> {
    let Some((method, target)) = request.trim().split_once(' ') else {
        bail!("--http takes a method and a path, such as 'GET /v1/invoices/7'");
    };
    let target = match sluice_http::HttpTarget::parse(method, target.trim()) {
        Ok(target) => target,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "decision": "deny", "reason": format!("the gateway refuses this request (400): {e}") })
                );
            } else {
                println!("decision:   deny");
                println!("reason:     the gateway refuses this request (400): {e}");
            }
            return Ok(1);
        }
    };
    let refused = |reason: String| {
        if json {
            println!(
                "{}",
                serde_json::json!({ "decision": "deny", "reason": reason })
            );
        } else {
            println!("decision:   deny");
            println!("reason:     {reason}");
        }
        Ok(1)
    };
    let (verdict, kube_request, reveal_secret_data) = if kubernetes {
        let request = match sluice_http::kube::request_info(&target) {
            Ok(request) => request,
            Err(e) => return refused(format!("the gateway refuses this request (400): {e}")),
        };
        let judged = session.decide_kubernetes(&request);
        (judged.verdict, Some(request), judged.reveal_secret_data)
    } else {
        (
            session.decide_http(&target.method, &target.path),
            None,
            false,
        )
    };
    let secrets_masked =
        kube_request.as_ref().is_some_and(|r| r.is_secret()) && !reveal_secret_data;
    let code = match verdict.decision {
        Decision::Allow { .. } => 0,
        Decision::Deny { .. } => 1,
        Decision::Approve { .. } => 3,
    };
    if json {
        let doc = serde_json::json!({
            "connection": connection,
            "principal": principal,
            "policies": session.policy_names(),
            "decision": overall_name(code),
            "request": { "method": target.method, "path": target.path, "query": target.query },
            "kubernetes": kube_request,
            "secret_data": kube_request.as_ref().filter(|r| r.is_secret()).map(|_| if secrets_masked { "masked" } else { "revealed" }),
            "verdict": verdict,
            "message": verdict.decision.client_message(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_header(principal, session);
        println!();
        println!("request: {target}");
        if let Some(request) = &kube_request {
            println!("  kubernetes: {request}");
        }
        print_verdict(&verdict);
        if kube_request.as_ref().is_some_and(|r| r.is_secret()) && verdict.decision.is_allow() {
            println!(
                "  secret data: {}",
                if secrets_masked {
                    "masked (the rule does not say `secret_data: reveal`)"
                } else {
                    "revealed (`secret_data: reveal`)"
                }
            );
        }
        println!("decision:   {}", overall_name(code));
    }
    Ok(code)
}

fn print_statement(
    n: usize,
    statement: &StatementClass,
    verdict: &Verdict,
    masked: &[MaskedColumn],
) {
    println!();
    println!("statement {n}: {}", statement.text);
    let accesses: Vec<String> = statement.accesses.iter().map(|a| a.to_string()).collect();
    println!(
        "  accesses: {}",
        if accesses.is_empty() {
            "none".to_string()
        } else {
            accesses.join("; ")
        }
    );
    print_verdict(verdict);
    for m in masked {
        println!(
            "  masked:   column {} \u{2192} {} with {} (policy {})",
            m.column,
            m.output,
            m.with.as_str(),
            m.policy
        );
    }
}

/// Who is judged, and under which policies.
fn print_header(principal: &Principal, session: &sluice_policy::SessionPolicy) {
    let names = session.policy_names();
    println!(
        "principal:  {} (provider {}, roles [{}], groups [{}])",
        principal.subject,
        principal.provider,
        principal.roles.join(", "),
        principal.groups.join(", ")
    );
    println!(
        "policies:   {}",
        if names.is_empty() {
            "none match".to_string()
        } else {
            names.join(", ")
        }
    );
}

/// A decision with its rule, its approvers, and the masks that come with it.
fn print_verdict(verdict: &Verdict) {
    match &verdict.decision {
        Decision::Allow { rules } if rules.is_empty() => {
            println!("  decision: allow (transaction control is always allowed)")
        }
        Decision::Allow { rules } => {
            let rules: Vec<String> = rules
                .iter()
                .map(|r| format!("{r} (line {})", r.line))
                .collect();
            println!("  decision: allow by {}", rules.join("; "));
        }
        Decision::Deny { reason, rule } => {
            println!("  decision: deny: {reason}");
            match rule {
                Some(rule) => println!("  rule:     {rule} (line {})", rule.line),
                None => println!("  rule:     none allows it (default deny)"),
            }
        }
        Decision::Approve { reason, approval } => {
            println!("  decision: approve: {reason}");
            println!(
                "  rule:     {} (line {})",
                approval.rule, approval.rule.line
            );
            let a = &approval.approvers;
            println!(
                "  approvers: subjects [{}] roles [{}] groups [{}]; mode {}; timeout {}; min approvals {}",
                a.subjects.join(", "),
                a.roles.join(", "),
                a.groups.join(", "),
                approval.mode.as_str(),
                humantime::format_duration(approval.timeout),
                approval.min_approvals
            );
        }
    }
    for mask in &verdict.masks {
        match mask {
            MaskSpec::Column {
                column,
                with,
                policy,
            } => println!(
                "  mask:     column {column} with {} (policy {policy})",
                with.as_str()
            ),
            MaskSpec::Detect {
                detectors,
                with,
                policy,
            } => {
                let names: Vec<String> = detectors
                    .iter()
                    .map(|d| {
                        serde_json::to_value(d)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    })
                    .collect();
                println!(
                    "  mask:     values detected as {} with {} (policy {policy})",
                    names.join(", "),
                    with.as_str()
                )
            }
            MaskSpec::Json { path, with, policy } => println!(
                "  mask:     json {path} with {} (policy {policy})",
                with.as_str()
            ),
        }
    }
    if let Some(max) = verdict.limits.max_rows {
        println!("  limit:    max_rows {max}");
    }
    if let Some(t) = verdict.limits.statement_timeout {
        println!(
            "  limit:    statement_timeout {}",
            humantime::format_duration(t)
        );
    }
}
