//! Loading and validating `sluice.yaml`: errors name file:line:column and what was
//! expected; secrets are never printed.

use std::path::Path;

use sluice_config::{load_file, load_str, Diagnostics, MaskPredicates, Secret};

const GOOD: &str = r#"
listen:
  admin: 127.0.0.1:8470
  postgres: 127.0.0.1:6432
store: sqlite://./data/sluice.db
identity:
  providers:
    - { name: local, local: {} }
connections:
  - name: orders
    kind: postgres
    upstream: postgres://svc@db.internal:5432/orders
    password: { env: ORDERS_DB_PASSWORD }
  - name: billing
    kind: http
    upstream: https://billing.internal
    token: { file: secrets/billing-token }
policies:
  - name: readers
    match: { roles: [reader] }
    connections: [orders]
    allow:
      - { actions: [select], tables: ["public.*"] }
"#;

fn errors(text: &str) -> Diagnostics {
    load_str(text, Path::new("/etc/sluice/sluice.yaml")).expect_err("config should be refused")
}

#[test]
fn the_example_config_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sluice.yaml");
    let config = load_file(&root).unwrap_or_else(|d| panic!("{d}"));
    assert!(!config.policies.is_empty());
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let config = load_str(GOOD, Path::new("/etc/sluice/sluice.yaml")).unwrap();
    assert_eq!(config.store, "sqlite:///etc/sluice/./data/sluice.db");
    assert_eq!(config.data_dir(), Path::new("/etc/sluice/./data"));
    let billing = config.connection("billing").unwrap();
    assert_eq!(
        billing.token,
        Some(Secret::File("/etc/sluice/secrets/billing-token".into()))
    );
}

#[test]
fn unknown_keys_are_errors_with_their_place() {
    let text = GOOD.replace(
        "    match: { roles: [reader] }",
        "    match: { roles: [reader] }\n    alow: []",
    );
    let d = errors(&text);
    let first = &d.0[0];
    assert_eq!(first.file, Path::new("/etc/sluice/sluice.yaml"));
    assert_eq!(first.line, 21, "{first}");
    assert!(first.column > 0);
    assert!(first.message.contains("alow"), "{first}");
    let rendered = first.to_string();
    assert!(
        rendered.starts_with("/etc/sluice/sluice.yaml:21:"),
        "{rendered}"
    );
}

#[test]
fn wrong_types_name_what_was_expected() {
    let text = GOOD.replace("kind: http", "kind: ftp");
    let d = errors(&text);
    assert_eq!(d.0[0].line, 15, "{d}");
    assert!(d.0[0].message.contains("ftp"), "{d}");
    let text = GOOD.replace("actions: [select]", "actions: [selekt]");
    let d = errors(&text);
    assert_eq!(d.0[0].line, 23, "{d}");
    assert!(d.0[0].message.contains("selekt"), "{d}");
}

#[test]
fn semantic_errors_are_all_reported_at_their_place() {
    let text = GOOD
        .replace("connections: [orders]", "connections: [orderz]")
        .replace(
            "{ actions: [select], tables: [\"public.*\"] }",
            "{ tables: [\"public.*\"] }",
        );
    let d = errors(&text);
    assert_eq!(d.0.len(), 2, "{d}");
    assert!(
        d.0[0].message.contains("unknown connection `orderz`") && d.0[0].line == 21,
        "{d}"
    );
    assert!(
        d.0[1].message.contains("needs `actions`") && d.0[1].line == 23,
        "{d}"
    );
}

#[test]
fn listeners_off_loopback_need_tls() {
    let d = errors(&GOOD.replace("postgres: 127.0.0.1:6432", "postgres: 0.0.0.0:6432"));
    assert!(d.0[0].message.contains("need TLS"), "{d}");
    assert_eq!(d.0[0].line, 4);
    let with_tls = GOOD.replace("postgres: 127.0.0.1:6432", "postgres: 0.0.0.0:6432")
        + "tls: { cert: c.pem, key: k.pem }\n";
    load_str(&with_tls, Path::new("x.yaml")).unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn rules_must_fit_their_connections_and_sections() {
    let d = errors(&GOOD.replace(
        "{ actions: [select], tables: [\"public.*\"] }",
        "{ methods: [GET], paths: [\"/x\"] }",
    ));
    assert!(d.0[0].message.contains("does not fit"), "{d}");
    let d = errors(&GOOD.replace(
        "{ actions: [select], tables: [\"public.*\"] }",
        "{ actions: [select], approvers: { groups: [x] } }",
    ));
    assert!(d.0[0].message.contains("belong in approve rules"), "{d}");
    let d = errors(&GOOD.replace("    allow:\n", "    approve:\n"));
    assert!(d.0[0].message.contains("needs `approvers`"), "{d}");
}

#[test]
fn secrets_are_never_printed() {
    std::env::set_var("SLUICE_TEST_SECRET", "hunter2-very-secret");
    let secret = Secret::Env("SLUICE_TEST_SECRET".into());
    let value = secret.resolve().unwrap();
    assert_eq!(value.expose(), "hunter2-very-secret");
    assert!(!format!("{value:?}").contains("hunter2"));
    assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    let config = load_str(GOOD, Path::new("x.yaml")).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    let missing = Secret::Env("SLUICE_TEST_NOT_SET".into())
        .resolve()
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "environment variable SLUICE_TEST_NOT_SET is not set"
    );
}

