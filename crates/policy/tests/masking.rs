//! Masked columns leave a statement only as result columns of their own (DESIGN.md §4):
//! every other way out is refused, with the column and the mask's policy named.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_config::MaskStrategy;
use sluice_core::{Principal, PrincipalKind};
use sluice_policy::{Decision, PolicySet, Section, SessionPolicy, Verdict};
use sluice_sql::{classify, SearchPath, StatementClass, Usage};

const CONFIG: &str = r#"
listen: { admin: 127.0.0.1:8470 }
identity:
  providers:
    - { name: local, local: {} }
connections:
  - { name: app, kind: postgres, upstream: "postgres://svc@127.0.0.1/app" }
policies:
  - name: masked-readers
    match: { roles: [masked-reader] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
      - { actions: [insert, update, delete, copy_out, ddl], tables: ["public.*"] }
    mask:
      - { columns: ["public.customers.email"], with: email }
      - { columns: ["*.card_number"], with: last4 }
      - { detect: [us_ssn], with: redact }
  - name: strict-readers
    match: { roles: [strict-reader] }
    connections: [app]
    mask_predicates: refuse
    allow:
      - { actions: [select], tables: ["public.*"] }
    mask:
      - { columns: ["public.customers.ssn"], with: redact }
  - name: approvers-only
    match: { roles: [writer] }
    connections: [app]
    approve:
      - { actions: [select], tables: ["public.*"], approvers: { groups: [dba] } }
    mask:
      - { columns: ["public.customers.email"], with: hash }
"#;

fn principal(roles: &[&str]) -> Principal {
    Principal {
        provider: "local".into(),
        subject: "agent".into(),
        tenant_id: None,
        display_name: "agent".into(),
        kind: PrincipalKind::App,
        roles: roles.iter().map(|s| s.to_string()).collect(),
        groups: Vec::new(),
        token_id: None,
        expires_at: None,
    }
}

fn session(roles: &[&str]) -> SessionPolicy {
    let config = sluice_config::load_str(CONFIG, Path::new("test.yaml")).expect("valid config");
    PolicySet::compile(&config)
        .expect("compiles")
        .for_session(&principal(roles), "app")
}

fn statement(sql: &str) -> StatementClass {
    let class = classify(sql, &SearchPath::default()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    assert_eq!(class.statements.len(), 1, "{sql}");
    class.statements[0].clone()
}

fn verdict(session: &SessionPolicy, sql: &str) -> Verdict {
    session.decide_statement(&statement(sql))
}

/// The refusal's reason, after checking that a mask rule of `policy` made it.
fn refused(session: &SessionPolicy, sql: &str, policy: &str) -> String {
    match verdict(session, sql).decision {
        Decision::Deny {
            reason,
            rule: Some(rule),
        } => {
            assert_eq!(rule.section, Section::Mask, "{sql}: {reason}");
            assert_eq!(rule.policy, policy, "{sql}: {reason}");
            reason
        }
        other => panic!("{sql}: expected a masking refusal, got {other:?}"),
    }
}

#[test]
fn direct_columns_are_allowed_and_masked() {
    let s = session(&["masked-reader"]);
    for sql in [
        "SELECT email FROM customers",
        "SELECT c.email AS contact FROM customers c",
        "SELECT * FROM customers",
        "SELECT * FROM (SELECT email FROM customers) s",
        "WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        "SELECT email FROM customers WHERE email LIKE '%x' ORDER BY email",
        "SELECT upper(name) FROM customers",
        "SELECT count(*) FROM customers",
    ] {
        assert!(verdict(&s, sql).decision.is_allow(), "{sql}");
    }
    let masked = s.masked_columns(&statement("SELECT c.email AS contact FROM customers c"));
    assert_eq!(masked.len(), 1);
    assert_eq!(masked[0].column, "public.customers.email");
    assert_eq!(masked[0].output, "contact");
    assert_eq!(masked[0].with, MaskStrategy::Email);
    assert_eq!(masked[0].policy, "masked-readers");
    let masked = s.masked_columns(&statement("SELECT * FROM customers"));
    let columns: Vec<&str> = masked.iter().map(|m| m.column.as_str()).collect();
    assert_eq!(
        columns,
        ["public.customers.email", "public.customers.card_number"]
    );
}

#[test]
fn expressions_whole_rows_and_set_operations_are_refused() {
    let s = session(&["masked-reader"]);
    let reason = refused(&s, "SELECT upper(email) FROM customers", "masked-readers");
    assert_eq!(
        reason,
        "public.customers.email is masked and cannot leave through an expression (function, operator, cast, aggregate, subquery); select the column itself"
    );
    for sql in [
        "SELECT email || '' FROM customers",
        "SELECT email::varchar(20) FROM customers",
        "SELECT max(email) FROM customers",
        "SELECT (SELECT email FROM customers LIMIT 1)",
        "SELECT upper(x) FROM (SELECT email AS x FROM customers) s",
        "SELECT right(card_number, 4) FROM orders",
    ] {
        let reason = refused(&s, sql, "masked-readers");
        assert!(reason.contains("through an expression"), "{sql}: {reason}");
    }
    for sql in [
        "SELECT c FROM customers c",
        "SELECT row_to_json(c) FROM customers c",
        "SELECT c::text FROM customers c",
    ] {
        let reason = refused(&s, sql, "masked-readers");
        assert!(reason.contains("whole row"), "{sql}: {reason}");
    }
    let reason = refused(
        &s,
        "SELECT email FROM customers UNION SELECT name FROM customers",
        "masked-readers",
    );
    assert!(reason.contains("UNION"), "{reason}");
    // `*.card_number` may be a column of any table: no whole row may leave.
    let reason = refused(&s, "SELECT row_to_json(o) FROM secrets o", "masked-readers");
    assert!(
        reason.starts_with("public.secrets.card_number is masked"),
        "{reason}"
    );
    // A table no column mask names may be used any way.
    let strict = session(&["strict-reader"]);
    assert!(
        verdict(&strict, "SELECT row_to_json(o), upper(note) FROM orders o")
            .decision
            .is_allow()
    );
}

#[test]
fn copies_and_returning_are_refused() {
    let s = session(&["masked-reader"]);
    for (sql, what) in [
        (
            "INSERT INTO orders (note) SELECT email FROM customers",
            "copied",
        ),
        (
            "UPDATE orders SET note = c.email FROM customers c",
            "copied",
        ),
        ("CREATE TABLE t AS SELECT * FROM customers", "copied"),
        ("COPY customers TO STDOUT (FORMAT binary)", "copied"),
        ("COPY (SELECT email FROM customers) TO STDOUT", "copied"),
        ("DELETE FROM customers RETURNING email", "RETURNING"),
        ("UPDATE customers SET name = 'x' RETURNING *", "RETURNING"),
    ] {
        let reason = refused(&s, sql, "masked-readers");
        assert!(reason.contains(what), "{sql}: {reason}");
    }
    // Writing a masked column, or copying what is not masked, is not leaking it.
    assert!(verdict(&s, "UPDATE customers SET email = 'x' WHERE id = 1")
        .decision
        .is_allow());
    assert!(
        verdict(&s, "INSERT INTO orders (note) SELECT name FROM customers")
            .decision
            .is_allow()
    );
    // The data path masks a table's COPY to the client in text or CSV, like a result.
    for sql in [
        "COPY customers TO STDOUT",
        "COPY customers (email) TO STDOUT (FORMAT csv)",
    ] {
        assert!(verdict(&s, sql).decision.is_allow(), "{sql}");
    }
    let masked = s.masked_columns(&statement("COPY customers (email) TO STDOUT"));
    assert_eq!(masked.len(), 1);
    assert_eq!(masked[0].column, "public.customers.email");
    // In binary, every column of orders leaves unmasked, and `*.card_number` may be one.
    let reason = refused(
        &s,
        "COPY orders TO STDOUT (FORMAT binary)",
        "masked-readers",
    );
    assert!(reason.starts_with("public.orders.card_number"), "{reason}");
    assert!(
        verdict(&s, "COPY orders (id, note) TO STDOUT (FORMAT binary)")
            .decision
            .is_allow()
    );
}

#[test]
fn casts_and_functions_in_conditions_are_refused_since_their_errors_can_show_the_value() {
    let s = session(&["masked-reader"]);
    let reason = refused(
        &s,
        "SELECT id FROM customers WHERE card_number::bigint = 0",
        "masked-readers",
    );
    assert!(reason.contains("error message"), "{reason}");
    refused(
        &s,
        "SELECT id FROM customers WHERE to_number(card_number, '9999') > 0",
        "masked-readers",
    );
    assert!(verdict(
        &s,
        "SELECT id FROM customers WHERE card_number = '0' OR lower(email) LIKE 'a%'"
    )
    .decision
    .is_allow());
}

#[test]
fn mask_predicates_refuse_refuses_conditions_on_masked_columns() {
    let s = session(&["strict-reader"]);
    assert!(verdict(&s, "SELECT ssn FROM customers").decision.is_allow());
    assert!(
        verdict(&s, "SELECT email FROM customers WHERE email LIKE 'a%'")
            .decision
            .is_allow()
    );
    for sql in [
        "SELECT id FROM customers WHERE ssn LIKE '0%'",
        "SELECT id FROM customers ORDER BY ssn",
        "SELECT ssn, count(*) FROM customers GROUP BY ssn",
        "SELECT c.id FROM customers c JOIN orders o ON o.note = c.ssn",
    ] {
        let reason = refused(&s, sql, "strict-readers");
        assert!(
            reason.contains("mask_predicates: refuse"),
            "{sql}: {reason}"
        );
    }
    // The other policy's masks keep the default: conditions may read them.
    let both = session(&["strict-reader", "masked-reader"]);
    assert!(
        verdict(&both, "SELECT id FROM customers WHERE email LIKE 'a%'")
            .decision
            .is_allow()
    );
    assert!(
        verdict(&both, "SELECT id FROM customers WHERE ssn LIKE 'a%'")
            .decision
            .is_deny()
    );
}

#[test]
fn detector_masks_refuse_nothing() {
    // `us_ssn` is a detector of masked-readers: ssn may be used in expressions.
    let s = session(&["masked-reader"]);
    assert!(verdict(&s, "SELECT upper(ssn) FROM customers")
        .decision
        .is_allow());
}

#[test]
fn a_masking_refusal_wins_over_approval_but_not_over_a_deny() {
    let writer = session(&["writer"]);
    assert!(matches!(
        verdict(&writer, "SELECT email FROM customers").decision,
        Decision::Approve { .. }
    ));
    refused(
        &writer,
        "SELECT upper(email) FROM customers",
        "approvers-only",
    );
    let nobody = session(&["nobody"]);
    assert!(matches!(
        verdict(&nobody, "SELECT upper(email) FROM customers").decision,
        Decision::Deny { rule: None, .. }
    ));
}

#[test]
fn statements_the_gateway_cannot_see_into_are_refused_when_masks_apply() {
    let s = session(&["masked-reader"]);
    let reason = refused(&s, "CREATE TABLE t AS EXECUTE p", "masked-readers");
    assert!(reason.contains("cannot see"), "{reason}");
}

#[test]
fn the_client_message_names_the_mask_rule() {
    let s = session(&["masked-reader"]);
    let message = verdict(&s, "SELECT upper(email) FROM customers")
        .decision
        .client_message()
        .unwrap();
    assert!(
        message.ends_with("(policy masked-readers, mask rule 1)"),
        "{message}"
    );
}

// ----- the shared corpus -----

#[derive(Debug, Deserialize)]
struct Case {
    sql: String,
    expect: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres")
}

/// Every case of mask.yaml for subject agent-2 with role masked-reader on connection app:
/// `masked` cases are allowed with their masked columns direct, `masked-or-refused` cases
/// are refused or have every masked column direct, `clear` cases deliver no masked column.
#[test]
fn every_mask_corpus_case_is_masked_refused_or_clear() {
    let dir = corpus_dir();
    let config =
        sluice_config::load_file(&dir.join("sluice.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let session = PolicySet::compile(&config).expect("compiles").for_session(
        &Principal {
            subject: "agent-2".into(),
            ..principal(&["masked-reader"])
        },
        "app",
    );
    let text = std::fs::read_to_string(dir.join("mask.yaml")).expect("mask.yaml");
    let cases: Vec<Case> = serde_saphyr::from_str(&text).expect("corpus YAML");
    assert!(cases.len() >= 10, "corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let class = classify(&case.sql, &SearchPath::default())
            .unwrap_or_else(|e| panic!("{}: {e}", case.sql));
        for statement in &class.statements {
            let verdict = session.decide_statement(statement);
            // Every flow of a masked column that is not a condition.
            let masked_flows: Vec<Usage> = statement
                .flows
                .columns
                .iter()
                .filter(|f| f.usage != Usage::Predicate)
                .filter(|f| {
                    session
                        .policies
                        .iter()
                        .flat_map(|p| p.masks.iter())
                        .any(|m| {
                            m.column_part().is_some() && m.covers(&f.table, f.column.as_deref())
                        })
                })
                .map(|f| f.usage)
                .collect();
            let all_direct = masked_flows.iter().all(|u| *u == Usage::Direct);
            let masked = session.masked_columns(statement);
            let ok = match case.expect.as_str() {
                "masked" => verdict.decision.is_allow() && all_direct && !masked.is_empty(),
                "masked-or-refused" => {
                    verdict.decision.is_deny()
                        || (verdict.decision.is_allow() && all_direct && !masked.is_empty())
                }
                "clear" => verdict.decision.is_allow() && masked_flows.is_empty(),
                other => panic!("unknown expectation {other}"),
            };
            if !ok {
                failures.push(format!(
                    "{} (expect {}): {:?}, masked flows {masked_flows:?}",
                    case.sql, case.expect, verdict.decision
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
