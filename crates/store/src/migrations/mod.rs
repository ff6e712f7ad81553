//! Versioned schema migrations, for both stores.
//!
//! [`MIGRATIONS`] is the ordered list of every schema change this binary knows for SQLite,
//! one `.sql` file per migration in this directory; [`POSTGRES_MIGRATIONS`] is the same list
//! for PostgreSQL, its files in `postgres/`. Both are compiled in with `include_str!` so a
//! binary never depends on files beside it. `migrate` (here for SQLite, in `postgres.rs` for
//! PostgreSQL) runs when a store opens: each pending migration is applied in its own
//! transaction and recorded in `schema_migrations (version, name, applied_at)`, so a failure
//! leaves the database at the last complete version.
//!
//! The version numbers are the store's logical schema version ([`crate::Store::schema_version`]):
//! the two lists have the same versions under the same names, each making the same tables in
//! its own database's SQL (a test holds them in step), so both stores agree on what version N
//! means and `check_history` judges either database's history.
//!
//! Rules for adding one: append with the next version to both lists, never edit or renumber
//! a released migration (databases in the field have already run it), and keep each file to
//! statements that are valid inside a transaction.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::sqlite::classify;

/// One schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Strictly increasing from 1, without gaps.
    pub version: u32,
    /// Short name, recorded alongside the version to recognise the history on reopen.
    pub name: &'static str,
    /// The statements (SQLite's or PostgreSQL's, by the list), run as one batch inside a
    /// transaction.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "api_keys",
        sql: include_str!("0001_api_keys.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sql: include_str!("0002_audit.sql"),
    },
    Migration {
        version: 3,
        name: "approvals",
        sql: include_str!("0003_approvals.sql"),
    },
];

/// Every migration this binary knows for PostgreSQL: [`MIGRATIONS`]' versions and names,
/// in PostgreSQL's SQL.
pub const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "api_keys",
        sql: include_str!("postgres/0001_api_keys.sql"),
    },
    Migration {
        version: 2,
        name: "audit",
        sql: include_str!("postgres/0002_audit.sql"),
    },
    Migration {
        version: 3,
        name: "approvals",
        sql: include_str!("postgres/0003_approvals.sql"),
    },
];

/// The schema version a database has once every known migration is applied.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The bookkeeping table. Created outside the numbered migrations because it is what records
/// them.
const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT";

/// Brings the database up to [`latest_version`] and returns the resulting version.
///
/// Refuses a database whose recorded version is newer than this binary knows, or whose
/// recorded history names a known version differently.
pub(crate) fn migrate(conn: &mut Connection, db: &str) -> Result<u32, StoreError> {
    migrate_with(conn, db, MIGRATIONS)
}

/// [`migrate`] over a given list, so tests can run lists that fail part-way.
fn migrate_with(
    conn: &mut Connection,
    db: &str,
    migrations: &[Migration],
) -> Result<u32, StoreError> {
    conn.execute_batch(CREATE_SCHEMA_MIGRATIONS)
        .map_err(|e| classify("migrate", db, e))?;

    // Check the history before touching anything, so a newer database is refused without
    // a single write.
    let recorded = recorded_migrations(conn, db)?;
    check_history(&recorded, db, migrations)?;

    for m in migrations {
        if recorded.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        // IMMEDIATE takes the write lock up front: if another process is migrating the same
        // file, we wait (busy timeout) instead of failing half-way, then see its work below.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify("migrate", db, e))?;
        let already: Option<String> = tx
            .query_row(
                "SELECT name FROM schema_migrations WHERE version = ?1",
                [m.version],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| classify("migrate", db, e))?;
        if already.is_none() {
            tx.execute_batch(m.sql)
                .map_err(|e| migration_error(db, m, e))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, unix_now()],
            )
            .map_err(|e| migration_error(db, m, e))?;
        }
        tx.commit().map_err(|e| migration_error(db, m, e))?;
    }

    // Re-read rather than assume: another process may have raced us to a newer version.
    let recorded = recorded_migrations(conn, db)?;
    check_history(&recorded, db, migrations)?;
    Ok(recorded.last().map_or(0, |(v, _)| *v))
}