#[test]
fn unreadable_file_is_a_diagnostic() {
    let d = load_file(Path::new("/nonexistent/sluice.yaml")).unwrap_err();
    assert!(
        d.to_string()
            .starts_with("/nonexistent/sluice.yaml: cannot read config"),
        "{d}"
    );
}

#[test]
fn mask_predicates_defaults_to_allow_and_takes_refuse() {
    let config = load_str(GOOD, Path::new("/etc/sluice/sluice.yaml")).unwrap();
    assert_eq!(
        config.policies[0].value.mask_predicates,
        MaskPredicates::Allow
    );
    let text = GOOD.replace(
        "    match: { roles: [reader] }",
        "    match: { roles: [reader] }\n    mask_predicates: refuse",
    );
    let config = load_str(&text, Path::new("/etc/sluice/sluice.yaml")).unwrap();
    assert_eq!(
        config.policies[0].value.mask_predicates,
        MaskPredicates::Refuse
    );
    let text = GOOD.replace(
        "    match: { roles: [reader] }",
        "    match: { roles: [reader] }\n    mask_predicates: sometimes",
    );
    let message = errors(&text).to_string();
    assert!(message.contains("sluice.yaml:"), "{message}");
}

#[test]
fn approvals_take_a_grant_window_console_and_webhooks() {
    let text = GOOD.to_string()
        + r#"approvals:
  grant_window: 30m
  console_url: https://sluice.example.com
  webhooks:
    - { url: "https://hooks.slack.com/services/T/B/X", format: slack }
    - { url: "http://127.0.0.1:9000/hook", format: json, secret: { env: HOOK_KEY } }
"#;
    let config = load_str(&text, Path::new("x.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        config.approvals.grant_window.map(|d| d.0),
        Some(std::time::Duration::from_secs(1800))
    );
    assert_eq!(config.approvals.webhooks.len(), 2);
    assert!(config.approvals.webhooks[1].value.secret.is_some());

    let d = errors(&(GOOD.to_string()
        + "approvals:\n  webhooks:\n    - { url: \"http://hooks.example.com/x\", format: slack }\n"));
    assert!(d.0[0].message.contains("must be an https:// URL"), "{d}");
    assert_eq!((d.0[0].line, d.0[0].column), (26, 7), "{d}");
    let d = errors(&(GOOD.to_string()
        + "approvals:\n  webhooks:\n    - { url: \"http://127.0.0.1:80@evil.example/x\", format: slack }\n"));
    assert!(d.0[0].message.contains("must be an https:// URL"), "{d}");
    let d = errors(&(GOOD.to_string()
        + "approvals:\n  webhooks:\n    - { url: \"https://h.example.com/x\", format: json }\n"));
    assert!(d.0[0].message.contains("needs a `secret`"), "{d}");
    let d = errors(
        &(GOOD.to_string()
            + "approvals:\n  webhooks:\n    - { url: \"https://h.example.com/x\", format: xml }\n"),
    );
    assert!(d.0[0].message.contains("slack"), "{d}");
}

#[test]
fn workers_default_to_half_the_cpus_and_zero_is_refused() {
    let config = load_str(GOOD, Path::new("/etc/sluice/sluice.yaml")).unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(config.workers(), (cpus / 2).max(1));
    let three = format!("workers: 3\n{GOOD}");
    let config = load_str(&three, Path::new("/etc/sluice/sluice.yaml")).unwrap();
    assert_eq!(config.workers(), 3);
    let said = errors(&format!("workers: 0\n{GOOD}")).to_string();
    assert!(said.contains("workers must be more than 0"), "{said}");
}
