//! HTTP requests judged on method and path, in the order every judgement follows: deny,
//! allow, approve, else refused; `*` stays within a path segment, `**` spans them.

use std::path::Path;

use sluice_core::{ApprovalMode, Principal, PrincipalKind};
use sluice_policy::{Decision, MaskSpec, PolicySet, SessionPolicy};

const CONFIG: &str = r#"
listen: { admin: 127.0.0.1:8470 }
identity:
  providers:
    - { name: local, local: {} }
connections:
  - { name: billing, kind: http, upstream: "https://billing.internal" }
  - { name: orders, kind: postgres, upstream: "postgres://svc@127.0.0.1/orders" }
policies:
  - name: billing-readers
    match: { roles: [reader] }
    connections: [billing, orders]
    allow:
      - { methods: [GET], paths: ["/v1/invoices/*", "/v1/customers/**"] }
      - { actions: [select], tables: ["public.*"] }
      - { methods: [get, head], paths: ["/health"] }
    deny:
      - { paths: ["/v1/customers/*/secrets"] }
    approve:
      - { methods: [DELETE], paths: ["/v1/invoices/*"], approvers: { groups: [finance] }, mode: ticket }
    mask:
      - { json: "$.items[*].email", with: email }
      - { detect: [credit_card], with: redact }
      - { columns: ["public.customers.email"], with: email }
"#;

fn session(roles: &[&str]) -> SessionPolicy {
    let config =
        sluice_config::load_str(CONFIG, Path::new("test.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let principal = Principal {
        provider: "local".into(),
        subject: "agent".into(),
        tenant_id: None,
        display_name: "agent".into(),
        kind: PrincipalKind::App,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        groups: vec![],
        token_id: None,
        expires_at: None,
    };
    PolicySet::compile(&config)
        .unwrap()
        .for_session(&principal, "billing")
}

#[test]
fn method_and_path_rules_decide_in_order() {
    let s = session(&["reader"]);
    assert!(s.decide_http("GET", "/v1/invoices/7").decision.is_allow());
    assert!(
        s.decide_http("HEAD", "/health").decision.is_allow(),
        "methods compare in upper case"
    );
    // `*` is one segment.
    assert!(s
        .decide_http("GET", "/v1/invoices/7/lines")
        .decision
        .is_deny());
    assert!(s.decide_http("GET", "/v1/invoices").decision.is_deny());
    // `**` spans segments.
    assert!(s
        .decide_http("GET", "/v1/customers/9/orders/3")
        .decision
        .is_allow());
    // Deny wins over allow.
    match s.decide_http("GET", "/v1/customers/9/secrets").decision {
        Decision::Deny { reason, rule } => {
            assert_eq!(reason, "GET /v1/customers/9/secrets is denied");
            assert_eq!(rule.unwrap().index, 1);
        }
        other => panic!("{other:?}"),
    }
    // Not allowed, approvable.
    match s.decide_http("DELETE", "/v1/invoices/7").decision {
        Decision::Approve { approval, reason } => {
            assert_eq!(approval.mode, ApprovalMode::Ticket);
            assert_eq!(approval.approvers.groups, ["finance"]);
            assert_eq!(reason, "DELETE /v1/invoices/7 requires approval");
        }
        other => panic!("{other:?}"),
    }
    // Neither: the default deny, naming no rule.
    match s.decide_http("POST", "/v1/invoices/7").decision {
        Decision::Deny { rule: None, reason } => assert!(reason.contains("not allowed")),
        other => panic!("{other:?}"),
    }
    // SQL rules never match a request, nor HTTP rules a statement.
    assert!(s.decide_http("GET", "/public/customers").decision.is_deny());
}

#[test]
fn response_masks_are_the_json_and_detector_ones() {
    let masks = session(&["reader"])
        .decide_http("GET", "/v1/invoices/7")
        .masks;
    assert_eq!(masks.len(), 2, "{masks:?}");
    assert!(masks
        .iter()
        .any(|m| matches!(m, MaskSpec::Json { path, .. } if path == "$.items[*].email")));
    assert!(masks.iter().any(|m| matches!(m, MaskSpec::Detect { .. })));
}

#[test]
fn a_principal_without_policies_gets_nothing() {
    assert!(session(&["stranger"])
        .decide_http("GET", "/v1/invoices/7")
        .decision
        .is_deny());
}
