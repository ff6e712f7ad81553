//! Migrations on PostgreSQL: [`POSTGRES_MIGRATIONS`] applied at open, as `migrations/`
//! applies SQLite's, with the same bookkeeping table and the same refusals (a newer or
//! foreign history, see `migrations::check_history`).
//!
//! Several gateways may open one database at the same time. Every transaction here first
//! takes a transaction-level advisory lock ([`MIGRATION_LOCK`]), so one gateway migrates
//! while the others wait, then find the work done. Each migration is its own transaction,
//! recorded in `schema_migrations` in it, so a failure leaves the database at the last
//! complete version; PostgreSQL's DDL is transactional, so nothing of a failed migration
//! remains.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient};

use super::classify;
use crate::error::StoreError;
use crate::migrations::{check_history, unix_now, Migration, POSTGRES_MIGRATIONS};

/// The advisory lock key migrations hold ("sluice_m" in ASCII), the same in every gateway.
pub(super) const MIGRATION_LOCK: i64 = 0x736c_7569_6365_5f6d;

/// How long a migration waits for a lock (another gateway migrating, a long query holding
/// a table) before opening fails as unavailable.
const MIGRATION_LOCK_TIMEOUT: &str = "60s";

/// The bookkeeping table, as SQLite's (`migrations/mod.rs`).
const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)";

/// Brings the database up to the latest version and returns the resulting version.
pub(super) async fn migrate(client: &mut Client, db: &str) -> Result<u32, StoreError> {
    migrate_with(client, db, POSTGRES_MIGRATIONS).await
}

/// [`migrate`] over a given list, so tests can run lists that fail part-way.
async fn migrate_with(
    client: &mut Client,
    db: &str,
    migrations: &[Migration],
) -> Result<u32, StoreError> {
    let err = |e| classify("migrate", db, e);
    // Check the history before changing anything, so a newer database is refused without
    // a single write. The table is created only if missing: a role that may not create
    // tables can still open a database migrated by another.
    let recorded = {
        let tx = client.transaction().await.map_err(err)?;
        lock(&tx, db).await?;
        let exists = tx
            .query_typed("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(err)?
            .first()
            .map(|row| row.try_get::<_, bool>(0))
            .transpose()
            .map_err(err)?
            .unwrap_or(false);
        if !exists {
            tx.batch_execute(CREATE_SCHEMA_MIGRATIONS)
                .await
                .map_err(err)?;
        }
        let recorded = recorded_migrations(&tx, db).await?;
        tx.commit().await.map_err(err)?;
        recorded
    };
    check_history(&recorded, db, migrations)?;

    for m in migrations {
        if recorded.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        let tx = client.transaction().await.map_err(err)?;
        // Another gateway may have applied it while we waited for the lock.
        lock(&tx, db).await?;
        let version = i32::try_from(m.version).map_err(|_| StoreError::Migration {
            db: db.to_owned(),
            version: m.version,
            name: m.name,
            source: "the version does not fit the table's integer".into(),
        })?;
        let already = tx
            .query_typed(
                "SELECT name FROM schema_migrations WHERE version = $1",
                &[(&version, Type::INT4)],
            )
            .await
            .map_err(err)?;
        if already.is_empty() {
            tx.batch_execute(m.sql)
                .await
                .map_err(|e| migration_error(db, m, e))?;
            tx.query_typed(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[
                    (&version, Type::INT4),
                    (&m.name, Type::TEXT),
                    (&unix_now(), Type::INT8),
                ],
            )
            .await
            .map_err(|e| migration_error(db, m, e))?;
        }
        tx.commit().await.map_err(|e| migration_error(db, m, e))?;
    }

    // Re-read rather than assume: another gateway may have raced us to a newer version.
    let recorded = recorded_migrations(client, db).await?;
    check_history(&recorded, db, migrations)?;
    Ok(recorded.last().map_or(0, |(v, _)| *v))
}

/// Takes the migration lock for the rest of the transaction.
async fn lock(tx: &tokio_postgres::Transaction<'_>, db: &str) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"
    ))
    .await
    .map_err(|e| classify("migrate", db, e))?;
    tx.query_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await
    .map_err(|e| classify("migrate", db, e))?;
    Ok(())
}

/// The recorded `(version, name)` pairs, in version order.
async fn recorded_migrations(
    client: &impl GenericClient,
    db: &str,
) -> Result<Vec<(u32, String)>, StoreError> {
    let rows = client
        .query_typed(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| classify("migrate", db, e))?;
    let corrupt = |detail: String| StoreError::Corrupt {
        op: "migrate",
        db: db.to_owned(),
        detail,
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let version: i32 = row
            .try_get(0)
            .map_err(|e| corrupt(format!("schema_migrations.version: {e}")))?;
        let name: String = row
            .try_get(1)
            .map_err(|e| corrupt(format!("schema_migrations.name: {e}")))?;
        let version = u32::try_from(version).map_err(|_| {
            corrupt(format!(
                "schema_migrations holds an impossible version {version}"
            ))
        })?;
        out.push((version, name));
    }
    Ok(out)
}

/// Unavailability (lost connection, lock timeout) stays [`StoreError::Unavailable`] so
/// callers can tell an operational failure from a broken migration.
fn migration_error(db: &str, m: &Migration, e: tokio_postgres::Error) -> StoreError {
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

#[cfg(test)]
mod tests {
    use sluice_pgcluster::pg::PgCluster;

    use super::*;
    use crate::postgres::{parse_url, worker};

    fn migrate_list(url: &str, list: &'static [Migration]) -> Result<u32, StoreError> {
        let conn = worker::Connection::start(parse_url(url)?, "test".to_owned())?;
        conn.call("open", "test", move |client, db| {
            Box::pin(migrate_with(client, db, list))
        })
    }

    #[test]
    fn a_failing_migration_is_rolled_back_and_reported() {
        static FAILING: &[Migration] = &[
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
        static FIXED: &[Migration] = &[
            FAILING[0],
            Migration {
                version: 2,
                name: "two",
                sql: "CREATE TABLE b (x INTEGER);",
            },
        ];
        let cluster = PgCluster::shared();
        let db = cluster.fresh_database("migrate_fail");
        let url = cluster.url(&db);

        let err = migrate_list(&url, FAILING).unwrap_err();
        match &err {
            StoreError::Migration { version, name, .. } => {
                assert_eq!((*version, *name), (2, "two"));
            }
            other => panic!("expected Migration, got {other:?}"),
        }
        assert!(err.to_string().contains("no_such_table"), "{err}");
        let tables = cluster
            .query_scalar(
                &db,
                "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
                 WHERE schemaname = 'public'",
            )
            .unwrap();
        assert_eq!(tables, "a,schema_migrations");
        let versions = cluster
            .query_scalar(
                &db,
                "SELECT string_agg(version::text, ',') FROM schema_migrations",
            )
            .unwrap();
        assert_eq!(versions, "1");

        // Once fixed, the next open continues from version 1.
        assert_eq!(migrate_list(&url, FIXED).unwrap(), 2);
    }
}
