//! The PostgreSQL store: [`PostgresStore`] (`postgres://...`), for several gateway
//! instances sharing one state. This file has opening (URL, connection settings), error
//! classification and API keys; `postgres/worker.rs` the thread that owns the connection,
//! `postgres/migrate.rs` the migrations, `postgres/audit.rs` the audit trail's SQL and
//! `postgres/approvals.rs` approval requests'.
//!
//! It behaves as [`SqliteStore`](crate::SqliteStore) does, method for method: the same
//! tables under the same migration versions (`migrations/postgres/`), the same errors for
//! the same inputs, the same orders (text keys sort with `COLLATE "C"`, SQLite's byte
//! order), and events rebuilt from the same columns with the same code (`rows.rs`), so
//! what one store reads back verifies exactly as what the other does.
//!
//! Where the two must differ:
//! - PostgreSQL text cannot hold a NUL character. A NUL in a string kept in a column of
//!   its own (an API key's id, name or subject; an event's session id or hashes; a
//!   checkpoint's key id or signature; an approval request's text columns, an approver's
//!   provider or subject, a decision's reason) is refused with
//!   [`StoreError::InvalidInput`]. In an event's body, or a principal stored as JSON, it
//!   is escaped and kept exactly; in a session summary (an index for listing, never
//!   verified) it is shown as U+FFFD. Lookups by a string with a NUL find nothing, as they
//!   would in SQLite where nothing stored has one.
//! - Checkpoints are listed in the order their ids were drawn, which with several gateways
//!   writing at once may differ from the order they committed.
//! - Concurrency is PostgreSQL's: writes are transactions at `READ COMMITTED`, uniqueness
//!   is the constraints' (a race between two gateways still ends in
//!   [`StoreError::Duplicate`]), `purge_sessions` locks the events against writers for
//!   its transaction, as SQLite's write lock does, and an approval request's changes lock
//!   its row (see `postgres/approvals.rs`). Waiting for a lock is bounded by
//!   [`LOCK_TIMEOUT`](worker::LOCK_TIMEOUT) (SQLite's busy timeout); past it the call is
//!   [`StoreError::Unavailable`].
//!
//! Connection: one, owned by a dedicated thread (see `worker.rs`), opened at
//! [`PostgresStore::open`] and again at the next call after it breaks. Durability is the
//! server's (`synchronous_commit` as configured there): a call returns once the server has
//! committed.
//!
//! TLS is not supported yet: `sslmode=require`, `verify-ca` and `verify-full` are refused
//! at parse time rather than silently connecting in clear; `disable`, `allow` and `prefer`
//! (the default) connect without TLS. Until then, reach the database over a local socket
//! (`?host=/run/postgresql`), the loopback interface, or another trusted network.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sluice_core::ApprovalStatus;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, Row};

use crate::error::StoreError;
use crate::rows::{json_list, validate_api_key, RawApiKey, API_KEY_COLUMNS};
use crate::url::redact;
use crate::{
    ApiKeyRow, ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome, RevokeOutcome,
    SessionFilter, SessionSummary, Store,
};

mod approvals;
mod audit;
mod migrate;
mod worker;

/// How long opening waits, connecting and migrating included: longer than a call, since
/// another gateway may be migrating the same database.
const OPEN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long connecting may take when the URL gives no `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] on a PostgreSQL database.
pub struct PostgresStore {
    conn: worker::Connection,
    /// The URL without its password, for errors.
    db: String,
    schema_version: u32,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("db", &self.db)
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database a `postgres://` (or `postgresql://`) URL names and applies
    /// pending migrations (serialised with any other gateway opening the same database).
    ///
    /// Fails with [`StoreError::InvalidUrl`] or [`StoreError::Unsupported`] for a URL it
    /// cannot use, [`StoreError::Unavailable`] if the server cannot be reached or refuses
    /// the login, and [`StoreError::SchemaTooNew`] if a newer Sluice has migrated the
    /// database. No error shows the URL's password.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config = parse_url(url)?;
        let db = redact(url);
        let conn = worker::Connection::start(config, db.clone())?;
        let schema_version = conn.call_within("open", &db, OPEN_TIMEOUT, |client, db| {
            Box::pin(migrate::migrate(client, db))
        })?;
        Ok(Self {
            conn,
            db,
            schema_version,
        })
    }

    fn call<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client, &'c str) -> worker::CallFuture<'c, T> + Send + 'static,
    {
        self.conn.call(op, &self.db, work)
    }

    fn invalid(&self, op: &'static str, reason: String) -> StoreError {
        StoreError::InvalidInput {
            op,
            db: self.db.clone(),
            reason,
        }
    }
}

