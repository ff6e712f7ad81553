//! Just-in-time approval in PostgreSQL: the SQL behind the [`Store`](crate::Store) methods
//! for approval requests and their decisions (tables in
//! `migrations/postgres/0003_approvals.sql`), with the SQLite store's semantics
//! (`sqlite/approvals.rs`).
//!
//! Every state change is one transaction at `READ COMMITTED` whose updates are conditional
//! on the status they change (`WHERE status = 'pending'`, `'approved'` for a redemption).
//! A decision first locks its request's row (`SELECT ... FOR UPDATE`), so it reads the
//! request and its decisions as the last change committed them and no other decision,
//! expiry, withdrawal or redemption comes in between; an update that waited for such a
//! lock re-checks its condition on the row as committed, so it skips a request that
//! stopped matching meanwhile. A redemption picks its ticket with `FOR UPDATE` (waiting
//! for a competing redemption, then moving on to the next matching ticket if that one
//! took it) rather than `SKIP LOCKED`, which would report no ticket when the only one is
//! merely locked by a call that leaves it approved. Lock waits are bounded by the
//! session's `lock_timeout` (see `worker.rs`), past which the call is unavailable.
//!
//! Each transaction is committed or rolled back before its call returns ([`finish`]),
//! whatever the outcome: a transaction merely dropped is rolled back only once the
//! connection's next call runs (the connection is driven only during calls), and until
//! then it would keep the request's row locked against every other gateway.
//!
//! A request is read with its decisions in one statement (`rows::approvals_query`) and
//! decoded by the same code as SQLite's.

use sluice_core::ApprovalStatus;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row, Transaction};

use super::{classify, no_nul, unreadable, violates, PostgresStore};
use crate::approvals::{ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome};
use crate::error::StoreError;
use crate::rows::{
    approvals_query, group_approvals, principal_json, EncodedApproval, RawApproval, RawDecision,
    DECISION_COLUMNS_AT, NEWEST_FIRST, OLDEST_FIRST,
};

/// The strings of a request PostgreSQL stores as text outside its JSON columns (which
/// escape NUL), checked for NUL.
fn check_text(record: &ApprovalRecord) -> Result<(), String> {
    let texts = [
        ("id", Some(&record.id)),
        ("requester's provider", Some(&record.requester.provider)),
        ("requester's subject", Some(&record.requester.subject)),
        ("connection", Some(&record.connection)),
        ("protocol", Some(&record.protocol)),
        ("session id", record.session_id.as_ref()),
        ("statement", Some(&record.statement)),
        ("fingerprint", Some(&record.fingerprint)),
        ("reason", Some(&record.reason)),
        ("rule", Some(&record.rule)),
    ];
    for (what, text) in texts {
        if let Some(text) = text {
            no_nul(&format!("the approval request's {what}"), text)?;
        }
    }
    Ok(())
}

pub(super) fn insert_approval(
    store: &PostgresStore,
    record: &ApprovalRecord,
) -> Result<(), StoreError> {
    const OP: &str = "insert_approval";
    let row = EncodedApproval::of(record)
        .and_then(|row| check_text(record).map(|()| row))
        .map_err(|reason| store.invalid(OP, reason))?;
    let record = record.clone();
    store.call(OP, move |client, db| {
        Box::pin(async move {
            let err = |e| classify(OP, db, e);
            let duplicate = || StoreError::Duplicate {
                op: OP,
                db: db.to_owned(),
                what: format!("an approval request with id {:?}", record.id),
            };
            let tx = client.transaction().await.map_err(err)?;
            let inserted = insert(&tx, &record, &row).await.map_err(|e| {
                if violates(&e, "approvals_pkey") {
                    duplicate()
                } else {
                    err(e)
                }
            });
            let inserted = match inserted {
                Ok(true) => Ok(()),
                Ok(false) => Err(duplicate()),
                Err(e) => Err(e),
            };
            finish(tx, inserted, OP, db).await
        })
    })
}

