//! API keys and the schema's history, on both stores: what one store does with a call, the
//! other does too, errors included.

#[macro_use]
mod common;

use std::sync::Arc;
use std::thread;

use common::{key, Backend};
use sluice_store::migrations::{latest_version, MIGRATIONS};
use sluice_store::{ApiKeyRow, RevokeOutcome, Store, StoreError};

on_both_stores!(
    migrations_are_applied_once_and_recorded,
    data_survives_reopen,
    newer_database_is_refused,
    foreign_migration_history_is_refused,
    insert_find_list_revoke,
    revoking_twice_keeps_the_first_time,
    unknown_id,
    duplicates_are_refused_clearly,
    invalid_input_is_refused,
    undecodable_row_is_reported_corrupt,
    concurrent_reads_from_threads,
    two_stores_on_one_database_see_each_other,
);

/// `version:name:applied_at` of each recorded migration, in order.
fn migration_rows(b: &dyn Backend) -> Vec<String> {
    (1..=latest_version())
        .map(|v| {
            b.scalar(&format!(
                "SELECT version || ':' || name || ':' || applied_at FROM schema_migrations \
                 WHERE version = {v}"
            ))
        })
        .collect()
}

fn migrations_are_applied_once_and_recorded(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(store.schema_version(), latest_version());
    drop(store);

    let first = migration_rows(b);
    assert_eq!(b.count("schema_migrations") as usize, MIGRATIONS.len());
    assert!(first[0].starts_with("1:api_keys:"), "{first:?}");
    let applied_at: i64 = first[0].rsplit(':').next().unwrap().parse().unwrap();
    assert!(applied_at > 1_600_000_000, "applied_at is a Unix time");

    // Reopening applies nothing again and keeps the original records.
    let store = b.open();
    assert_eq!(store.schema_version(), latest_version());
    drop(store);
    assert_eq!(migration_rows(b), first);
}

fn data_survives_reopen(b: &dyn Backend) {
    let k = key("k1", "ci", 100);
    b.open().insert_api_key(&k).unwrap();
    assert_eq!(b.open().find_api_key("k1").unwrap(), Some(k));
}

fn newer_database_is_refused(b: &dyn Backend) {
    drop(b.open());
    let future = latest_version() + 1;
    b.execute(&format!(
        "INSERT INTO schema_migrations (version, name, applied_at) \
         VALUES ({future}, 'from_the_future', 0)"
    ));

    let err = sluice_store::open_store(&b.url()).unwrap_err();
    match &err {
        StoreError::SchemaTooNew {
            db,
            found,
            supported,
        } => {
            assert_eq!(*found, future);
            assert_eq!(*supported, latest_version());
            assert!(db.contains(&b.shown_as()), "{db}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(!err.is_unavailable());
    let msg = err.to_string();
    assert!(
        msg.contains("refusing") && msg.contains(&future.to_string()),
        "{msg}"
    );
    // Refused without a write: the history is as it was.
    assert_eq!(b.count("schema_migrations") as usize, MIGRATIONS.len() + 1);
}

fn foreign_migration_history_is_refused(b: &dyn Backend) {
    drop(b.open());
    b.execute("UPDATE schema_migrations SET name = 'something_else' WHERE version = 1");
    let err = sluice_store::open_store(&b.url()).unwrap_err();
    assert!(
        matches!(err, StoreError::MigrationMismatch { version: 1, .. }),
        "{err:?}"
    );
}

fn insert_find_list_revoke(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(store.schema_version(), latest_version());
    assert!(store.list_api_keys().unwrap().is_empty());

    // Inserted out of order; listed by (created_at, id), ids in byte order ("B" < "a").
    let b2 = key("b", "second", 200);
    let c = key("c", "third-same-time", 200);
    let upper = key("B", "upper-same-time", 200);
    let a = key("a", "first", 100);
    let mut empty = key("z", "no-roles", 300);
    empty.roles.clear();
    empty.groups.clear();
    for k in [&c, &b2, &a, &empty, &upper] {
        store.insert_api_key(k).unwrap();
    }
    assert_eq!(store.find_api_key("b").unwrap(), Some(b2.clone()));
    assert_eq!(store.find_api_key("z").unwrap(), Some(empty.clone()));
    let ids: Vec<_> = store
        .list_api_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["a", "B", "b", "c", "z"]);

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
            ..b2
        }
    );
    // Revoked keys are still listed (the CLI shows them as revoked).
    assert_eq!(store.list_api_keys().unwrap().len(), 5);
    // Others untouched.
    assert_eq!(store.find_api_key("a").unwrap().unwrap().revoked_at, None);
}

