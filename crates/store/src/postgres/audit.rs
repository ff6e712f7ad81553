//! The audit trail in PostgreSQL: the SQL behind the [`Store`](crate::Store) methods for
//! events, session summaries and checkpoints (tables in
//! `migrations/postgres/0002_audit.sql`), with the SQLite store's semantics
//! (`sqlite/audit.rs`).
//!
//! Events are encoded (`rows::EncodedEvent`) and checked on the caller's thread, before
//! anything is sent; a batch then goes to the server as one multi-row `INSERT` from arrays,
//! in one transaction with its summary changes, so it costs a few round trips whatever its
//! size and is stored whole or not at all. Events are rebuilt from exactly the columns their
//! hash covers, by the same code as SQLite's (`rows::RawEvent`); `at_us` and `kind` serve
//! queries only.

use std::collections::HashSet;

use sluice_audit::{Checkpoint, Event, EventBody, Timestamp};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, Transaction};

use super::{classify, no_nul, unreadable, violates, PostgresStore};
use crate::audit::{SessionFilter, SessionSummary};
use crate::error::StoreError;
use crate::rows::{
    protocol_name, EncodedEvent, RawCheckpoint, RawEvent, RawSummary, EVENT_COLUMNS,
};

/// A batch's events as column arrays, for one `INSERT ... SELECT FROM unnest(...)`.
#[derive(Default)]
struct EventColumns {
    session_id: Vec<String>,
    seq: Vec<i64>,
    at: Vec<String>,
    at_us: Vec<i64>,
    kind: Vec<String>,
    body: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

/// What an event changes in `audit_sessions`, in batch order.
enum SummaryChange {
    /// A session_opened or login_refused event: the session's row, unless it has one.
    Insert(Box<SummaryRow>),
    /// A session_closed event: an open session's row is closed.
    Close {
        session_id: String,
        at: String,
        at_us: i64,
        reason: String,
    },
}

struct SummaryRow {
    session_id: String,
    opened_at: String,
    opened_at_us: i64,
    status: &'static str,
    provider: Option<String>,
    subject: Option<String>,
    display_name: Option<String>,
    connection: String,
    protocol: String,
    client_addr: String,
    tls: bool,
    closed_at: Option<String>,
    closed_at_us: Option<i64>,
    close_reason: Option<String>,
}

/// Text for a summary column: a NUL, which PostgreSQL text cannot hold, becomes U+FFFD.
/// Summaries are an index for listing, never what verification reads, so this keeps every
/// event storable; the event itself keeps the text exactly (escaped in its JSON body).
fn summary_text(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn summary_change(event: &Event, row: &EncodedEvent) -> Option<SummaryChange> {
    let at_us = event.at.unix_micros();
    match &event.body {
        EventBody::SessionOpened(opened) => {
            let principal = &opened.principal;
            Some(SummaryChange::Insert(Box::new(SummaryRow {
                session_id: event.session_id.clone(),
                opened_at: row.at.clone(),
                opened_at_us: at_us,
                status: "open",
                provider: Some(summary_text(&principal.provider)),
                subject: Some(summary_text(&principal.subject)),
                display_name: Some(summary_text(&principal.display_name)),
                connection: summary_text(&opened.connection),
                protocol: protocol_name(opened.protocol),
                client_addr: summary_text(&opened.client_addr),
                tls: opened.tls,
                closed_at: None,
                closed_at_us: None,
                close_reason: None,
            })))
        }
        EventBody::LoginRefused(refused) => Some(SummaryChange::Insert(Box::new(SummaryRow {
            session_id: event.session_id.clone(),
            opened_at: row.at.clone(),
            opened_at_us: at_us,
            status: "login_refused",
            provider: None,
            subject: None,
            display_name: None,
            connection: summary_text(&refused.connection),
            protocol: protocol_name(refused.protocol),
            client_addr: summary_text(&refused.client_addr),
            tls: false,
            closed_at: Some(row.at.clone()),
            closed_at_us: Some(at_us),
            close_reason: Some(summary_text(&refused.reason)),
        }))),
        EventBody::SessionClosed(closed) => Some(SummaryChange::Close {
            session_id: event.session_id.clone(),
            at: row.at.clone(),
            at_us,
            reason: summary_text(&closed.reason),
        }),
        EventBody::Request(_)
        | EventBody::Result(_)
        | EventBody::Purged(_)
        | EventBody::ApprovalDecided(_)
        | EventBody::ApprovalResolved(_) => None,
    }
}

/// The strings of an event PostgreSQL stores as text outside its JSON body (which escapes
/// NUL), checked for NUL.
fn check_text(event: &Event) -> Result<(), String> {
    let place = || format!("event seq {} of session {:?}", event.seq, event.session_id);
    no_nul("the session id", &event.session_id)
        .and_then(|()| no_nul("prev_hash", &event.prev_hash))
        .and_then(|()| no_nul("hash", &event.hash))
        .map_err(|e| format!("{}: {e}", place()))
}

pub(super) fn append_events(store: &PostgresStore, events: &[Event]) -> Result<(), StoreError> {
    const OP: &str = "append_events";
    // Encoding cannot fail half-way through the transaction: do it first.
    let mut columns = EventColumns::default();
    let mut changes = Vec::new();
    for event in events {
        let row = EncodedEvent::of(event)
            .and_then(|row| check_text(event).map(|()| row))
            .map_err(|reason| store.invalid(OP, reason))?;
        changes.extend(summary_change(event, &row));
        columns.session_id.push(event.session_id.clone());
        columns.seq.push(row.seq);
        columns.at.push(row.at);
        columns.at_us.push(event.at.unix_micros());
        columns.kind.push(event.body.kind().as_str().to_owned());
        columns.body.push(row.body);
        columns.prev_hash.push(event.prev_hash.clone());
        columns.hash.push(event.hash.clone());
    }
    if columns.seq.is_empty() {
        return Ok(());
    }
    store.call(OP, move |client, db| {
        Box::pin(async move {
            let err = |e| classify(OP, db, e);
            let tx = client.transaction().await.map_err(err)?;
            let inserted = tx
                .query_typed(
                    "INSERT INTO audit_events \
                     (session_id, seq, at, at_us, kind, body, prev_hash, hash) \
                     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], \
                     $5::text[], $6::text[], $7::text[], $8::text[])",
                    &[
                        (&columns.session_id, Type::TEXT_ARRAY),
                        (&columns.seq, Type::INT8_ARRAY),
                        (&columns.at, Type::TEXT_ARRAY),
                        (&columns.at_us, Type::INT8_ARRAY),
                        (&columns.kind, Type::TEXT_ARRAY),
                        (&columns.body, Type::TEXT_ARRAY),
                        (&columns.prev_hash, Type::TEXT_ARRAY),
                        (&columns.hash, Type::TEXT_ARRAY),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if violates(&e, "audit_events_pkey") => {
                    tx.rollback().await.map_err(err)?;
                    let what = first_taken_position(client, &columns)
                        .await
                        .map_err(err)?
                        .unwrap_or_else(|| {
                            let detail = e.as_db_error().and_then(|d| d.detail()).unwrap_or("");
                            format!("an event of the batch ({detail})")
                        });
                    return Err(StoreError::Duplicate {
                        op: OP,
                        db: db.to_owned(),
                        what,
                    });
                }
                Err(e) => return Err(err(e)),
            }
            for change in &changes {
                apply(&tx, change).await.map_err(err)?;
            }
            // Dropping the transaction on any error above rolls the whole batch back.
            tx.commit().await.map_err(err)
        })
    })
}

/// After a batch failed on a taken position: the first of its events, in batch order,
/// whose position is in the store or earlier in the batch, named as SQLite names it.
async fn first_taken_position(
    client: &tokio_postgres::Client,
    columns: &EventColumns,
) -> Result<Option<String>, tokio_postgres::Error> {
    let stored: HashSet<(String, i64)> = client
        .query_typed(
            "SELECT session_id, seq FROM audit_events \
             WHERE (session_id, seq) IN (SELECT * FROM unnest($1::text[], $2::int8[]))",
            &[
                (&columns.session_id, Type::TEXT_ARRAY),
                (&columns.seq, Type::INT8_ARRAY),
            ],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let mut seen = HashSet::new();
    for (session_id, seq) in columns.session_id.iter().zip(&columns.seq) {
        let position = (session_id.clone(), *seq);
        if stored.contains(&position) || !seen.insert(position) {
            return Ok(Some(format!("event seq {seq} of session {session_id}")));
        }
    }
    Ok(None)
}

/// Keeps a session's summary row in step with its opening and closing events.
async fn apply(tx: &Transaction<'_>, change: &SummaryChange) -> Result<(), tokio_postgres::Error> {
    match change {
        SummaryChange::Insert(row) => {
            // A second opening of one session (which the gateway never records) leaves
            // the first in the summary rather than failing the batch: the events are what
            // counts.
            tx.query_typed(
                "INSERT INTO audit_sessions (session_id, opened_at, opened_at_us, status, \
                 principal_provider, principal_subject, principal_display_name, connection, \
                 protocol, client_addr, tls, closed_at, closed_at_us, close_reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (session_id) DO NOTHING",
                &[
                    (&row.session_id, Type::TEXT),
                    (&row.opened_at, Type::TEXT),
                    (&row.opened_at_us, Type::INT8),
                    (&row.status, Type::TEXT),
                    (&row.provider, Type::TEXT),
                    (&row.subject, Type::TEXT),
                    (&row.display_name, Type::TEXT),
                    (&row.connection, Type::TEXT),
                    (&row.protocol, Type::TEXT),
                    (&row.client_addr, Type::TEXT),
                    (&row.tls, Type::BOOL),
                    (&row.closed_at, Type::TEXT),
                    (&row.closed_at_us, Type::INT8),
                    (&row.close_reason, Type::TEXT),
                ],
            )
            .await?;
        }
        SummaryChange::Close {
            session_id,
            at,
            at_us,
            reason,
        } => {
            tx.query_typed(
                "UPDATE audit_sessions \
                 SET status = 'closed', closed_at = $2, closed_at_us = $3, close_reason = $4 \
                 WHERE session_id = $1 AND status = 'open'",
                &[
                    (session_id, Type::TEXT),
                    (at, Type::TEXT),
                    (at_us, Type::INT8),
                    (reason, Type::TEXT),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

fn raw_event(row: &Row) -> Result<RawEvent, tokio_postgres::Error> {
    Ok(RawEvent {
        session_id: row.try_get(0)?,
        seq: row.try_get(1)?,
        at: row.try_get(2)?,
        prev_hash: row.try_get(3)?,
        hash: row.try_get(4)?,
        body: row.try_get(5)?,
    })
}

/// The events a query returns, decoded as SQLite's are.
fn query_events(
    store: &PostgresStore,
    op: &'static str,
    sql: String,
    session_id: &str,
) -> Result<Vec<Event>, StoreError> {
    if session_id.contains('\0') {
        // No stored session id has one.
        return Ok(Vec::new());
    }
    let session_id = session_id.to_owned();
    let raws = store.call(op, move |client, db| {
        Box::pin(async move {
            client
                .query_typed(&sql, &[(&session_id, Type::TEXT)])
                .await
                .map_err(|e| classify(op, db, e))?
                .iter()
                .map(raw_event)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unreadable(op, db, e))
        })
    })?;
    raws.into_iter()
        .map(|raw| raw.decode(op, &store.db))
        .collect()
}

pub(super) fn session_events(
    store: &PostgresStore,
    session_id: &str,
) -> Result<Vec<Event>, StoreError> {
    query_events(
        store,
        "session_events",
        format!("SELECT {EVENT_COLUMNS} FROM audit_events WHERE session_id = $1 ORDER BY seq"),
        session_id,
    )
}

pub(super) fn last_event(
    store: &PostgresStore,
    session_id: &str,
) -> Result<Option<Event>, StoreError> {
    let events = query_events(
        store,
        "last_event",
        format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE session_id = $1 \
             ORDER BY seq DESC LIMIT 1"
        ),
        session_id,
    )?;
    Ok(events.into_iter().next())
}

pub(super) fn session_ids(
    store: &PostgresStore,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    const OP: &str = "session_ids";
    // Session ids are never empty (a CHECK), so "" is before the first. An `after` holding
    // a NUL is cut there: no stored id starts with what follows it, so the ids after the
    // cut are the ids after `after`.
    let after = after.unwrap_or("");
    let after = after.split('\0').next().unwrap_or("").to_owned();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    store.call(OP, move |client, db| {
        Box::pin(async move {
            client
                .query_typed(
                    "SELECT DISTINCT session_id FROM audit_events WHERE session_id > $1 \
                     ORDER BY session_id LIMIT $2",
                    &[(&after, Type::TEXT), (&limit, Type::INT8)],
                )
                .await
                .map_err(|e| classify(OP, db, e))?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| unreadable(OP, db, e))
        })
    })
}

fn raw_summary(row: &Row) -> Result<RawSummary, tokio_postgres::Error> {
    Ok(RawSummary {
        session_id: row.try_get(0)?,
        opened_at: row.try_get(1)?,
        status: row.try_get(2)?,
        provider: row.try_get(3)?,
        subject: row.try_get(4)?,
        display_name: row.try_get(5)?,
        connection: row.try_get(6)?,
        protocol: row.try_get(7)?,
        client_addr: row.try_get(8)?,
        tls: row.try_get(9)?,
        closed_at: row.try_get(10)?,
        close_reason: row.try_get(11)?,
        events: row.try_get(12)?,
    })
}

pub(super) fn list_sessions(
    store: &PostgresStore,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>, StoreError> {
    const OP: &str = "list_sessions";
    let texts = [&filter.principal, &filter.connection];
    if texts
        .iter()
        .any(|t| t.as_ref().is_some_and(|t| t.contains('\0')))
    {
        // Nothing stored has a NUL, so nothing matches.
        return Ok(Vec::new());
    }
    let filter = filter.clone();
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move {
            let since = filter.since.map(|t| t.unix_micros());
            let mut conditions = Vec::new();
            let mut values: Vec<(&(dyn ToSql + Sync), Type)> = Vec::new();
            if let Some(principal) = &filter.principal {
                values.push((principal, Type::TEXT));
                let n = values.len();
                conditions.push(format!(
                    "(principal_subject = ${n} OR principal_display_name = ${n})"
                ));
            }
            if let Some(connection) = &filter.connection {
                values.push((connection, Type::TEXT));
                conditions.push(format!("connection = ${}", values.len()));
            }
            if let Some(since) = &since {
                values.push((since, Type::INT8));
                conditions.push(format!("opened_at_us >= ${}", values.len()));
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
            client
                .query_typed(&sql, &values)
                .await
                .map_err(|e| classify(OP, db, e))?
                .iter()
                .map(raw_summary)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unreadable(OP, db, e))
        })
    })?;
    raws.into_iter()
        .map(|raw| raw.decode(OP, &store.db))
        .collect()
}

pub(super) fn put_checkpoint(
    store: &PostgresStore,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    const OP: &str = "put_checkpoint";
    let heads = serde_json::to_string(&checkpoint.heads)
        .map_err(|e| store.invalid(OP, format!("the checkpoint's heads do not serialize: {e}")))?;
    no_nul("the checkpoint's key id", &checkpoint.key_id)
        .and_then(|()| no_nul("the checkpoint's signature", &checkpoint.signature))
        .map_err(|reason| store.invalid(OP, reason))?;
    let at = checkpoint.at.to_string();
    let at_us = checkpoint.at.unix_micros();
    let key_id = checkpoint.key_id.clone();
    let signature = checkpoint.signature.clone();
    store.call(OP, move |client, db| {
        Box::pin(async move {
            client
                .query_typed(
                    "INSERT INTO audit_checkpoints (at, at_us, key_id, heads, signature) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        (&at, Type::TEXT),
                        (&at_us, Type::INT8),
                        (&key_id, Type::TEXT),
                        (&heads, Type::TEXT),
                        (&signature, Type::TEXT),
                    ],
                )
                .await
                .map_err(|e| classify(OP, db, e))?;
            Ok(())
        })
    })
}

pub(super) fn checkpoints(store: &PostgresStore) -> Result<Vec<Checkpoint>, StoreError> {
    const OP: &str = "checkpoints";
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move {
            client
                .query_typed(
                    "SELECT id, at, key_id, heads, signature FROM audit_checkpoints ORDER BY id",
                    &[],
                )
                .await
                .map_err(|e| classify(OP, db, e))?
                .iter()
                .map(|row| {
                    Ok(RawCheckpoint {
                        id: row.try_get(0)?,
                        at: row.try_get(1)?,
                        key_id: row.try_get(2)?,
                        heads: row.try_get(3)?,
                        signature: row.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(|e| unreadable(OP, db, e))
        })
    })?;
    raws.into_iter()
        .map(|raw| raw.decode(OP, &store.db))
        .collect()
}

pub(super) fn purge_sessions(
    store: &PostgresStore,
    before: Timestamp,
    keep: &[String],
) -> Result<u64, StoreError> {
    const OP: &str = "purge_sessions";
    let before = before.unix_micros();
    let keep: HashSet<String> = keep.iter().cloned().collect();
    store.call(OP, move |client, db| {
        Box::pin(async move {
            let err = |e| classify(OP, db, e);
            let tx = client.transaction().await.map_err(err)?;
            // Writers wait until the purge commits (readers do not), as under SQLite's write
            // lock: an event appended meanwhile to an expiring session either lands before
            // the scan, and keeps its session, or after the purge, never half-way.
            tx.batch_execute("LOCK TABLE audit_events, audit_sessions IN SHARE ROW EXCLUSIVE MODE")
                .await
                .map_err(err)?;
            let expired: Vec<String> = tx
                .query_typed(
                    "SELECT session_id FROM audit_events GROUP BY session_id \
                     HAVING max(at_us) < $1 AND count(*) FILTER (WHERE kind = 'purged') = 0",
                    &[(&before, Type::INT8)],
                )
                .await
                .map_err(err)?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(|e| unreadable(OP, db, e))?;
            let doomed: Vec<String> = expired
                .into_iter()
                .filter(|id| !keep.contains(id))
                .collect();
            if !doomed.is_empty() {
                for table in ["audit_events", "audit_sessions"] {
                    tx.query_typed(
                        &format!("DELETE FROM {table} WHERE session_id = ANY($1)"),
                        &[(&doomed, Type::TEXT_ARRAY)],
                    )
                    .await
                    .map_err(err)?;
                }
            }
            tx.commit().await.map_err(err)?;
            Ok(u64::try_from(doomed.len()).unwrap_or(u64::MAX))
        })
    })
}