/// Inserts the request unless its id is taken (`false`). Checked first to report it as
/// SQLite does; the key decides any race with another gateway.
async fn insert(
    tx: &Transaction<'_>,
    record: &ApprovalRecord,
    row: &EncodedApproval,
) -> Result<bool, tokio_postgres::Error> {
    let taken = !tx
        .query_typed(
            "SELECT 1 FROM approvals WHERE id = $1",
            &[(&record.id, Type::TEXT)],
        )
        .await?
        .is_empty();
    if taken {
        return Ok(false);
    }
    let (mode, status) = (record.mode.as_str(), record.status.as_str());
    tx.query_typed(
        "INSERT INTO approvals (id, mode, status, requester_provider, requester_subject, \
         requester, connection, protocol, session_id, statement, parameters, fingerprint, \
         reason, rule, approvers, min_approvals, requested_at, expires_at, grant_window, \
         grant_expires_at, resolved_at, redeemed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22)",
        &[
            (&record.id, Type::TEXT),
            (&mode, Type::TEXT),
            (&status, Type::TEXT),
            (&record.requester.provider, Type::TEXT),
            (&record.requester.subject, Type::TEXT),
            (&row.requester, Type::TEXT),
            (&record.connection, Type::TEXT),
            (&record.protocol, Type::TEXT),
            (&record.session_id, Type::TEXT),
            (&record.statement, Type::TEXT),
            (&row.parameters, Type::TEXT),
            (&record.fingerprint, Type::TEXT),
            (&record.reason, Type::TEXT),
            (&record.rule, Type::TEXT),
            (&row.approvers, Type::TEXT),
            (&row.min_approvals, Type::INT8),
            (&record.requested_at, Type::INT8),
            (&record.expires_at, Type::INT8),
            (&record.grant_window, Type::INT8),
            (&record.grant_expires_at, Type::INT8),
            (&record.resolved_at, Type::INT8),
            (&record.redeemed_at, Type::INT8),
        ],
    )
    .await?;
    Ok(true)
}

pub(super) fn approval(
    store: &PostgresStore,
    id: &str,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "approval";
    if id.contains('\0') {
        // No stored id has one.
        return Ok(None);
    }
    let id = id.to_owned();
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move { read_by_id(&*client, OP, db, &id).await })
    })?;
    Ok(decode(store, OP, raws)?.into_iter().next())
}

pub(super) fn list_approvals(
    store: &PostgresStore,
    filter: &ApprovalFilter,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    const OP: &str = "list_approvals";
    if filter.connection.as_ref().is_some_and(|c| c.contains('\0')) {
        // Nothing stored has a NUL, so nothing matches.
        return Ok(Vec::new());
    }
    let filter = filter.clone();
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move {
            let status = filter.status.map(ApprovalStatus::as_str);
            let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
            let mut conditions = Vec::new();
            let mut values: Vec<(&(dyn ToSql + Sync), Type)> = Vec::new();
            if let Some(status) = &status {
                values.push((status, Type::TEXT));
                conditions.push(format!("status = ${}", values.len()));
            }
            if let Some(connection) = &filter.connection {
                values.push((connection, Type::TEXT));
                conditions.push(format!("connection = ${}", values.len()));
            }
            let filter_sql = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let limit_sql = match &limit {
                Some(limit) => {
                    values.push((limit, Type::INT8));
                    format!("LIMIT ${}", values.len())
                }
                None => String::new(),
            };
            let sql = approvals_query(
                &format!(
                    "SELECT * FROM approvals {filter_sql} \
                     ORDER BY requested_at DESC, id DESC {limit_sql}"
                ),
                NEWEST_FIRST,
            );
            read(&*client, OP, db, &sql, &values).await
        })
    })?;
    decode(store, OP, raws)
}

pub(super) fn decide_approval(
    store: &PostgresStore,
    id: &str,
    decision: &ApprovalDecision,
) -> Result<DecideOutcome, StoreError> {
    const OP: &str = "decide_approval";
    let approver = principal_json(&decision.approver)
        .and_then(|json| {
            no_nul("the approver's provider", &decision.approver.provider)?;
            no_nul("the approver's subject", &decision.approver.subject)?;
            no_nul("the decision's reason", &decision.reason)?;
            Ok(json)
        })
        .map_err(|reason| store.invalid(OP, reason))?;
    if id.contains('\0') {
        // No stored id has one.
        return Ok(DecideOutcome::NotFound);
    }
    let id = id.to_owned();
    let decision = decision.clone();
    store.call(OP, move |client, db| {
        Box::pin(async move {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify(OP, db, e))?;
            let outcome = decide(&tx, OP, db, &id, &decision, &approver).await;
            finish(tx, outcome, OP, db).await
        })
    })
}

