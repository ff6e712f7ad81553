//! Fixtures shared by the benches: the statement, the config and the principal.

// Each bench includes this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;

use sluice_core::{Principal, PrincipalKind};
use sluice_policy::PolicySet;

/// A 200-odd-character three-table join, the shape of a typical agent query.
pub const JOIN: &str = "SELECT o.id, o.total, c.name, c.email, p.title FROM public.orders o \
JOIN public.customers c ON c.id = o.customer_id JOIN public.products p ON p.id = o.product_id \
WHERE o.total > 100 AND c.region = 'eu' ORDER BY o.id LIMIT 50";

/// Five policies, three of which apply to [`principal`] on `app`, with allow, deny and
/// approve rules, column and detector masks, and limits.
pub const CONFIG: &str = r#"
listen:
  admin: 127.0.0.1:8470
  postgres: 127.0.0.1:6432
identity:
  providers:
    - name: local
      local: {}
connections:
  - name: app
    kind: postgres
    upstream: postgres://app@127.0.0.1:5432/app
  - name: warehouse
    kind: postgres
    upstream: postgres://warehouse@127.0.0.1:5432/warehouse
policies:
  - name: readers
    match: { roles: [reader] }
    connections: [app, warehouse]
    allow:
      - { actions: [select], tables: ["public.orders", "public.order_items", "public.invoices"] }
      - { actions: [select], tables: ["public.customers", "public.customer_*"] }
      - { actions: [select], tables: ["public.products", "catalog.*"] }
    deny:
      - { tables: ["public.secrets", "*.credentials", "auth.*"] }
      - { actions: [ddl, grant, truncate] }
      - { functions: ["pg_read_file", "pg_ls_dir", "lo_*"] }
    mask:
      - { columns: ["public.customers.email"], with: email }
      - { columns: ["public.customers.card_number"], with: last4 }
      - { columns: ["public.customers.ssn", "public.customers.tax_id"], with: redact }
    limits: { max_rows: 10000, statement_timeout: 30s }
  - name: order-writers
    match: { groups: [order-team] }
    connections: [app]
    allow:
      - { actions: [insert, update], tables: ["public.orders", "public.order_items"] }
    approve:
      - actions: [delete]
        tables: ["public.orders"]
        approvers: { roles: [dba] }
        mode: hold
        timeout: 10m
    deny:
      - { actions: [delete], tables: ["public.customers"] }
    limits: { max_rows: 1000 }
  - name: pii-guard
    match: { roles: [reader, analyst] }
    connections: [app, warehouse]
    deny:
      - { tables: ["public.payment_tokens", "public.password_resets"] }
    mask:
      - { detect: [email, credit_card, us_ssn, iban], with: redact }
      - { columns: ["public.*.phone"], with: last4 }
  - name: analysts
    match: { roles: [analyst] }
    connections: [warehouse]
    allow:
      - { actions: [select], tables: ["analytics.*", "public.*"] }
  - name: operators
    match: { roles: [ops], provider: local }
    connections: [app]
    allow:
      - { actions: [select, insert, update, delete, maintenance], tables: ["public.*"] }
    approve:
      - actions: [ddl]
        approvers: { groups: [dba] }
"#;

/// The compiled policies of [`CONFIG`].
pub fn policy_set() -> PolicySet {
    let config = sluice_config::load_str(CONFIG, Path::new("bench.yaml"))
        .unwrap_or_else(|e| panic!("the bench config does not load: {e:?}"));
    PolicySet::compile(&config).expect("the bench config compiles")
}

/// An agent with the `reader` role in the `order-team` group: `readers`, `order-writers`
/// and `pii-guard` apply to it on `app`.
pub fn principal() -> Principal {
    Principal {
        provider: "local".into(),
        subject: "agent-1".into(),
        tenant_id: None,
        display_name: "agent-1".into(),
        kind: PrincipalKind::App,
        roles: vec!["reader".into()],
        groups: vec!["order-team".into()],
        token_id: None,
        expires_at: None,
    }
}
