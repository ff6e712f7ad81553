//! The audit trail in SQLite: the SQL behind the [`Store`](crate::Store) methods for
//! events, session summaries and checkpoints (tables in `migrations/0002_audit.sql`).
//!
//! Events are written as `sluice-audit` serializes them (the body as one JSON text) and
//! rebuilt from exactly the columns their hash covers; `at_us` and `kind` are written for
//! queries and never read back, so they cannot make a stored event read differently. A
//! batch is one `IMMEDIATE` transaction: with `synchronous=FULL` (see `sqlite.rs`) it is
//! durable as a whole once committed, and nothing of it remains after a failure.

use rusqlite::{params, params_from_iter, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use sluice_audit::{Checkpoint, Event, EventBody, Timestamp};

use super::{classify, SqliteStore};
use crate::audit::{SessionFilter, SessionSummary};
use crate::error::StoreError;
use crate::rows::{
    protocol_name, EncodedEvent, RawCheckpoint, RawEvent, RawSummary, EVENT_COLUMNS,
};

pub(super) fn append_events(store: &SqliteStore, events: &[Event]) -> Result<(), StoreError> {
    const OP: &str = "append_events";
    // Encoding cannot fail half-way through the transaction: do it first.
    let rows = events
        .iter()
        .map(EncodedEvent::of)
        .collect::<Result<Vec<_>, String>>()
        .map_err(|reason| StoreError::InvalidInput {
            op: OP,
            db: store.db.clone(),
            reason,
        })?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    for (event, row) in events.iter().zip(&rows) {
        tx.prepare_cached(
            "INSERT INTO audit_events \
             (session_id, seq, at, at_us, kind, body, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                event.session_id,
                row.seq,
                row.at,
                event.at.unix_micros(),
                event.body.kind().as_str(),
                row.body,
                event.prev_hash,
                event.hash,
            ])
        })
        .map_err(|e| {
            if is_primary_key_violation(&e) {
                StoreError::Duplicate {
                    op: OP,
                    db: store.db.clone(),
                    what: format!("event seq {} of session {}", event.seq, event.session_id),
                }
            } else {
                classify(OP, &store.db, e)
            }
        })?;
        update_summary(&tx, event, row).map_err(store.err(OP))?;
    }
    // Dropping the transaction on any error above rolls the whole batch back.
    tx.commit().map_err(store.err(OP))
}

fn is_primary_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation
                && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Keeps the session's summary row in step with its opening and closing events.
fn update_summary(
    tx: &rusqlite::Transaction<'_>,
    event: &Event,
    row: &EncodedEvent,
) -> rusqlite::Result<()> {
    // A second opening of one session (which the gateway never records) leaves the first
    // in the summary rather than failing the batch: the events are what counts.
    const INSERT: &str = "INSERT INTO audit_sessions (session_id, opened_at, opened_at_us, \
         status, principal_provider, principal_subject, principal_display_name, connection, \
         protocol, client_addr, tls, closed_at, closed_at_us, close_reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
         ON CONFLICT (session_id) DO NOTHING";
    let at_us = event.at.unix_micros();
    match &event.body {
        EventBody::SessionOpened(opened) => {
            let principal = &opened.principal;
            tx.prepare_cached(INSERT)?.execute(params![
                event.session_id,
                row.at,
                at_us,
                "open",
                principal.provider,
                principal.subject,
                principal.display_name,
                opened.connection,
                protocol_name(opened.protocol),
                opened.client_addr,
                opened.tls,
                None::<String>,
                None::<i64>,
                None::<String>,
            ])?;
        }
        EventBody::LoginRefused(refused) => {
            tx.prepare_cached(INSERT)?.execute(params![
                event.session_id,
                row.at,
                at_us,
                "login_refused",
                None::<String>,
                None::<String>,
                None::<String>,
                refused.connection,
                protocol_name(refused.protocol),
                refused.client_addr,
                false,
                row.at,
                at_us,
                refused.reason,
            ])?;
        }
        EventBody::SessionClosed(closed) => {
            tx.prepare_cached(
                "UPDATE audit_sessions \
                 SET status = 'closed', closed_at = ?2, closed_at_us = ?3, close_reason = ?4 \
                 WHERE session_id = ?1 AND status = 'open'",
            )?
            .execute(params![event.session_id, row.at, at_us, closed.reason])?;
        }
        EventBody::Request(_)
        | EventBody::Result(_)
        | EventBody::Purged(_)
        | EventBody::ApprovalDecided(_)
        | EventBody::ApprovalResolved(_) => {}
    }
    Ok(())
}

pub(super) fn session_events(
    store: &SqliteStore,
    session_id: &str,
) -> Result<Vec<Event>, StoreError> {
    const OP: &str = "session_events";
    let conn = store.conn.lock();
    let raws = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE session_id = ?1 ORDER BY seq"
        ))
        .and_then(|mut s| {
            s.query_map([session_id], RawEvent::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(store.err(OP))?;
    drop(conn);
    raws.into_iter()
        .map(|raw| raw.decode(OP, &store.db))
        .collect()
}

pub(super) fn last_event(
    store: &SqliteStore,
    session_id: &str,
) -> Result<Option<Event>, StoreError> {
    const OP: &str = "last_event";
    let conn = store.conn.lock();
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE session_id = ?1 \
             ORDER BY seq DESC LIMIT 1"
        ))
        .and_then(|mut s| s.query_row([session_id], RawEvent::from_row).optional())
        .map_err(store.err(OP))?;
    drop(conn);
    raw.map(|raw| raw.decode(OP, &store.db)).transpose()
}

