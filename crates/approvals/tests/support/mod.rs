//! What the broker's tests share: a real SQLite store in a temporary directory, the people
//! and applications that ask and decide, and a request for a `DELETE` that needs approval.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::sync::Arc;
use std::time::Duration;

use sluice_approvals::{fingerprint, BrokerSettings, NewApproval};
use sluice_core::{ApprovalMode, Principal, PrincipalKind, Subjects};
use sluice_store::{SqliteStore, Store};

/// Where links in views and webhooks point.
pub const CONSOLE: &str = "http://console.test";

/// The statement every request is for.
pub const STATEMENT: &str = "DELETE FROM orders WHERE id = $1";

/// A fresh SQLite store; the directory goes when this is dropped.
pub struct TestStore {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    pub store: Arc<dyn Store>,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approvals.db");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        TestStore {
            _dir: dir,
            path,
            store,
        }
    }

    /// Another opening of the same file, as a restarted gateway has.
    pub fn reopen(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path).unwrap())
    }
}

/// Settings whose timers never end anything within a test unless the test asks: waiters
/// re-read the store every 30 s and the sweeper runs every 30 s.
pub fn settings() -> BrokerSettings {
    let mut settings = BrokerSettings::new(format!("{CONSOLE}/"));
    settings.poll_interval = Duration::from_secs(30);
    settings.sweep_interval = Duration::from_secs(30);
    settings
}

fn principal(subject: &str, kind: PrincipalKind, groups: &[&str]) -> Principal {
    Principal {
        provider: "entra".into(),
        subject: subject.into(),
        tenant_id: Some("tid-1".into()),
        display_name: format!("{subject} (test)"),
        kind,
        roles: vec![],
        groups: groups.iter().map(|g| g.to_string()).collect(),
        token_id: None,
        expires_at: None,
    }
}

/// The agent that asks: an application.
pub fn agent() -> Principal {
    principal("tid-1/orders-agent", PrincipalKind::App, &["g-agents"])
}

/// A person among the approvers (the `g-dba` group).
pub fn alice() -> Principal {
    principal("tid-1/alice", PrincipalKind::User, &["g-dba"])
}

/// Another person among the approvers.
pub fn bob() -> Principal {
    principal("tid-1/bob", PrincipalKind::User, &["g-dba"])
}

/// A person who is no approver.
pub fn mallory() -> Principal {
    principal("tid-1/mallory", PrincipalKind::User, &["g-sales"])
}

/// An application in the approvers' group: still not a person.
pub fn robot() -> Principal {
    principal("tid-1/robot", PrincipalKind::App, &["g-dba"])
}

/// A person in the approvers' group asking for themselves.
pub fn dba_carol() -> Principal {
    principal("tid-1/carol", PrincipalKind::User, &["g-dba"])
}

pub fn approvers() -> Subjects {
    Subjects {
        subjects: vec![],
        roles: vec![],
        groups: vec!["g-dba".into()],
    }
}

/// The parameters every request binds.
pub fn parameters() -> Vec<Option<String>> {
    vec![Some("42".into())]
}

/// The agent's `DELETE`, on connection `orders`, decided by the `g-dba` group within
/// `timeout`.
pub fn new_approval(mode: ApprovalMode, timeout: Duration) -> NewApproval {
    NewApproval {
        requester: agent(),
        connection: "orders".into(),
        protocol: "postgres".into(),
        session_id: Some("ses-1".into()),
        statement: STATEMENT.into(),
        parameters: parameters(),
        fingerprint: fingerprint(STATEMENT, &parameters()),
        reason: "delete on public.orders requires approval".into(),
        rule: "policy operations, approve rule 1".into(),
        approvers: approvers(),
        mode,
        timeout,
        min_approvals: 1,
    }
}
