//! The checks YAML types cannot express, each reported at the place it concerns.
//!
//! All problems are collected, so `sluice policy check` shows every one at once.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use globset::Glob;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{Config, ConnectionKind, Rule};

struct Collector<'a> {
    config: &'a Config,
    found: Vec<Diagnostic>,
}

impl Collector<'_> {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.config.source.clone(),
            line: spanned.referenced.line() as u32,
            column: spanned.referenced.column() as u32,
            message: message.into(),
        });
    }

    fn file(&mut self, message: impl Into<String>) {
        self.found.push(Diagnostic {
            file: self.config.source.clone(),
            line: 0,
            column: 0,
            message: message.into(),
        });
    }
}

/// Validates a loaded config; every problem found is returned.
pub fn validate(config: &Config) -> Result<(), Diagnostics> {
    let mut c = Collector {
        config,
        found: Vec::new(),
    };
    listeners(&mut c);
    providers(&mut c);
    let kinds = connections(&mut c);
    policies(&mut c, &kinds);
    approvals(&mut c);
    limits(&mut c);
    runtime(&mut c);
    if c.found.is_empty() {
        Ok(())
    } else {
        c.found.sort_by_key(|d| (d.line, d.column));
        Err(Diagnostics(c.found))
    }
}

fn limits(c: &mut Collector<'_>) {
    let l = &c.config.limits;
    let zero = [
        (
            "sessions_per_principal",
            l.sessions_per_principal == Some(0),
        ),
        (
            "auth_failures_per_address",
            l.auth_failures_per_address == Some(0),
        ),
        ("statements_per_query", l.statements_per_query == Some(0)),
        (
            "pending_approvals_per_principal",
            l.pending_approvals_per_principal == Some(0),
        ),
        (
            "auth_failure_window",
            l.auth_failure_window.is_some_and(|d| d.0.is_zero()),
        ),
    ];
    for (name, is_zero) in zero {
        if is_zero {
            c.file(format!("limits.{name} must be more than 0"));
        }
    }
}

fn runtime(c: &mut Collector<'_>) {
    if c.config.workers == Some(0) {
        c.file("workers must be more than 0");
    }
}