pub(super) fn session_ids(
    store: &SqliteStore,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    const OP: &str = "session_ids";
    // Session ids are never empty (a CHECK), so "" is before the first.
    let after = after.unwrap_or("");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let conn = store.conn.lock();
    conn.prepare_cached(
        "SELECT DISTINCT session_id FROM audit_events WHERE session_id > ?1 \
         ORDER BY session_id LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![after, limit], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()
    })
    .map_err(store.err(OP))
}

pub(super) fn list_sessions(
    store: &SqliteStore,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>, StoreError> {
    const OP: &str = "list_sessions";
    let mut conditions = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(principal) = &filter.principal {
        values.push(principal.clone().into());
        let n = values.len();
        conditions.push(format!(
            "(principal_subject = ?{n} OR principal_display_name = ?{n})"
        ));
    }
    if let Some(connection) = &filter.connection {
        values.push(connection.clone().into());
        conditions.push(format!("connection = ?{}", values.len()));
    }
    if let Some(since) = filter.since {
        values.push(since.unix_micros().into());
        conditions.push(format!("opened_at_us >= ?{}", values.len()));
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT session_id, opened_at, status, principal_provider, principal_subject, \
         principal_display_name, connection, protocol, client_addr, tls, closed_at, \
         close_reason, \
         (SELECT count(*) FROM audit_events e WHERE e.session_id = s.session_id) \
         FROM audit_sessions s {filter_sql} ORDER BY opened_at_us, session_id"
    );
    let conn = store.conn.lock();
    let raws = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(values), RawSummary::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(store.err(OP))?;
    drop(conn);
    raws.into_iter()
        .map(|raw| raw.decode(OP, &store.db))
        .collect()
}

pub(super) fn put_checkpoint(
    store: &SqliteStore,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    const OP: &str = "put_checkpoint";
    let heads = serde_json::to_string(&checkpoint.heads).map_err(|e| StoreError::InvalidInput {
        op: OP,
        db: store.db.clone(),
        reason: format!("the checkpoint's heads do not serialize: {e}"),
    })?;
    let conn = store.conn.lock();
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (at, at_us, key_id, heads, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            checkpoint.at.to_string(),
            checkpoint.at.unix_micros(),
            checkpoint.key_id,
            heads,
            checkpoint.signature,
        ])
    })
    .map_err(store.err(OP))?;
    Ok(())
}

pub(super) fn checkpoints(store: &SqliteStore) -> Result<Vec<Checkpoint>, StoreError> {
    const OP: &str = "checkpoints";
    let conn = store.conn.lock();
    let raws = conn
        .prepare_cached(
            "SELECT id, at, key_id, heads, signature FROM audit_checkpoints ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(RawCheckpoint {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    key_id: r.get(2)?,
                    heads: r.get(3)?,
                    signature: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(store.err(OP))?;
    drop(conn);
    raws.into_iter()
        .map(|raw| raw.decode(OP, &store.db))
        .collect()
}

pub(super) fn purge_sessions(
    store: &SqliteStore,
    before: Timestamp,
    keep: &[String],
) -> Result<u64, StoreError> {
    const OP: &str = "purge_sessions";
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    let expired: Vec<String> = tx
        .prepare_cached(
            "SELECT session_id FROM audit_events GROUP BY session_id \
             HAVING max(at_us) < ?1 AND sum(kind = 'purged') = 0",
        )
        .and_then(|mut s| {
            s.query_map(params![before.unix_micros()], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(store.err(OP))?;
    let mut removed = 0;
    for session_id in expired.iter().filter(|id| !keep.contains(id)) {
        tx.prepare_cached("DELETE FROM audit_events WHERE session_id = ?1")
            .and_then(|mut s| s.execute(params![session_id]))
            .map_err(store.err(OP))?;
        tx.prepare_cached("DELETE FROM audit_sessions WHERE session_id = ?1")
            .and_then(|mut s| s.execute(params![session_id]))
            .map_err(store.err(OP))?;
        removed += 1;
    }
    tx.commit().map_err(store.err(OP))?;
    Ok(removed)
}

impl RawEvent {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            session_id: r.get(0)?,
            seq: r.get(1)?,
            at: r.get(2)?,
            prev_hash: r.get(3)?,
            hash: r.get(4)?,
            body: r.get(5)?,
        })
    }
}

impl RawSummary {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            session_id: r.get(0)?,
            opened_at: r.get(1)?,
            status: r.get(2)?,
            provider: r.get(3)?,
            subject: r.get(4)?,
            display_name: r.get(5)?,
            connection: r.get(6)?,
            protocol: r.get(7)?,
            client_addr: r.get(8)?,
            tls: r.get(9)?,
            closed_at: r.get(10)?,
            close_reason: r.get(11)?,
            events: r.get(12)?,
        })
    }
}
