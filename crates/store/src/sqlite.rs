//! The embedded SQLite store: [`SqliteStore`], the default backend (`sqlite://...`). This
//! file has the connection and API keys; `sqlite/audit.rs` the audit trail's SQL and
//! `sqlite/approvals.rs` approval requests'.
//!
//! One connection behind a mutex. Every call is short (single-row lookups, small writes, one
//! session's events, one batch of audit events, one approval request's change), so serialising them costs little and keeps
//! SQLite's locking out of the picture within one process; other processes on the same file
//! are handled by WAL and the busy timeout.
//!
//! Connection settings, applied on every open:
//! - `journal_mode=WAL`: readers in other processes (an admin CLI) do not block the gateway's
//!   writes, nor the reverse. The mode is persistent in the file; open fails if the file
//!   system cannot provide it rather than silently running without it.
//! - `synchronous=FULL`: every commit is fsynced. With WAL, `NORMAL` would be crash-safe for
//!   the application but a power loss could drop the last commits. Here a dropped commit can
//!   be a key revocation (a revoked key working again after a reboot) or an audit record, so
//!   we pay the fsync per commit; writes are rare (keys) or meant to be batched (audit), which
//!   keeps the cost small.
//! - `busy_timeout` of [`BUSY_TIMEOUT`]: another process holding the write lock briefly makes
//!   us wait instead of failing at once; past the timeout the error is
//!   [`StoreError::Unavailable`].
//! - `foreign_keys=ON` (off by default in SQLite) and `trusted_schema=OFF` (schema contents
//!   cannot call functions with side effects, in case the file was tampered with).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};
use sluice_core::ApprovalStatus;

use crate::error::StoreError;
use crate::migrations;
use crate::rows::{json_list, validate_api_key, RawApiKey, API_KEY_COLUMNS};
use crate::{
    ApiKeyRow, ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome, RevokeOutcome,
    SessionFilter, SessionSummary, Store,
};

mod approvals;
mod audit;

/// How long a call waits for another process's lock before reporting the store unavailable.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What `db` says in errors for an in-memory database.
const MEMORY: &str = ":memory:";

/// A [`Store`] on an SQLite database file (or in memory, for tests).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Display form of the location, for errors.
    db: String,
    /// `None` for in-memory databases.
    path: Option<PathBuf>,
    schema_version: u32,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db", &self.db)
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, creating missing parent directories,
    /// configuring the connection (see the module docs) and applying pending migrations.
    ///
    /// Fails with [`StoreError::SchemaTooNew`] if a newer Sluice has migrated the file, and
    /// with [`StoreError::Unavailable`] if the file or its directory cannot be created,
    /// opened or written.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let db = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                // create_dir_all reports "File exists" when a path component is a file;
                // say what is actually wrong.
                let why = if parent.exists() && !parent.is_dir() {
                    "it exists and is not a directory".to_owned()
                } else {
                    e.to_string()
                };
                StoreError::Unavailable {
                    op: "open",
                    db: db.clone(),
                    source: format!("cannot create directory {}: {why}", parent.display()).into(),
                }
            })?;
        }
        // No SQLITE_OPEN_URI: the path is a path, never reinterpreted as `file:...?mode=...`.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| classify("open", &db, e))?;
        Self::init(conn, db, Some(path.to_path_buf()))
    }

    /// Opens a private, empty in-memory database, fully migrated. Gone when dropped.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| classify("open", MEMORY, e))?;
        Self::init(conn, MEMORY.to_owned(), None)
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(mut conn: Connection, db: String, path: Option<PathBuf>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| classify("open", &db, e))?;
        // The first statement is where SQLite first reads the file: a non-database file or an
        // unopenable path surfaces here.
        if path.is_some() {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| classify("open", &db, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Unavailable {
                    op: "open",
                    db,
                    source: format!(
                        "cannot enable WAL journal mode (got {mode:?}); the file system may not \
                         support it"
                    )
                    .into(),
                });
            }
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA trusted_schema = OFF;",
        )
        .map_err(|e| classify("open", &db, e))?;
        let schema_version = migrations::migrate(&mut conn, &db)?;
        Ok(Self {
            conn: Mutex::new(conn),
            db,
            path,
            schema_version,
        })
    }

    fn err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |e| classify(op, &self.db, e)
    }
}

impl RawApiKey {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            secret_sha256: r.get(2)?,
            subject: r.get(3)?,
            roles: r.get(4)?,
            groups: r.get(5)?,
            created_at: r.get(6)?,
            revoked_at: r.get(7)?,
        })
    }
}