fn listeners(c: &mut Collector<'_>) {
    let listen = &c.config.listen;
    let all = [
        ("admin", &listen.admin),
        ("postgres", &listen.postgres),
        ("mysql", &listen.mysql),
        ("http", &listen.http),
    ];
    if all.iter().all(|(_, l)| l.is_none()) {
        c.file("`listen` names no listener; expected at least one of admin, postgres, mysql, http");
    }
    for (name, addr) in all {
        let Some(addr) = addr else { continue };
        match addr.value.parse::<SocketAddr>() {
            Err(_) => c.at(addr, format!("listen.{name}: `{}` is not an address; expected IP:PORT such as 127.0.0.1:6432", addr.value)),
            Ok(sock) if c.config.tls.is_none() && !is_loopback(sock.ip()) => c.at(
                addr,
                format!(
                    "listen.{name} is {sock}, off loopback, but `tls` is not configured; tokens travel as passwords, so listeners off loopback need TLS"
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn approvals(c: &mut Collector<'_>) {
    let approvals = &c.config.approvals;
    if let Some(url) = &approvals.console_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            c.file(format!(
                "approvals.console_url `{url}` must be an http:// or https:// URL"
            ));
        }
    }
    for hook in &approvals.webhooks {
        let v = &hook.value;
        if !(v.url.starts_with("https://") || is_loopback_url(&v.url)) {
            c.at(
                hook,
                format!(
                    "approvals webhook `{}` must be an https:// URL (plain http only on loopback)",
                    v.url
                ),
            );
        }
        if v.format == crate::model::WebhookFormat::Json && v.secret.is_none() {
            c.at(
                hook,
                format!(
                    "approvals webhook `{}`: format json needs a `secret` to sign it with",
                    v.url
                ),
            );
        }
    }
}

/// `http://127.x.x.x`, `http://localhost` or `http://[::1]`, with or without a port.
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // `http://127.0.0.1:80@evil.example/` is evil.example: credentials make the
    // authority ambiguous to a reader, and webhooks have no use for them.
    if host.contains('@') {
        return false;
    }
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

fn providers(c: &mut Collector<'_>) {
    let mut names = HashSet::new();
    for p in &c.config.identity.providers {
        let v = &p.value;
        if !names.insert(v.name.as_str()) {
            c.at(
                p,
                format!("identity provider `{}` is defined twice", v.name),
            );
        }
        if v.name == "apikey" {
            c.at(p, "the provider name `apikey` is reserved for API keys");
        }
        match (&v.issuer, &v.local) {
            (Some(_), Some(_)) => c.at(
                p,
                format!(
                    "provider `{}`: expected either `issuer` or `local`, not both",
                    v.name
                ),
            ),
            (None, None) => c.at(
                p,
                format!(
                    "provider `{}`: expected `issuer` (an OIDC issuer URL) or `local: {{}}`",
                    v.name
                ),
            ),
            (Some(issuer), None) => {
                if !(issuer.starts_with("https://")
                    || issuer.starts_with("http://127.")
                    || issuer.starts_with("http://localhost"))
                {
                    c.at(p, format!("provider `{}`: issuer `{issuer}` must be an https:// URL (plain http only on loopback)", v.name));
                }
                if v.audiences.is_empty() {
                    c.at(p, format!("provider `{}`: `audiences` is empty; expected the audiences tokens must carry", v.name));
                }
            }
            (None, Some(_)) => {}
        }
    }
}

fn connections(c: &mut Collector<'_>) -> Vec<(String, ConnectionKind)> {
    let mut seen = HashSet::new();
    let mut kinds = Vec::new();
    for conn in &c.config.connections {
        let v = &conn.value;
        if !seen.insert(v.name.clone()) {
            c.at(conn, format!("connection `{}` is defined twice", v.name));
        }
        kinds.push((v.name.clone(), v.kind));
        let scheme_ok = match v.kind {
            ConnectionKind::Postgres => {
                v.upstream.starts_with("postgres://") || v.upstream.starts_with("postgresql://")
            }
            ConnectionKind::Mysql => v.upstream.starts_with("mysql://"),
            ConnectionKind::Http | ConnectionKind::Kubernetes => {
                v.upstream.starts_with("https://") || v.upstream.starts_with("http://")
            }
        };
        if !scheme_ok {
            c.at(
                conn,
                format!(
                    "connection `{}`: upstream `{}` does not fit kind {}",
                    v.name,
                    v.upstream,
                    v.kind.as_str()
                ),
            );
        }
        if v.kind.is_sql() && v.token.is_some() {
            c.at(conn, format!("connection `{}`: `token` is for http and kubernetes; SQL connections take `password`", v.name));
        }
        if !v.kind.is_sql() && v.password.is_some() {
            c.at(conn, format!("connection `{}`: `password` is for SQL connections; http and kubernetes take `token`", v.name));
        }
        if v.kind.is_sql() && (v.client_cert.is_some() || v.client_key.is_some()) {
            c.at(conn, format!("connection `{}`: `client_cert` and `client_key` are for http and kubernetes connections", v.name));
        }
        if v.client_cert.is_some() != v.client_key.is_some() {
            c.at(
                conn,
                format!(
                    "connection `{}`: `client_cert` and `client_key` go together",
                    v.name
                ),
            );
        }
        if v.search_path.is_some() && v.kind != ConnectionKind::Postgres {
            c.at(
                conn,
                format!(
                    "connection `{}`: `search_path` applies to postgres connections only",
                    v.name
                ),
            );
        }
    }
    kinds
}

fn policies(c: &mut Collector<'_>, kinds: &[(String, ConnectionKind)]) {
    let mut names = HashSet::new();
    let providers: HashSet<&str> = c
        .config
        .identity
        .providers
        .iter()
        .map(|p| p.value.name.as_str())
        .collect();
    for policy in &c.config.policies {
        let p = &policy.value;
        if !names.insert(p.name.as_str()) {
            c.at(policy, format!("policy `{}` is defined twice", p.name));
        }
        let m = &p.matches.value;
        if m.subjects.is_empty() && m.roles.is_empty() && m.groups.is_empty() {
            c.at(&p.matches, format!("policy `{}`: `match` names no subjects, roles or groups; a policy for everyone must say so with a role", p.name));
        }
        if let Some(provider) = &m.provider {
            if !providers.contains(provider.as_str()) && provider != "apikey" {
                c.at(
                    &p.matches,
                    format!(
                        "policy `{}`: unknown provider `{provider}` in `match`",
                        p.name
                    ),
                );
            }
        }
        if p.connections.is_empty() {
            c.at(
                policy,
                format!("policy `{}`: `connections` is empty", p.name),
            );
        }
        let mut policy_kinds = Vec::new();
        for name in &p.connections {
            match kinds.iter().find(|(n, _)| *n == name.value) {
                Some((_, kind)) => policy_kinds.push(*kind),
                None => c.at(
                    name,
                    format!("policy `{}`: unknown connection `{}`", p.name, name.value),
                ),
            }
        }
        for (list, section) in [
            (&p.allow, "allow"),
            (&p.deny, "deny"),
            (&p.approve, "approve"),
        ] {
            for rule in list {
                check_rule(c, &p.name, section, rule, &policy_kinds);
            }
        }
        for mask in &p.mask {
            let m = &mask.value;
            let forms = [m.columns.is_some(), m.detect.is_some(), m.json.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if forms != 1 {
                c.at(
                    mask,
                    format!(
                        "policy `{}`: a mask rule needs exactly one of `columns`, `detect`, `json`",
                        p.name
                    ),
                );
            }
            for g in m.columns.iter().flatten() {
                check_glob(c, mask, &p.name, g);
                // `schema.table.column`; a leading `*` may stand for `schema.table`
                // (`*.card_number`: that column in every table).
                if !g.contains('.') {
                    c.at(mask, format!("policy `{}`: mask column `{g}` must be schema.table.column or *.column", p.name));
                }
            }
            if let Some(path) = &m.json {
                if !path.starts_with('$') {
                    c.at(
                        mask,
                        format!(
                            "policy `{}`: JSON path `{path}` must start with `$`",
                            p.name
                        ),
                    );
                }
            }
        }
    }
}

fn check_rule(
    c: &mut Collector<'_>,
    policy: &str,
    section: &str,
    rule: &Spanned<Rule>,
    kinds: &[ConnectionKind],
) {
    let r = &rule.value;
    let families = [
        r.has_sql_fields(),
        r.has_http_fields(),
        r.has_kubernetes_fields(),
    ];
    match families.iter().filter(|b| **b).count() {
        0 => c.at(rule, format!("policy `{policy}`: {section} rule names nothing to match; expected SQL (`actions`, `tables`, `functions`), HTTP (`methods`, `paths`) or Kubernetes (`verbs`, `resources`, ...) fields")),
        1 => {}
        _ => c.at(rule, format!("policy `{policy}`: {section} rule mixes SQL, HTTP and Kubernetes fields; write one rule per kind")),
    }
    let fits = (r.has_sql_fields() && kinds.iter().any(|k| k.is_sql()))
        || (r.has_http_fields() && kinds.contains(&ConnectionKind::Http))
        || (r.has_kubernetes_fields() && kinds.contains(&ConnectionKind::Kubernetes));
    if !kinds.is_empty() && families.iter().any(|b| *b) && !fits {
        c.at(
            rule,
            format!(
                "policy `{policy}`: {section} rule does not fit any of the policy's connections"
            ),
        );
    }
    if section != "deny" && r.has_sql_fields() && r.actions.is_none() && r.functions.is_none() {
        c.at(rule, format!("policy `{policy}`: {section} rule needs `actions` (or `functions`); only deny rules may apply to every action"));
    }
    if section == "approve" {
        match &r.approvers {
            None => c.at(
                rule,
                format!(
                    "policy `{policy}`: approve rule needs `approvers` (subjects, roles or groups)"
                ),
            ),
            Some(a) if a.is_empty() => c.at(
                rule,
                format!("policy `{policy}`: approve rule's `approvers` names nobody"),
            ),
            _ => {}
        }
        if r.min_approvals == Some(0) {
            c.at(
                rule,
                format!("policy `{policy}`: `min_approvals` must be at least 1"),
            );
        }
    } else if r.has_approval_fields() {
        c.at(rule, format!("policy `{policy}`: `approvers`, `mode`, `timeout` and `min_approvals` belong in approve rules, not {section}"));
    }
    if section == "deny" && r.secret_data.is_some() {
        c.at(rule, format!("policy `{policy}`: `secret_data` says what an allow or approve rule reveals; a deny rule lets nothing through"));
    }
    if r.non_resource_urls.is_some()
        && (r.resources.is_some()
            || r.api_groups.is_some()
            || r.namespaces.is_some()
            || r.names.is_some())
    {
        c.at(rule, format!("policy `{policy}`: a rule names either `non_resource_urls` or resources (`resources`, `api_groups`, `namespaces`, `names`), not both"));
    }
    for list in [
        &r.tables,
        &r.functions,
        &r.settings,
        &r.paths,
        &r.resources,
        &r.namespaces,
        &r.names,
        &r.non_resource_urls,
    ]
    .into_iter()
    .flatten()
    {
        for g in list {
            check_glob(c, rule, policy, g);
        }
    }
}

fn check_glob<T>(c: &mut Collector<'_>, at: &Spanned<T>, policy: &str, pattern: &str) {
    if let Err(e) = Glob::new(pattern) {
        c.at(
            at,
            format!(
                "policy `{policy}`: invalid pattern `{pattern}`: {}",
                e.kind()
            ),
        );
    }
}
