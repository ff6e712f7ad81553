//! What the behavioural tests need of a store's backend, so that each test is written once
//! and runs against both stores: [`on_both_stores!`] turns a list of `fn(&dyn Backend)`
//! into one `#[test]` per store (`sqlite::NAME` and `postgres::NAME`).
//!
//! A [`Backend`] is one database: a fresh SQLite file in a temporary directory, or a fresh
//! database in the shared throw-away PostgreSQL cluster. Tests open stores on it (several,
//! to read back what another opening wrote) and reach the database behind the store's back
//! to inspect or tamper with what it holds.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::Connection;
use sluice_core::{ApprovalMode, ApprovalStatus, Principal, PrincipalKind, Subjects};
use sluice_pgcluster::pg::PgCluster;
use sluice_store::{open_store, ApprovalRecord, Store};

/// Which SQL a backend's database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// One database, and the ways a test reaches it.
pub trait Backend {
    fn kind(&self) -> Kind;

    /// The store URL of this database, as the config's `store:` gives it.
    fn url(&self) -> String;

    /// A new store on this database, through `open_store` as the gateway opens it.
    fn open(&self) -> Arc<dyn Store> {
        open_store(&self.url()).unwrap()
    }

    /// Runs SQL on the database directly, bypassing the store.
    fn execute(&self, sql: &str);

    /// The value of a one-row, one-column query, as text (`""` for NULL).
    fn scalar(&self, sql: &str) -> String;

    /// Something every error about this database names (its file or database name).
    fn shown_as(&self) -> String;

    /// Runs the statement written for this backend's SQL.
    fn execute_either(&self, sqlite: &str, postgres: &str) {
        match self.kind() {
            Kind::Sqlite => self.execute(sqlite),
            Kind::Postgres => self.execute(postgres),
        }
    }

    /// The number of rows in `table`.
    fn count(&self, table: &str) -> i64 {
        let text = self.scalar(&format!("SELECT count(*) FROM {table}"));
        text.parse()
            .unwrap_or_else(|_| panic!("count of {table}: {text:?}"))
    }
}

/// A fresh SQLite file in a temporary directory.
pub struct SqliteBackend {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteBackend {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Self { _dir: dir, path }
    }
}

impl Backend for SqliteBackend {
    fn kind(&self) -> Kind {
        Kind::Sqlite
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn execute(&self, sql: &str) {
        Connection::open(&self.path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn scalar(&self, sql: &str) -> String {
        use rusqlite::types::Value;
        let value: Value = Connection::open(&self.path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap();
        match value {
            Value::Null => String::new(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t,
            Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        }
    }

    fn shown_as(&self) -> String {
        self.path.display().to_string()
    }
}

/// A fresh database in the shared throw-away PostgreSQL cluster.
pub struct PostgresBackend {
    pub cluster: &'static PgCluster,
    pub db: String,
}

impl PostgresBackend {
    pub fn new() -> Self {
        let cluster = PgCluster::shared();
        let db = cluster.fresh_database("store");
        Self { cluster, db }
    }
}

impl Backend for PostgresBackend {
    fn kind(&self) -> Kind {
        Kind::Postgres
    }

    fn url(&self) -> String {
        self.cluster.url(&self.db)
    }

    fn execute(&self, sql: &str) {
        self.cluster.execute(&self.db, sql).unwrap();
    }

    fn scalar(&self, sql: &str) -> String {
        self.cluster.query_scalar(&self.db, sql).unwrap()
    }

    fn shown_as(&self) -> String {
        self.db.clone()
    }
}

/// One `#[test]` per store for each listed `fn(&dyn Backend)` of the test file.
#[allow(unused_macros)] // sqlite_store.rs uses only the fixtures
macro_rules! on_both_stores {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::common::SqliteBackend::new());
                }
            )+
        }

        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(&crate::common::PostgresBackend::new());
                }
            )+
        }
    };
}

/// An API key row with everything filled in, distinct per id.
pub fn key(id: &str, name: &str, created_at: i64) -> sluice_store::ApiKeyRow {
    sluice_store::ApiKeyRow {
        id: id.to_owned(),
        name: name.to_owned(),
        secret_sha256: format!("{:0>64}", hex_of(id)),
        subject: format!("agent:{name}"),
        roles: vec!["reader".to_owned(), "sluice.user".to_owned()],
        groups: vec!["team-a".to_owned()],
        created_at,
        revoked_at: None,
    }
}

/// A lowercase-hex stand-in for a digest, distinct per id.
pub fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// 2026-05-01T09:30:00Z in microseconds, the approval fixtures' clock.
pub const T0: i64 = 1_777_627_800_000_000;
pub const MINUTE: i64 = 60_000_000;

/// The agent asking for approval, with everything a principal can carry.
pub fn requester() -> Principal {
    Principal {
        provider: "entra".into(),
        subject: "tid-1/agent-oid".into(),
        tenant_id: Some("tid-1".into()),
        display_name: "orders agent “ops” \u{1F916}".into(),
        kind: PrincipalKind::App,
        roles: vec!["Orders.Writer".into(), "Orders.Reader".into()],
        groups: vec!["g-agents".into()],
        token_id: Some("uti-42".into()),
        expires_at: Some(1_777_631_400),
    }
}

/// A human approver of the `entra` provider.
pub fn approver(subject: &str) -> Principal {
    Principal {
        provider: "entra".into(),
        subject: subject.into(),
        tenant_id: None,
        display_name: format!("{subject} (DBA)"),
        kind: PrincipalKind::User,
        roles: vec!["Approver".into()],
        groups: vec!["g-dba".into(), "g-oncall".into()],
        token_id: None,
        expires_at: None,
    }
}

/// A new pending request for the agent's `DELETE` on `orders`, made at `requested_at`,
/// decided within 15 minutes; tickets are redeemable for 10 minutes once approved.
pub fn approval_request(id: &str, mode: ApprovalMode, requested_at: i64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        mode,
        status: ApprovalStatus::Pending,
        requester: requester(),
        connection: "orders".into(),
        protocol: "postgres".into(),
        session_id: Some(format!("ses-{id}")),
        statement: "DELETE FROM orders WHERE id = $1 AND note IS NOT DISTINCT FROM $2 AND tag = $3"
            .into(),
        parameters: vec![Some("42".into()), None, Some(String::new())],
        fingerprint: "fp-delete-orders".into(),
        reason: "delete on public.orders requires approval".into(),
        rule: "policy operations, approve rule 1".into(),
        approvers: Subjects {
            subjects: vec!["tid-1/alice".into()],
            roles: vec!["Approver".into()],
            groups: vec![],
        },
        min_approvals: 1,
        requested_at,
        expires_at: requested_at + 15 * MINUTE,
        grant_window: (mode == ApprovalMode::Ticket).then_some(10 * MINUTE),
        grant_expires_at: None,
        resolved_at: None,
        redeemed_at: None,
        decisions: vec![],
    }
}