impl Store for SqliteStore {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }

    fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        const OP: &str = "insert_api_key";
        validate_api_key(key).map_err(|reason| StoreError::InvalidInput {
            op: OP,
            db: self.db.clone(),
            reason,
        })?;
        let mut conn = self.conn.lock();
        // IMMEDIATE: the uniqueness checks and the insert see the same state even if another
        // process writes the file concurrently.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err(OP))?;
        let duplicate = |what: String| StoreError::Duplicate {
            op: OP,
            db: self.db.clone(),
            what,
        };
        let id_taken = tx
            .prepare_cached("SELECT 1 FROM api_keys WHERE id = ?1")
            .and_then(|mut s| s.exists([&key.id]))
            .map_err(self.err(OP))?;
        if id_taken {
            return Err(duplicate(format!("an API key with id {:?}", key.id)));
        }
        let name_taken = tx
            .prepare_cached("SELECT 1 FROM api_keys WHERE name = ?1")
            .and_then(|mut s| s.exists([&key.name]))
            .map_err(self.err(OP))?;
        if name_taken {
            // Revoked keys keep their names too (see the schema).
            return Err(duplicate(format!("an API key named {:?}", key.name)));
        }
        tx.prepare_cached(&format!(
            "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .and_then(|mut s| {
            s.execute(params![
                key.id,
                key.name,
                key.secret_sha256,
                key.subject,
                json_list(&key.roles),
                json_list(&key.groups),
                key.created_at,
                key.revoked_at,
            ])
        })
        .map_err(self.err(OP))?;
        tx.commit().map_err(self.err(OP))
    }

    fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        const OP: &str = "find_api_key";
        let conn = self.conn.lock();
        let raw = conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], RawApiKey::from_row).optional())
            .map_err(self.err(OP))?;
        drop(conn);
        raw.map(|r| r.decode(OP, &self.db)).transpose()
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        const OP: &str = "list_api_keys";
        let conn = self.conn.lock();
        let raws = conn
            .prepare_cached(&format!(
                "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))
            .and_then(|mut s| {
                s.query_map([], RawApiKey::from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(self.err(OP))?;
        drop(conn);
        raws.into_iter().map(|r| r.decode(OP, &self.db)).collect()
    }

    fn revoke_api_key(&self, id: &str, at: i64) -> Result<RevokeOutcome, StoreError> {
        const OP: &str = "revoke_api_key";
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err(OP))?;
        // Only a live key is updated: the first revocation time is kept, never moved.
        let changed = tx
            .prepare_cached(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![id, at]))
            .map_err(self.err(OP))?;
        let outcome = if changed == 1 {
            RevokeOutcome::Revoked
        } else {
            let exists = tx
                .prepare_cached("SELECT 1 FROM api_keys WHERE id = ?1")
                .and_then(|mut s| s.exists([id]))
                .map_err(self.err(OP))?;
            if exists {
                RevokeOutcome::AlreadyRevoked
            } else {
                RevokeOutcome::NotFound
            }
        };
        tx.commit().map_err(self.err(OP))?;
        Ok(outcome)
    }

    fn append_events(&self, events: &[sluice_audit::Event]) -> Result<(), StoreError> {
        audit::append_events(self, events)
    }

    fn session_events(&self, session_id: &str) -> Result<Vec<sluice_audit::Event>, StoreError> {
        audit::session_events(self, session_id)
    }

    fn last_event(&self, session_id: &str) -> Result<Option<sluice_audit::Event>, StoreError> {
        audit::last_event(self, session_id)
    }

    fn session_ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        audit::session_ids(self, after, limit)
    }

    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError> {
        audit::list_sessions(self, filter)
    }

    fn put_checkpoint(&self, checkpoint: &sluice_audit::Checkpoint) -> Result<(), StoreError> {
        audit::put_checkpoint(self, checkpoint)
    }

    fn checkpoints(&self) -> Result<Vec<sluice_audit::Checkpoint>, StoreError> {
        audit::checkpoints(self)
    }

    fn purge_sessions(
        &self,
        before: sluice_audit::Timestamp,
        keep: &[String],
    ) -> Result<u64, StoreError> {
        audit::purge_sessions(self, before, keep)
    }

    fn insert_approval(&self, record: &ApprovalRecord) -> Result<(), StoreError> {
        approvals::insert_approval(self, record)
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        approvals::approval(self, id)
    }

    fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalRecord>, StoreError> {
        approvals::list_approvals(self, filter)
    }

    fn decide_approval(
        &self,
        id: &str,
        decision: &ApprovalDecision,
    ) -> Result<DecideOutcome, StoreError> {
        approvals::decide_approval(self, id, decision)
    }

    fn resolve_approval(
        &self,
        id: &str,
        to: ApprovalStatus,
        at: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        approvals::resolve_approval(self, id, to, at)
    }

    fn redeem_ticket(
        &self,
        provider: &str,
        subject: &str,
        connection: &str,
        fingerprint: &str,
        at: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        approvals::redeem_ticket(self, provider, subject, connection, fingerprint, at)
    }

    fn expire_due(&self, now: i64) -> Result<Vec<ApprovalRecord>, StoreError> {
        approvals::expire_due(self, now)
    }

    fn withdraw_pending_holds(&self, at: i64) -> Result<Vec<ApprovalRecord>, StoreError> {
        approvals::withdraw_pending_holds(self, at)
    }
}

/// Sorts an SQLite error into the store's classes: could not reach or write the database
/// ([`StoreError::Unavailable`]), damaged file ([`StoreError::Corrupt`]), anything else
/// ([`StoreError::Other`]).
pub(crate) fn classify(op: &'static str, db: &str, e: rusqlite::Error) -> StoreError {
    let db = db.to_owned();
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    match code {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable {
            op,
            db,
            source: Box::new(e),
        },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            op,
            db,
            detail: e.to_string(),
        },
        _ => StoreError::Other {
            op,
            db,
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(store: &SqliteStore, name: &str) -> String {
        let conn = store.conn.lock();
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    }

    #[test]
    fn connection_settings_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
        assert_eq!(pragma(&store, "journal_mode"), "wal");
        assert_eq!(pragma(&store, "synchronous"), "2"); // FULL
        assert_eq!(pragma(&store, "foreign_keys"), "1");
        assert_eq!(pragma(&store, "trusted_schema"), "0");
        assert_eq!(pragma(&store, "busy_timeout"), "5000");
    }
}