/// [`decide_approval`]'s transaction.
async fn decide(
    tx: &Transaction<'_>,
    op: &'static str,
    db: &str,
    id: &String,
    decision: &ApprovalDecision,
    approver: &String,
) -> Result<DecideOutcome, StoreError> {
    let err = |e| classify(op, db, e);
    // Held until the transaction ends: no other change of this request comes in between.
    let found = !tx
        .query_typed(
            "SELECT 1 FROM approvals WHERE id = $1 FOR UPDATE",
            &[(id, Type::TEXT)],
        )
        .await
        .map_err(err)?
        .is_empty();
    if !found {
        return Ok(DecideOutcome::NotFound);
    }
    let current = reread(tx, op, db, id).await?;
    if current.status != ApprovalStatus::Pending {
        return Ok(DecideOutcome::NotPending(current));
    }
    if decision.at > current.expires_at {
        let expired = ApprovalStatus::Expired.as_str();
        tx.query_typed(
            "UPDATE approvals SET status = $2, resolved_at = $3 \
             WHERE id = $1 AND status = 'pending'",
            &[
                (id, Type::TEXT),
                (&expired, Type::TEXT),
                (&decision.at, Type::INT8),
            ],
        )
        .await
        .map_err(err)?;
        return Ok(DecideOutcome::NotPending(reread(tx, op, db, id).await?));
    }
    if current.decided_by(&decision.approver) {
        return Ok(DecideOutcome::AlreadyDecided(current));
    }
    let verdict = decision.verdict.as_str();
    tx.query_typed(
        "INSERT INTO approval_decisions (approval_id, seq, approver_provider, \
         approver_subject, approver, verdict, reason, at) \
         VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM approval_decisions \
         WHERE approval_id = $1), $2, $3, $4, $5, $6, $7)",
        &[
            (id, Type::TEXT),
            (&decision.approver.provider, Type::TEXT),
            (&decision.approver.subject, Type::TEXT),
            (approver, Type::TEXT),
            (&verdict, Type::TEXT),
            (&decision.reason, Type::TEXT),
            (&decision.at, Type::INT8),
        ],
    )
    .await
    .map_err(err)?;
    if let Some(resolution) = current.resolution(decision) {
        let status = resolution.status.as_str();
        let changed = tx
            .query_typed(
                "UPDATE approvals SET status = $2, resolved_at = $3, grant_expires_at = $4 \
                 WHERE id = $1 AND status = 'pending' RETURNING 1",
                &[
                    (id, Type::TEXT),
                    (&status, Type::TEXT),
                    (&resolution.resolved_at, Type::INT8),
                    (&resolution.grant_expires_at, Type::INT8),
                ],
            )
            .await
            .map_err(err)?;
        if changed.len() != 1 {
            // The row lock makes this impossible; if it happens, record nothing.
            return Err(vanished(op, db, id));
        }
    }
    Ok(DecideOutcome::Recorded(reread(tx, op, db, id).await?))
}

pub(super) fn resolve_approval(
    store: &PostgresStore,
    id: &str,
    to: ApprovalStatus,
    at: i64,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "resolve_approval";
    if !matches!(to, ApprovalStatus::Expired | ApprovalStatus::Withdrawn) {
        return Err(store.invalid(
            OP,
            format!("a pending request can be resolved as expired or withdrawn, not {to}"),
        ));
    }
    if id.contains('\0') {
        // No stored id has one.
        return Ok(None);
    }
    let id = id.to_owned();
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify(OP, db, e))?;
            let to = to.as_str();
            let resolved = match tx
                .query_typed(
                    "UPDATE approvals SET status = $2, resolved_at = $3 \
                     WHERE id = $1 AND status = 'pending'",
                    &[(&id, Type::TEXT), (&to, Type::TEXT), (&at, Type::INT8)],
                )
                .await
            {
                Ok(_) => read_by_id(&tx, OP, db, &id).await,
                Err(e) => Err(classify(OP, db, e)),
            };
            finish(tx, resolved, OP, db).await
        })
    })?;
    Ok(decode(store, OP, raws)?.into_iter().next())
}

