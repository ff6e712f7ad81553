//! The policy engine's semantics (DESIGN.md §1), judged on classified SQL.

use std::path::Path;

use sluice_config::ApprovalMode;
use sluice_core::{Principal, PrincipalKind};
use sluice_policy::{Decision, MaskSpec, PolicySet, SessionPolicy};
use sluice_sql::{classify, SearchPath};

const CONFIG: &str = r#"
listen: { admin: 127.0.0.1:8470 }
identity:
  providers:
    - { name: local, local: {} }
    - { name: entra, issuer: "https://login.microsoftonline.com/t/v2.0", audiences: [api://sluice] }
connections:
  - { name: app, kind: postgres, upstream: "postgres://svc@127.0.0.1/app" }
  - { name: other, kind: postgres, upstream: "postgres://svc@127.0.0.1/other" }
policies:
  - name: readers
    match: { roles: [reader] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
      - { functions: ["public.safe_*"] }
    deny:
      - { tables: ["public.secrets"] }
    approve:
      - actions: [update, delete]
        tables: ["public.orders"]
        approvers: { groups: [dba] }
        mode: ticket
        timeout: 5m
        min_approvals: 2
      - { actions: [delete], tables: ["public.payroll"], approvers: { groups: [cfo] } }
    mask:
      - { columns: ["public.customers.email"], with: email }
      - { columns: ["*.card_number"], with: last4 }
      - { detect: [credit_card], with: redact }
    limits: { max_rows: 100, statement_timeout: 30s }
  - name: writers
    match: { provider: entra, groups: [writers] }
    connections: [app]
    allow:
      - { actions: [insert, update], tables: ["public.orders"] }
      - { actions: [set], settings: [role] }
      - { actions: [function], functions: [pg_catalog.pg_read_file] }
    limits: { max_rows: 50 }
  - name: ddl-everywhere
    match: { subjects: [migrator] }
    connections: [app]
    allow:
      - { actions: [ddl, procedural] }
      - { functions: ["pg_catalog.*"] }
    deny:
      - { tables: ["public.secrets"] }
"#;

fn policies() -> PolicySet {
    let config = sluice_config::load_str(CONFIG, Path::new("test.yaml")).expect("valid config");
    PolicySet::compile(&config).expect("compiles")
}

fn principal(provider: &str, subject: &str, roles: &[&str], groups: &[&str]) -> Principal {
    Principal {
        provider: provider.into(),
        subject: subject.into(),
        tenant_id: None,
        display_name: subject.into(),
        kind: PrincipalKind::App,
        roles: roles.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        token_id: None,
        expires_at: None,
    }
}

fn decide(session: &SessionPolicy, sql: &str) -> Decision {
    let class = classify(sql, &SearchPath::default()).expect("parses");
    assert_eq!(class.statements.len(), 1);
    let verdict = session.decide_statement(&class.statements[0]);
    // The data path asks for the decision alone: it must be the same one.
    assert_eq!(
        format!("{:?}", session.decide(&class.statements[0])),
        format!("{:?}", verdict.decision),
        "{sql}"
    );
    verdict.decision
}

fn reader() -> SessionPolicy {
    policies().for_session(&principal("local", "agent", &["reader"], &[]), "app")
}

#[test]
fn policies_apply_by_match_and_connection() {
    let set = policies();
    assert_eq!(
        set.for_session(&principal("local", "a", &["reader"], &[]), "app")
            .policy_names(),
        vec!["readers"]
    );
    assert!(set
        .for_session(&principal("local", "a", &["reader"], &[]), "other")
        .is_empty());
    // `writers` names its provider: the same group from another provider does not match.
    assert!(set
        .for_session(&principal("local", "a", &[], &["writers"]), "app")
        .is_empty());
    assert_eq!(
        set.for_session(&principal("entra", "a", &[], &["writers"]), "app")
            .policy_names(),
        vec!["writers"]
    );
    assert_eq!(
        set.for_session(&principal("local", "migrator", &[], &[]), "app")
            .policy_names(),
        vec!["ddl-everywhere"]
    );
}

#[test]
fn default_deny_allow_and_deny_wins() {
    let s = reader();
    assert!(decide(&s, "SELECT * FROM orders").is_allow());
    assert!(decide(&s, "SELECT 1").is_allow());
    match decide(&s, "SELECT * FROM orders JOIN secrets ON true") {
        Decision::Deny {
            rule: Some(rule), ..
        } => assert_eq!((rule.policy.as_str(), rule.index), ("readers", 1)),
        other => panic!("{other:?}"),
    }
    match decide(&s, "INSERT INTO orders VALUES (1)") {
        Decision::Deny { rule: None, reason } => {
            assert!(reason.contains("insert on table public.orders"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // No policy at all: everything is refused, even SELECT 1.
    let nobody = policies().for_session(&principal("local", "x", &[], &[]), "app");
    assert!(decide(&nobody, "SELECT 1").is_deny());
}

#[test]
fn transaction_control_is_always_allowed() {
    let nobody = policies().for_session(&principal("local", "x", &[], &[]), "app");
    for sql in [
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT s",
        "RELEASE s",
        "ROLLBACK TO s",
    ] {
        assert!(decide(&nobody, sql).is_allow(), "{sql}");
    }
    assert!(decide(&nobody, "COMMIT PREPARED 'x'").is_deny());
}

#[test]
fn approve_rules_hold_what_allow_rules_leave() {
    match decide(&reader(), "DELETE FROM orders WHERE id = 1") {
        Decision::Approve { approval, reason } => {
            assert_eq!(approval.mode, ApprovalMode::Ticket);
            assert_eq!(approval.timeout.as_secs(), 300);
            assert_eq!(approval.min_approvals, 2);
            assert_eq!(approval.approvers.groups, vec!["dba"]);
            assert!(reason.contains("requires approval"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Part of the statement is neither allowed nor approvable: refused outright.
    assert!(decide(
        &reader(),
        "DELETE FROM orders WHERE id IN (SELECT id FROM secrets)"
    )
    .is_deny());
    assert!(decide(
        &reader(),
        "WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO audit SELECT * FROM d"
    )
    .is_deny());
    // Parts under two approve rules: one rule's approvers must not approve the other's.
    assert!(matches!(
        decide(&reader(), "DELETE FROM payroll WHERE id = 1"),
        Decision::Approve { .. }
    ));
    match decide(
        &reader(),
        "WITH p AS (DELETE FROM payroll RETURNING 1) DELETE FROM orders",
    ) {
        Decision::Deny { reason, rule } => {
            assert!(reason.contains("two rules"), "{reason}");
            assert!(rule.is_some());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn functions_need_rules_and_dangerous_ones_need_their_name() {
    let s = reader();
    assert!(decide(&s, "SELECT safe_total(1)").is_allow());
    assert!(decide(&s, "SELECT other_fn(1)").is_deny());
    assert!(decide(&s, "SELECT lower(name) FROM customers").is_allow());
    let writer = policies().for_session(&principal("entra", "w", &[], &["writers"]), "app");
    assert!(decide(&writer, "SELECT pg_read_file('/etc/hosts')").is_allow());
    assert!(decide(&writer, "SET ROLE admin").is_allow());
    // `pg_catalog.*` is a glob: it covers ordinary built-ins but never a dangerous one.
    let migrator = policies().for_session(&principal("local", "migrator", &[], &[]), "app");
    assert!(decide(&migrator, "SELECT current_setting('work_mem')").is_allow());
    match decide(&migrator, "SELECT pg_read_file('/etc/passwd')") {
        Decision::Deny { reason, .. } => {
            assert!(reason.contains("needs a rule that names it"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_objects_fail_closed_against_deny_rules() {
    let migrator = policies().for_session(&principal("local", "migrator", &[], &[]), "app");
    // DDL on named objects: judged by name.
    assert!(decide(&migrator, "DROP TABLE orders").is_allow());
    assert!(decide(&migrator, "DROP TABLE secrets").is_deny());
    // A DO block could touch public.secrets; the deny rule names objects, so it is refused
    // even though procedural code is allowed.
    match decide(&migrator, "DO $$ BEGIN PERFORM 1; END $$") {
        Decision::Deny {
            reason,
            rule: Some(rule),
        } => {
            assert!(reason.contains("cannot tell which object"), "{reason}");
            assert_eq!(rule.policy, "ddl-everywhere");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn masks_follow_the_tables_read_and_limits_take_the_strictest() {
    let set = policies();
    let both = set.for_session(&principal("entra", "a", &["reader"], &["writers"]), "app");
    assert_eq!(both.limits.max_rows, Some(50));
    assert_eq!(both.limits.statement_timeout.map(|d| d.as_secs()), Some(30));
    let class = classify("SELECT * FROM customers", &SearchPath::default()).unwrap();
    let verdict = both.decide_statement(&class.statements[0]);
    let columns: Vec<&str> = verdict
        .masks
        .iter()
        .filter_map(|m| match m {
            MaskSpec::Column { column, .. } => Some(column.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(columns, vec!["public.customers.email", "*.card_number"]);
    assert!(verdict
        .masks
        .iter()
        .any(|m| matches!(m, MaskSpec::Detect { .. })));
    let class = classify("SELECT * FROM orders", &SearchPath::default()).unwrap();
    let verdict = both.decide_statement(&class.statements[0]);
    assert!(!verdict.masks.iter().any(
        |m| matches!(m, MaskSpec::Column { column, .. } if column == "public.customers.email")
    ));
}

#[test]
fn execute_cannot_be_judged_alone() {
    match decide(&reader(), "EXECUTE p") {
        Decision::Deny { reason, .. } => assert!(reason.contains("prepared earlier"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn formatting_settings_need_no_rule_but_others_do() {
    let s = reader();
    assert!(decide(&s, "SET extra_float_digits = 3").is_allow());
    assert!(decide(&s, "SET application_name = 'PostgreSQL JDBC Driver'").is_allow());
    assert!(decide(&s, "SHOW TimeZone").is_allow());
    assert!(decide(&s, "SET statement_timeout = 0").is_deny());
    assert!(decide(&s, "SET search_path TO other").is_deny());
    assert!(decide(&s, "SET client_encoding TO 'UTF8'").is_deny());
}
