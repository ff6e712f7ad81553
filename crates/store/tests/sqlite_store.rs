//! What only the SQLite store has: files, directories, WAL, file locks, in-memory
//! databases. The behaviours both stores share are tested on both, in `api_keys.rs`,
//! `audit_trail.rs` and `approvals.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{approval_request, approver, key, MINUTE, T0};
use rusqlite::Connection;
use sluice_core::{ApprovalMode, ApprovalStatus, Verdict};
use sluice_store::migrations::{latest_version, MIGRATIONS};
use sluice_store::{open_store, ApprovalDecision, DecideOutcome, SqliteStore, Store, StoreError};

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn migration_rows(path: &Path) -> Vec<(u32, String, i64)> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn missing_directories_are_created_and_the_path_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/sluice.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version(), latest_version());
    assert_eq!(store.path(), Some(path.as_path()));
    drop(store);
    assert_eq!(migration_rows(&path).len(), MIGRATIONS.len());
}

#[test]
fn unwritable_path_is_unavailable() {
    // Tests may run as root, which ignores permission bits: use a regular file where a
    // directory is needed instead.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();

    let err = SqliteStore::open(file.join("sub/s.db")).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.operation(), Some("open"));
    assert!(err.to_string().contains("a-file"), "{err}");

    // A directory where the database file should be.
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    // The same through a URL.
    let err = open_store(&format!("sqlite://{}/s.db", file.display())).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn locked_database_is_unavailable_after_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();

    // Another "process" holds the write lock.
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = store.insert_api_key(&key("k", "n", 1)).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the busy timeout"
    );
    // WAL: readers are not blocked by the writer.
    assert!(store.list_api_keys().unwrap().is_empty());

    other.execute_batch("ROLLBACK").unwrap();
    store.insert_api_key(&key("k", "n", 1)).unwrap();
}

#[test]
fn a_locked_database_makes_approval_changes_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let request = approval_request("apr_1", ApprovalMode::Ticket, T0);
    store.insert_approval(&request).unwrap();
    let decision = ApprovalDecision {
        approver: approver("tid-1/alice"),
        verdict: Verdict::Approve,
        reason: "ok".into(),
        at: T0 + MINUTE,
    };

    // Another "process" holds the write lock.
    let other = raw(&path);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = store.decide_approval("apr_1", &decision).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.operation(), Some("decide_approval"));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the busy timeout"
    );
    // WAL: readers are not blocked by the writer.
    assert_eq!(store.approval("apr_1").unwrap(), Some(request));

    other.execute_batch("ROLLBACK").unwrap();
    let DecideOutcome::Recorded(approved) = store.decide_approval("apr_1", &decision).unwrap()
    else {
        panic!("not recorded");
    };
    assert_eq!(approved.status, ApprovalStatus::Approved);
}

#[test]
fn wal_mode_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let _store = SqliteStore::open(&path).unwrap();
    // journal_mode=WAL is persistent in the file: a fresh connection sees it.
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn memory_url_gives_a_private_empty_store() {
    let a = open_store("sqlite::memory:").unwrap();
    let b = open_store("sqlite::memory:").unwrap();
    a.insert_api_key(&key("k", "n", 1)).unwrap();
    assert_eq!(b.find_api_key("k").unwrap(), None);
    assert_eq!(a.schema_version(), latest_version());
}