pub(super) fn redeem_ticket(
    store: &PostgresStore,
    provider: &str,
    subject: &str,
    connection: &str,
    fingerprint: &str,
    at: i64,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "redeem_ticket";
    let keys = [provider, subject, connection, fingerprint];
    if keys.iter().any(|k| k.contains('\0')) {
        // Nothing stored has a NUL, so no ticket matches.
        return Ok(None);
    }
    let keys = keys.map(str::to_owned);
    let raws = store.call(OP, move |client, db| {
        Box::pin(async move {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify(OP, db, e))?;
            let redeemed = redeem(&tx, OP, db, &keys, at).await;
            finish(tx, redeemed, OP, db).await
        })
    })?;
    Ok(decode(store, OP, raws)?.into_iter().next())
}

/// [`redeem_ticket`]'s transaction: the ticket redeemed, if any (none or one).
async fn redeem(
    tx: &Transaction<'_>,
    op: &'static str,
    db: &str,
    [provider, subject, connection, fingerprint]: &[String; 4],
    at: i64,
) -> Result<Vec<RawApproval>, StoreError> {
    let redeemed = tx
        .query_typed(
            "UPDATE approvals SET status = 'redeemed', redeemed_at = $5 \
             WHERE status = 'approved' AND id = (SELECT id FROM approvals \
             WHERE requester_provider = $1 AND requester_subject = $2 AND connection = $3 \
             AND fingerprint = $4 AND status = 'approved' AND mode = 'ticket' \
             AND grant_expires_at > $5 \
             ORDER BY requested_at, id LIMIT 1 FOR UPDATE) \
             RETURNING id",
            &[
                (provider, Type::TEXT),
                (subject, Type::TEXT),
                (connection, Type::TEXT),
                (fingerprint, Type::TEXT),
                (&at, Type::INT8),
            ],
        )
        .await
        .map_err(|e| classify(op, db, e))?;
    let Some(row) = redeemed.first() else {
        return Ok(Vec::new());
    };
    let id: String = row.try_get(0).map_err(|e| unreadable(op, db, e))?;
    read_by_id(tx, op, db, &id).await
}

pub(super) fn expire_due(
    store: &PostgresStore,
    now: i64,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    end_all_pending(
        store,
        "expire_due",
        "expires_at <= $1",
        ApprovalStatus::Expired,
        now,
    )
}

pub(super) fn withdraw_pending_holds(
    store: &PostgresStore,
    at: i64,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    end_all_pending(
        store,
        "withdraw_pending_holds",
        "mode = 'hold'",
        ApprovalStatus::Withdrawn,
        at,
    )
}

/// Ends every pending request `condition` (SQL on `approvals`, `$1` being `at`) matches
/// with `to` at `at`, and returns them as they now stand, oldest first.
fn end_all_pending(
    store: &PostgresStore,
    op: &'static str,
    condition: &'static str,
    to: ApprovalStatus,
    at: i64,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    let raws = store.call(op, move |client, db| {
        Box::pin(async move {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify(op, db, e))?;
            let ended = end_all(&tx, op, db, condition, to, at).await;
            finish(tx, ended, op, db).await
        })
    })?;
    decode(store, op, raws)
}

/// [`end_all_pending`]'s transaction.
async fn end_all(
    tx: &Transaction<'_>,
    op: &'static str,
    db: &str,
    condition: &str,
    to: ApprovalStatus,
    at: i64,
) -> Result<Vec<RawApproval>, StoreError> {
    let to = to.as_str();
    let ended: Vec<String> = tx
        .query_typed(
            &format!(
                "UPDATE approvals SET status = $2, resolved_at = $1 \
                 WHERE status = 'pending' AND {condition} RETURNING id"
            ),
            &[(&at, Type::INT8), (&to, Type::TEXT)],
        )
        .await
        .map_err(|e| classify(op, db, e))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(op, db, e))?;
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    read(
        tx,
        op,
        db,
        &approvals_query("SELECT * FROM approvals WHERE id = ANY($1)", OLDEST_FIRST),
        &[(&ended, Type::TEXT_ARRAY)],
    )
    .await
}

