//! The SQLite store against real database files in temporary directories.

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sluice_store::migrations::{latest_version, MIGRATIONS};
use sluice_store::{open_store, ApiKeyRow, RevokeOutcome, SqliteStore, Store, StoreError};

fn key(id: &str, name: &str, created_at: i64) -> ApiKeyRow {
    ApiKeyRow {
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
fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

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
fn migrations_are_applied_once_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/sluice.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version(), latest_version());
    assert_eq!(store.path(), Some(path.as_path()));
    drop(store);

    let first = migration_rows(&path);
    assert_eq!(first.len(), MIGRATIONS.len());
    assert_eq!((first[0].0, first[0].1.as_str()), (1, "api_keys"));
    assert!(first[0].2 > 1_600_000_000, "applied_at is a Unix time");

    // Reopening applies nothing again and keeps the original records.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version(), latest_version());
    drop(store);
    assert_eq!(migration_rows(&path), first);
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let k = key("k1", "ci", 100);
    SqliteStore::open(&path)
        .unwrap()
        .insert_api_key(&k)
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.find_api_key("k1").unwrap(), Some(k));
}

#[test]
fn newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    let future = latest_version() + 1;
    raw(&path)
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, 'from_the_future', 0)",
            [future],
        )
        .unwrap();

    let err = SqliteStore::open(&path).unwrap_err();
    match &err {
        StoreError::SchemaTooNew {
            db,
            found,
            supported,
        } => {
            assert_eq!(*found, future);
            assert_eq!(*supported, latest_version());
            assert!(db.contains("s.db"));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(!err.is_unavailable());
    let msg = err.to_string();
    assert!(
        msg.contains("refusing") && msg.contains(&future.to_string()),
        "{msg}"
    );
}

#[test]
fn foreign_migration_history_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    raw(&path)
        .execute(
            "UPDATE schema_migrations SET name = 'something_else' WHERE version = 1",
            [],
        )
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationMismatch { version: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn insert_find_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("sqlite://{}", dir.path().join("s.db").display())).unwrap();
    assert_eq!(store.schema_version(), latest_version());
    assert!(store.list_api_keys().unwrap().is_empty());

    // Inserted out of order; listed by (created_at, id).
    let b = key("b", "second", 200);
    let c = key("c", "third-same-time", 200);
    let a = key("a", "first", 100);
    let mut empty = key("z", "no-roles", 300);
    empty.roles.clear();
    empty.groups.clear();
    for k in [&c, &b, &a, &empty] {
        store.insert_api_key(k).unwrap();
    }
    assert_eq!(store.find_api_key("b").unwrap(), Some(b.clone()));
    assert_eq!(store.find_api_key("z").unwrap(), Some(empty.clone()));
    let ids: Vec<_> = store
        .list_api_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c", "z"]);

    assert_eq!(
        store.revoke_api_key("b", 500).unwrap(),
        RevokeOutcome::Revoked
    );
    let revoked = store.find_api_key("b").unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(500));
    assert_eq!(
        revoked,
        ApiKeyRow {
            revoked_at: Some(500),
            ..b
        }
    );
    // Revoked keys are still listed (the CLI shows them as revoked).
    assert_eq!(store.list_api_keys().unwrap().len(), 4);
    // Others untouched.
    assert_eq!(store.find_api_key("a").unwrap().unwrap().revoked_at, None);
}

#[test]
fn revoking_twice_keeps_the_first_time() {
    let store = SqliteStore::open_in_memory().unwrap();
    store.insert_api_key(&key("k", "n", 1)).unwrap();
    assert_eq!(
        store.revoke_api_key("k", 10).unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store.revoke_api_key("k", 20).unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        store.find_api_key("k").unwrap().unwrap().revoked_at,
        Some(10)
    );
}

#[test]
fn unknown_id() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.find_api_key("nope").unwrap(), None);
    assert_eq!(
        store.revoke_api_key("nope", 1).unwrap(),
        RevokeOutcome::NotFound
    );
}

#[test]
fn duplicates_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    store.insert_api_key(&key("k1", "ci", 1)).unwrap();

    let err = store.insert_api_key(&key("k2", "ci", 2)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Duplicate {
                op: "insert_api_key",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"ci\"") && msg.contains("already exists"),
        "{msg}"
    );
    assert!(msg.contains("s.db"), "{msg}");

    let err = store.insert_api_key(&key("k1", "other", 2)).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
    assert!(err.to_string().contains("id \"k1\""), "{err}");

    // Names stay taken after revocation.
    store.revoke_api_key("k1", 5).unwrap();
    let err = store.insert_api_key(&key("k3", "ci", 6)).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");

    // Nothing was written by the refused inserts.
    assert_eq!(store.list_api_keys().unwrap().len(), 1);
}

#[test]
fn invalid_input_is_refused() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut bad = key("k", "n", 1);
    bad.secret_sha256 = "not-a-digest".to_owned();
    let err = store.insert_api_key(&bad).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    let mut bad = key("k", "n", 1);
    bad.name.clear();
    assert!(matches!(
        store.insert_api_key(&bad).unwrap_err(),
        StoreError::InvalidInput { .. }
    ));
    assert!(store.list_api_keys().unwrap().is_empty());
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
fn undecodable_row_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    store.insert_api_key(&key("k", "n", 1)).unwrap();
    raw(&path)
        .execute(
            "UPDATE api_keys SET roles = '[\"a\", 1]' WHERE id = 'k'",
            [],
        )
        .unwrap();
    let err = store.find_api_key("k").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(store.list_api_keys().is_err());
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
fn concurrent_reads_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        open_store(&format!("sqlite://{}", dir.path().join("s.db").display())).unwrap();
    for i in 0..20 {
        store
            .insert_api_key(&key(&format!("k{i:02}"), &format!("n{i}"), i))
            .unwrap();
    }
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for i in 0..200 {
                    let id = format!("k{:02}", (i + t) % 20);
                    assert_eq!(store.find_api_key(&id).unwrap().unwrap().id, id);
                    if i % 20 == 0 {
                        assert!(store.list_api_keys().unwrap().len() >= 20);
                    }
                }
            })
        })
        .collect();
    // A writer alongside the readers.
    let writer = {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            for i in 20..60 {
                store
                    .insert_api_key(&key(&format!("k{i:02}"), &format!("n{i}"), i))
                    .unwrap();
            }
        })
    };
    for r in readers {
        r.join().unwrap();
    }
    writer.join().unwrap();
    assert_eq!(store.list_api_keys().unwrap().len(), 60);
}

#[test]
fn two_stores_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    a.insert_api_key(&key("k", "n", 1)).unwrap();
    assert_eq!(b.revoke_api_key("k", 2).unwrap(), RevokeOutcome::Revoked);
    assert_eq!(a.find_api_key("k").unwrap().unwrap().revoked_at, Some(2));
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