fn revoking_twice_keeps_the_first_time(b: &dyn Backend) {
    let store = b.open();
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

fn unknown_id(b: &dyn Backend) {
    let store = b.open();
    assert_eq!(store.find_api_key("nope").unwrap(), None);
    assert_eq!(
        store.revoke_api_key("nope", 1).unwrap(),
        RevokeOutcome::NotFound
    );
    // An id no key can have is not an error either.
    assert_eq!(store.find_api_key("no\0pe").unwrap(), None);
    assert_eq!(
        store.revoke_api_key("no\0pe", 1).unwrap(),
        RevokeOutcome::NotFound
    );
}

fn duplicates_are_refused_clearly(b: &dyn Backend) {
    let store = b.open();
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
    assert!(msg.contains(&b.shown_as()), "{msg}");

    let err = store.insert_api_key(&key("k1", "other", 2)).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");
    assert!(err.to_string().contains("id \"k1\""), "{err}");

    // Both taken: the id is reported, on either store.
    let err = store.insert_api_key(&key("k1", "ci", 2)).unwrap_err();
    assert!(err.to_string().contains("id \"k1\""), "{err}");

    // Names stay taken after revocation.
    store.revoke_api_key("k1", 5).unwrap();
    let err = store.insert_api_key(&key("k3", "ci", 6)).unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err:?}");

    // Nothing was written by the refused inserts.
    assert_eq!(store.list_api_keys().unwrap().len(), 1);
}

fn invalid_input_is_refused(b: &dyn Backend) {
    let store = b.open();
    let mut bad = key("k", "n", 1);
    bad.secret_sha256 = "not-a-digest".to_owned();
    let err = store.insert_api_key(&bad).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("secret_sha256"), "{err}");
    let mut bad = key("k", "n", 1);
    bad.name.clear();
    assert!(matches!(
        store.insert_api_key(&bad).unwrap_err(),
        StoreError::InvalidInput { .. }
    ));
    let mut bad = key("k", "n", 1);
    bad.secret_sha256 = bad.secret_sha256.to_uppercase();
    assert!(matches!(
        store.insert_api_key(&bad).unwrap_err(),
        StoreError::InvalidInput { .. }
    ));
    assert!(store.list_api_keys().unwrap().is_empty());
}

fn undecodable_row_is_reported_corrupt(b: &dyn Backend) {
    let store = b.open();
    store.insert_api_key(&key("k", "n", 1)).unwrap();
    b.execute("UPDATE api_keys SET roles = '[\"a\", 1]' WHERE id = 'k'");
    let err = store.find_api_key("k").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("api_keys.roles"), "{err}");
    assert!(store.list_api_keys().is_err());
}

fn concurrent_reads_from_threads(b: &dyn Backend) {
    let store: Arc<dyn Store> = b.open();
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

fn two_stores_on_one_database_see_each_other(b: &dyn Backend) {
    let (one, two) = (b.open(), b.open());
    one.insert_api_key(&key("k", "n", 1)).unwrap();
    assert_eq!(two.revoke_api_key("k", 2).unwrap(), RevokeOutcome::Revoked);
    assert_eq!(one.find_api_key("k").unwrap().unwrap().revoked_at, Some(2));
    // A key inserted by both at once: one wins, the other is told it is a duplicate.
    let both: Vec<_> = [one, two]
        .into_iter()
        .map(|store| thread::spawn(move || store.insert_api_key(&key("race", "race", 3))))
        .collect();
    let results: Vec<_> = both.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Duplicate { .. }))),
        "{results:?}"
    );
}