/// Ends a transaction before its call returns: committed if `outcome` is `Ok` (an
/// outcome that wrote nothing commits nothing, and releases its locks), rolled back if it
/// is an error, which is what the call then returns.
async fn finish<T>(
    tx: Transaction<'_>,
    outcome: Result<T, StoreError>,
    op: &'static str,
    db: &str,
) -> Result<T, StoreError> {
    match outcome {
        Ok(value) => {
            tx.commit().await.map_err(|e| classify(op, db, e))?;
            Ok(value)
        }
        Err(error) => {
            // A failed rollback means a broken connection, which the server rolls back
            // anyway; the error worth reporting is the first.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// The request with its decisions, undecoded (none or one).
async fn read_by_id(
    client: &impl GenericClient,
    op: &'static str,
    db: &str,
    id: &String,
) -> Result<Vec<RawApproval>, StoreError> {
    read(
        client,
        op,
        db,
        &approvals_query("SELECT * FROM approvals WHERE id = $1", NEWEST_FIRST),
        &[(id, Type::TEXT)],
    )
    .await
}

/// The request as it stands in this transaction, which has found it, decoded.
async fn reread(
    client: &impl GenericClient,
    op: &'static str,
    db: &str,
    id: &String,
) -> Result<ApprovalRecord, StoreError> {
    read_by_id(client, op, db, id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| vanished(op, db, id))?
        .decode(op, db)
}

/// The requests (with their decisions) an [`approvals_query`] returns.
async fn read(
    client: &impl GenericClient,
    op: &'static str,
    db: &str,
    sql: &str,
    values: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<RawApproval>, StoreError> {
    let rows = client
        .query_typed(sql, values)
        .await
        .map_err(|e| classify(op, db, e))?
        .iter()
        .map(approval_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(op, db, e))?;
    Ok(group_approvals(rows))
}

fn decode(
    store: &PostgresStore,
    op: &'static str,
    raws: Vec<RawApproval>,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    raws.into_iter()
        .map(|raw| raw.decode(op, &store.db))
        .collect()
}

/// A request changed or went away while this call held its row lock: it cannot, so this
/// is reported (and the transaction rolled back) rather than papered over.
fn vanished(op: &'static str, db: &str, id: &str) -> StoreError {
    StoreError::Other {
        op,
        db: db.to_owned(),
        source: format!("approval request {id:?} changed under its row lock").into(),
    }
}

/// One row of an [`approvals_query`].
fn approval_row(row: &Row) -> Result<(RawApproval, Option<RawDecision>), tokio_postgres::Error> {
    let approval = RawApproval {
        id: row.try_get(0)?,
        mode: row.try_get(1)?,
        status: row.try_get(2)?,
        requester: row.try_get(3)?,
        connection: row.try_get(4)?,
        protocol: row.try_get(5)?,
        session_id: row.try_get(6)?,
        statement: row.try_get(7)?,
        parameters: row.try_get(8)?,
        fingerprint: row.try_get(9)?,
        reason: row.try_get(10)?,
        rule: row.try_get(11)?,
        approvers: row.try_get(12)?,
        min_approvals: row.try_get(13)?,
        requested_at: row.try_get(14)?,
        expires_at: row.try_get(15)?,
        grant_window: row.try_get(16)?,
        grant_expires_at: row.try_get(17)?,
        resolved_at: row.try_get(18)?,
        redeemed_at: row.try_get(19)?,
        decisions: Vec::new(),
    };
    let d = DECISION_COLUMNS_AT;
    let decision = match row.try_get::<_, Option<i64>>(d)? {
        Some(seq) => Some(RawDecision {
            seq,
            approver: row.try_get(d + 1)?,
            verdict: row.try_get(d + 2)?,
            reason: row.try_get(d + 3)?,
            at: row.try_get(d + 4)?,
        }),
        None => None,
    };
    Ok((approval, decision))
}