/// The recorded `(version, name)` pairs, in version order.
fn recorded_migrations(conn: &Connection, db: &str) -> Result<Vec<(u32, String)>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
        .map_err(|e| classify("migrate", db, e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(|e| classify("migrate", db, e))?;
    let mut out = Vec::new();
    for row in rows {
        let (version, name) = row.map_err(|e| classify("migrate", db, e))?;
        let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
            op: "migrate",
            db: db.to_owned(),
            detail: format!("schema_migrations holds an impossible version {version}"),
        })?;
        out.push((version, name));
    }
    Ok(out)
}

/// Refuses a recorded history (`(version, name)` pairs) that is newer than `migrations` or
/// names one of its versions differently.
pub(crate) fn check_history(
    recorded: &[(u32, String)],
    db: &str,
    migrations: &[Migration],
) -> Result<(), StoreError> {
    let supported = migrations.last().map_or(0, |m| m.version);
    if let Some((found, _)) = recorded.iter().rev().find(|(v, _)| *v > supported) {
        return Err(StoreError::SchemaTooNew {
            db: db.to_owned(),
            found: *found,
            supported,
        });
    }
    for (version, name) in recorded {
        match migrations.iter().find(|m| m.version == *version) {
            Some(m) if m.name == name => {}
            Some(m) => {
                return Err(StoreError::MigrationMismatch {
                    db: db.to_owned(),
                    version: *version,
                    found: name.clone(),
                    expected: m.name,
                })
            }
            // A gap in our own list cannot happen (a test guards it); a recorded version
            // we do not list but below our latest means a foreign history.
            None => {
                return Err(StoreError::MigrationMismatch {
                    db: db.to_owned(),
                    version: *version,
                    found: name.clone(),
                    expected: "(no such migration)",
                })
            }
        }
    }
    Ok(())
}

/// Unavailability (locked, disk full) stays [`StoreError::Unavailable`] so callers can tell an
/// operational failure from a broken migration.
fn migration_error(db: &str, m: &Migration, e: rusqlite::Error) -> StoreError {
    match classify("migrate", db, e) {
        err @ StoreError::Unavailable { .. } => err,
        StoreError::Other { source, .. } => StoreError::Migration {
            db: db.to_owned(),
            version: m.version,
            name: m.name,
            source,
        },
        other => other,
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_and_have_no_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version as usize,
                i + 1,
                "migration {} out of order",
                m.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_sql_is_not_empty() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.version);
            assert!(
                MIGRATIONS[..i].iter().all(|o| o.name != m.name),
                "migration name {} repeated",
                m.name
            );
        }
    }

    #[test]
    fn postgres_migrations_mirror_sqlite_ones() {
        let names = |list: &[Migration]| -> Vec<(u32, &str)> {
            list.iter().map(|m| (m.version, m.name)).collect()
        };
        assert_eq!(names(POSTGRES_MIGRATIONS), names(MIGRATIONS));
        for m in POSTGRES_MIGRATIONS {
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.version);
        }
    }

    #[test]
    fn migrate_in_memory_reaches_latest() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, ":memory:").unwrap(), latest_version());
        // Running again changes nothing.
        assert_eq!(migrate(&mut conn, ":memory:").unwrap(), latest_version());
        let n: i64 = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, MIGRATIONS.len());
    }

    #[test]
    fn a_failing_migration_is_rolled_back_and_reported() {
        let list = [
            Migration {
                version: 1,
                name: "one",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                name: "two",
                // The first statement succeeds, the second fails: neither may remain.
                sql: "CREATE TABLE b (x INTEGER); INSERT INTO no_such_table VALUES (1);",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = migrate_with(&mut conn, ":memory:", &list).unwrap_err();
        match &err {
            StoreError::Migration { version, name, .. } => {
                assert_eq!((*version, *name), (2, "two"));
            }
            other => panic!("expected Migration, got {other:?}"),
        }
        assert!(err.to_string().contains("no_such_table"), "{err}");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["a", "schema_migrations"]);
        let versions: Vec<u32> = conn
            .prepare("SELECT version FROM schema_migrations")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, [1]);

        // Once fixed, the next open continues from version 1.
        let fixed = [
            list[0],
            Migration {
                sql: "CREATE TABLE b (x INTEGER);",
                ..list[1]
            },
        ];
        assert_eq!(migrate_with(&mut conn, ":memory:", &fixed).unwrap(), 2);
    }
}