/// Checks a `postgres://` URL and turns it into the client's configuration: the store's
/// defaults added (`application_name=sluice`, a connect timeout), TLS settings checked
/// (see the module docs). Errors carry the URL without its password.
pub(crate) fn parse_url(url: &str) -> Result<Config, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact(url),
        reason,
    };
    // The query starts after the userinfo, as `redact` reads it: a raw password may hold '?'.
    let query_from = url.rfind('@').unwrap_or(0);
    let (base, query) = match url[query_from..].find('?') {
        Some(i) => (&url[..query_from + i], &url[query_from + i + 1..]),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "sslmode" {
            kept.push(pair);
            continue;
        }
        match value {
            "disable" | "allow" | "prefer" => {}
            "require" | "verify-ca" | "verify-full" => {
                return Err(StoreError::Unsupported {
                    url: redact(url),
                    reason: format!(
                        "sslmode={value}: TLS to the PostgreSQL store is not supported yet; \
                         reach the database over a local socket or a trusted network and \
                         use sslmode=disable"
                    ),
                })
            }
            other => {
                return Err(invalid(format!(
                    "unknown sslmode {other:?} (expected disable, allow, prefer, require, \
                     verify-ca or verify-full)"
                )))
            }
        }
    }
    // The client knows the scheme only in lower case; anything else it would read as a
    // `key=value` string, and echo in its error.
    let base = match base.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => base.to_owned(),
    };
    let cleaned = if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = Config::from_str(&cleaned).map_err(|e| invalid(scrub(&describe(&e), url)))?;
    if config.get_user().is_none_or(str::is_empty) {
        return Err(invalid(
            "no user name (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)".to_owned(),
        ));
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(invalid(
            "no host (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)".to_owned(),
        ));
    }
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    if config.get_application_name().is_none() {
        config.application_name("sluice");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// `text` with every password `url` holds (in its userinfo or a `password=` parameter, as
/// written and percent-decoded) replaced by `***`, for messages that may quote the URL.
fn scrub(text: &str, url: &str) -> String {
    let mut secrets = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        if let Some(at) = rest.rfind('@') {
            if let Some((_, password)) = rest[..at].split_once(':') {
                secrets.push(password.to_owned());
            }
        }
    }
    let lower = url.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("password=") {
        let start = from + found + "password=".len();
        let end = url[start..]
            .find(|c: char| c == '&' || c.is_whitespace())
            .map_or(url.len(), |i| start + i);
        secrets.push(url[start..end].to_owned());
        from = end;
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    // Longest first, so a password that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = redact(text);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// `%XX` sequences decoded (invalid ones kept as written), lossily as UTF-8.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client error with its causes in its message: the client's own message is only a
/// category ("db error", "error connecting to server"), the server's words are in the
/// causes.
#[derive(Debug)]
pub(crate) struct PgError {
    message: String,
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self {
            message: describe(&e),
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for PgError {}

/// The error and its causes on one line.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string().replace('\n', "; "));
        cause = c.source();
    }
    text
}

/// Sorts a client error into the store's classes: could not reach, log into or write the
/// database ([`StoreError::Unavailable`]), damaged data ([`StoreError::Corrupt`]), anything
/// else ([`StoreError::Other`]).
pub(crate) fn classify(op: &'static str, db: &str, e: tokio_postgres::Error) -> StoreError {
    let db = db.to_owned();
    let io = {
        let mut cause = e.source();
        let mut found = false;
        while let Some(c) = cause {
            found |= c.is::<std::io::Error>();
            cause = c.source();
        }
        found
    };
    let code = e.code().map(|c| c.code().to_owned());
    let unavailable = e.is_closed() || io || code.as_deref().is_some_and(is_unavailable_code);
    let error = PgError::from(e);
    if unavailable {
        return StoreError::Unavailable {
            op,
            db,
            source: Box::new(error),
        };
    }
    match code.as_deref() {
        Some("XX001" | "XX002") => StoreError::Corrupt {
            op,
            db,
            detail: error.message,
        },
        _ => StoreError::Other {
            op,
            db,
            source: Box::new(error),
        },
    }
}

/// SQLSTATEs meaning the database could not be reached or written, as SQLite's busy,
/// locked, read-only, full and I/O errors do: connection exceptions (08), insufficient
/// resources (53), operator intervention (57: shutdown, cancelled), system errors (58),
/// a refused login (28) or missing database (3D), a lock not granted in time, a
/// serialization failure or deadlock (the transaction was rolled back and may be tried
/// again), a read-only server, and missing privileges.
fn is_unavailable_code(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "53" | "57" | "58" | "28" | "3D"))
        || matches!(code, "55P03" | "40001" | "40P01" | "25006" | "42501")
}

/// `Err` naming the field if `value` holds a NUL character, which PostgreSQL text cannot.
fn no_nul(what: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        Err(format!(
            "{what} contains a NUL character, which the PostgreSQL store cannot hold"
        ))
    } else {
        Ok(())
    }
}

/// Whether `e` is a violation of the unique constraint `constraint`.
fn violates(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == SqlState::UNIQUE_VIOLATION && d.constraint() == Some(constraint)
    })
}

/// A column that does not read as the store's type: the schema was changed under us.
fn unreadable(op: &'static str, db: &str, e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt {
        op,
        db: db.to_owned(),
        detail: describe(&e),
    }
}

fn raw_api_key(row: &Row) -> Result<RawApiKey, tokio_postgres::Error> {
    Ok(RawApiKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        secret_sha256: row.try_get(2)?,
        subject: row.try_get(3)?,
        roles: row.try_get(4)?,
        groups: row.try_get(5)?,
        created_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}

impl Store for PostgresStore {
    fn schema_version(&self) -> u32 {
        self.schema_version
    }

    fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        const OP: &str = "insert_api_key";
        validate_api_key(key)
            .and_then(|()| no_nul("API key id", &key.id))
            .and_then(|()| no_nul("API key name", &key.name))
            .and_then(|()| no_nul("API key subject", &key.subject))
            .map_err(|reason| self.invalid(OP, reason))?;
        let key = key.clone();
        self.call(OP, move |client, db| {
            Box::pin(async move {
                let err = |e| classify(OP, db, e);
                let duplicate = |what: String| StoreError::Duplicate {
                    op: OP,
                    db: db.to_owned(),
                    what,
                };
                let by_id = || duplicate(format!("an API key with id {:?}", key.id));
                let by_name = || duplicate(format!("an API key named {:?}", key.name));
                let tx = client.transaction().await.map_err(err)?;
                // Checked in the order SQLite checks them, so a key clashing on both is
                // reported the same way; the constraints decide any race with another
                // gateway.
                let id_taken = !tx
                    .query_typed(
                        "SELECT 1 FROM api_keys WHERE id = $1",
                        &[(&key.id, Type::TEXT)],
                    )
                    .await
                    .map_err(err)?
                    .is_empty();
                if id_taken {
                    return Err(by_id());
                }
                let name_taken = !tx
                    .query_typed(
                        "SELECT 1 FROM api_keys WHERE name = $1",
                        &[(&key.name, Type::TEXT)],
                    )
                    .await
                    .map_err(err)?
                    .is_empty();
                if name_taken {
                    // Revoked keys keep their names too (see the schema).
                    return Err(by_name());
                }
                let (roles, groups) = (json_list(&key.roles), json_list(&key.groups));
                tx.query_typed(
                    &format!(
                        "INSERT INTO api_keys ({API_KEY_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                    ),
                    &[
                        (&key.id, Type::TEXT),
                        (&key.name, Type::TEXT),
                        (&key.secret_sha256, Type::TEXT),
                        (&key.subject, Type::TEXT),
                        (&roles, Type::TEXT),
                        (&groups, Type::TEXT),
                        (&key.created_at, Type::INT8),
                        (&key.revoked_at, Type::INT8),
                    ],
                )
                .await
                .map_err(|e| {
                    if violates(&e, "api_keys_pkey") {
                        by_id()
                    } else if violates(&e, "api_keys_name_key") {
                        by_name()
                    } else {
                        err(e)
                    }
                })?;
                tx.commit().await.map_err(err)
            })
        })
    }

    fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        const OP: &str = "find_api_key";
        if id.contains('\0') {
            return Ok(None);
        }
        let id = id.to_owned();
        let raw = self.call(OP, move |client, db| {
            Box::pin(async move {
                let rows = client
                    .query_typed(
                        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"),
                        &[(&id, Type::TEXT)],
                    )
                    .await
                    .map_err(|e| classify(OP, db, e))?;
                rows.first()
                    .map(raw_api_key)
                    .transpose()
                    .map_err(|e| unreadable(OP, db, e))
            })
        })?;
        raw.map(|r| r.decode(OP, &self.db)).transpose()
    }

    fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        const OP: &str = "list_api_keys";
        let raws = self.call(OP, move |client, db| {
            Box::pin(async move {
                let rows = client
                    .query_typed(
                        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                        &[],
                    )
                    .await
                    .map_err(|e| classify(OP, db, e))?;
                rows.iter()
                    .map(raw_api_key)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| unreadable(OP, db, e))
            })
        })?;
        raws.into_iter().map(|r| r.decode(OP, &self.db)).collect()
    }

    fn revoke_api_key(&self, id: &str, at: i64) -> Result<RevokeOutcome, StoreError> {
        const OP: &str = "revoke_api_key";
        if id.contains('\0') {
            return Ok(RevokeOutcome::NotFound);
        }
        let id = id.to_owned();
        self.call(OP, move |client, db| {
            Box::pin(async move {
                let err = |e| classify(OP, db, e);
                let tx = client.transaction().await.map_err(err)?;
                // Only a live key is updated: the first revocation time is kept, never moved.
                let changed = tx
                    .query_typed(
                        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                         RETURNING 1",
                        &[(&id, Type::TEXT), (&at, Type::INT8)],
                    )
                    .await
                    .map_err(err)?;
                let outcome = if !changed.is_empty() {
                    RevokeOutcome::Revoked
                } else {
                    let exists = !tx
                        .query_typed("SELECT 1 FROM api_keys WHERE id = $1", &[(&id, Type::TEXT)])
                        .await
                        .map_err(err)?
                        .is_empty();
                    if exists {
                        RevokeOutcome::AlreadyRevoked
                    } else {
                        RevokeOutcome::NotFound
                    }
                };
                tx.commit().await.map_err(err)?;
                Ok(outcome)
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        let config = parse_url("postgres://sluice:hunter2@db.internal:6432/state").unwrap();
        assert_eq!(config.get_user(), Some("sluice"));
        assert_eq!(config.get_dbname(), Some("state"));
        assert_eq!(config.get_ports(), [6432]);
        assert_eq!(config.get_application_name(), Some("sluice"));
        assert_eq!(config.get_connect_timeout(), Some(&DEFAULT_CONNECT_TIMEOUT));

        let config =
            parse_url("postgresql://u@h/db?sslmode=prefer&application_name=gw&connect_timeout=3")
                .unwrap();
        assert_eq!(config.get_application_name(), Some("gw"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));

        for url in [
            "postgres://u:hunter2@h/db?sslmode=require",
            "postgres://u:hunter2@h/db?sslmode=verify-full",
            "postgresql://u:hunter2@h/db?application_name=x&sslmode=verify-ca",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("TLS") && !msg.contains("hunter2"), "{msg}");
        }
        for url in [
            "postgres://:hunter2@h/db",
            "postgres://u:hunter2@h/db?sslmode=sometimes",
            "postgres://u:hunter2@h/db?no_such_option=1",
            "postgres://u:hunter2@h:port/db",
            "Postgres://u:hunter2@h/db?bogus",
            "postgres://u:hunter2@h/db?password=hunter2&bogus=1",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidUrl { .. }),
                "{url}: {err:?}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn scrub_masks_every_form_of_the_password() {
        let url = "postgres://u:p%40ss@h/db?password=second&x=1";
        let text = "echo: postgres://u:p%40ss@h/db p@ss second";
        let scrubbed = scrub(text, url);
        assert!(
            !scrubbed.contains("p%40ss")
                && !scrubbed.contains("p@ss")
                && !scrubbed.contains("second"),
            "{scrubbed}"
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn unavailable_codes() {
        for code in [
            "08006", "57P01", "53100", "28P01", "3D000", "55P03", "40001",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "XX001"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}
