//! Just-in-time approval in SQLite: the SQL behind the [`Store`](crate::Store) methods for
//! approval requests and their decisions (tables in `migrations/0003_approvals.sql`).
//!
//! Every state change is one `IMMEDIATE` transaction: it takes the database's write lock
//! before reading anything, so what it read still holds when it writes, and each update is
//! conditional on the status it changes (`WHERE status = 'pending'`, `'approved'` for a
//! redemption). Two gateways on one file, or an approver and the expiry sweeper, so decide
//! a request once, and a ticket is redeemed once. A request is read with its decisions in
//! one statement (`rows::approvals_query`), as one transaction left them, and given back
//! from the same transaction that changed it.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};
use sluice_core::ApprovalStatus;

use super::SqliteStore;
use crate::approvals::{ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome};
use crate::error::StoreError;
use crate::rows::{
    approvals_query, group_approvals, principal_json, EncodedApproval, RawApproval, RawDecision,
    DECISION_COLUMNS_AT, NEWEST_FIRST, OLDEST_FIRST,
};

pub(super) fn insert_approval(
    store: &SqliteStore,
    record: &ApprovalRecord,
) -> Result<(), StoreError> {
    const OP: &str = "insert_approval";
    let row = EncodedApproval::of(record).map_err(|reason| invalid(store, OP, reason))?;
    let mut conn = store.conn.lock();
    // IMMEDIATE: the uniqueness check and the insert see the same state even if another
    // process writes the file concurrently.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    let taken = tx
        .prepare_cached("SELECT 1 FROM approvals WHERE id = ?1")
        .and_then(|mut s| s.exists([&record.id]))
        .map_err(store.err(OP))?;
    if taken {
        return Err(StoreError::Duplicate {
            op: OP,
            db: store.db.clone(),
            what: format!("an approval request with id {:?}", record.id),
        });
    }
    tx.prepare_cached(
        "INSERT INTO approvals (id, mode, status, requester_provider, requester_subject, \
         requester, connection, protocol, session_id, statement, parameters, fingerprint, \
         reason, rule, approvers, min_approvals, requested_at, expires_at, grant_window, \
         grant_expires_at, resolved_at, redeemed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
         ?18, ?19, ?20, ?21, ?22)",
    )
    .and_then(|mut s| {
        s.execute(params![
            record.id,
            record.mode.as_str(),
            record.status.as_str(),
            record.requester.provider,
            record.requester.subject,
            row.requester,
            record.connection,
            record.protocol,
            record.session_id,
            record.statement,
            row.parameters,
            record.fingerprint,
            record.reason,
            record.rule,
            row.approvers,
            row.min_approvals,
            record.requested_at,
            record.expires_at,
            record.grant_window,
            record.grant_expires_at,
            record.resolved_at,
            record.redeemed_at,
        ])
    })
    .map_err(store.err(OP))?;
    tx.commit().map_err(store.err(OP))
}

pub(super) fn approval(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "approval";
    let conn = store.conn.lock();
    let raws = read_by_id(&conn, id).map_err(store.err(OP))?;
    drop(conn);
    Ok(decode(store, OP, raws)?.into_iter().next())
}

pub(super) fn list_approvals(
    store: &SqliteStore,
    filter: &ApprovalFilter,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    const OP: &str = "list_approvals";
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(status) = filter.status {
        values.push(status.as_str().to_owned().into());
        conditions.push(format!("status = ?{}", values.len()));
    }
    if let Some(connection) = &filter.connection {
        values.push(connection.clone().into());
        conditions.push(format!("connection = ?{}", values.len()));
    }
    let filter_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let limit_sql = match filter.limit {
        Some(limit) => {
            values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            format!("LIMIT ?{}", values.len())
        }
        None => String::new(),
    };
    let sql = approvals_query(
        &format!(
            "SELECT * FROM approvals {filter_sql} ORDER BY requested_at DESC, id DESC {limit_sql}"
        ),
        NEWEST_FIRST,
    );
    let conn = store.conn.lock();
    let raws = read(&conn, &sql, params_from_iter(values)).map_err(store.err(OP))?;
    drop(conn);
    decode(store, OP, raws)
}

pub(super) fn decide_approval(
    store: &SqliteStore,
    id: &str,
    decision: &ApprovalDecision,
) -> Result<DecideOutcome, StoreError> {
    const OP: &str = "decide_approval";
    let approver =
        principal_json(&decision.approver).map_err(|reason| invalid(store, OP, reason))?;
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    let Some(current) = reread(store, OP, &tx, id)? else {
        return Ok(DecideOutcome::NotFound);
    };
    // Dropping the transaction without a write (the early returns) changes nothing.
    if current.status != ApprovalStatus::Pending {
        return Ok(DecideOutcome::NotPending(current));
    }
    if decision.at > current.expires_at {
        end_pending(&tx, id, ApprovalStatus::Expired, decision.at).map_err(store.err(OP))?;
        let expired = reread(store, OP, &tx, id)?.ok_or_else(|| vanished(store, OP, id))?;
        tx.commit().map_err(store.err(OP))?;
        return Ok(DecideOutcome::NotPending(expired));
    }
    if current.decided_by(&decision.approver) {
        return Ok(DecideOutcome::AlreadyDecided(current));
    }
    tx.prepare_cached(
        "INSERT INTO approval_decisions (approval_id, seq, approver_provider, \
         approver_subject, approver, verdict, reason, at) \
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM approval_decisions \
         WHERE approval_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            decision.approver.provider,
            decision.approver.subject,
            approver,
            decision.verdict.as_str(),
            decision.reason,
            decision.at,
        ])
    })
    .map_err(store.err(OP))?;
    if let Some(resolution) = current.resolution(decision) {
        let changed = tx
            .prepare_cached(
                "UPDATE approvals SET status = ?2, resolved_at = ?3, grant_expires_at = ?4 \
                 WHERE id = ?1 AND status = 'pending'",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    resolution.status.as_str(),
                    resolution.resolved_at,
                    resolution.grant_expires_at,
                ])
            })
            .map_err(store.err(OP))?;
        if changed != 1 {
            // The write lock makes this impossible; if it happens, record nothing.
            return Err(vanished(store, OP, id));
        }
    }
    let decided = reread(store, OP, &tx, id)?.ok_or_else(|| vanished(store, OP, id))?;
    tx.commit().map_err(store.err(OP))?;
    Ok(DecideOutcome::Recorded(decided))
}

pub(super) fn resolve_approval(
    store: &SqliteStore,
    id: &str,
    to: ApprovalStatus,
    at: i64,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "resolve_approval";
    if !matches!(to, ApprovalStatus::Expired | ApprovalStatus::Withdrawn) {
        return Err(invalid(
            store,
            OP,
            format!("a pending request can be resolved as expired or withdrawn, not {to}"),
        ));
    }
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    end_pending(&tx, id, to, at).map_err(store.err(OP))?;
    let record = reread(store, OP, &tx, id)?;
    tx.commit().map_err(store.err(OP))?;
    Ok(record)
}

pub(super) fn redeem_ticket(
    store: &SqliteStore,
    provider: &str,
    subject: &str,
    connection: &str,
    fingerprint: &str,
    at: i64,
) -> Result<Option<ApprovalRecord>, StoreError> {
    const OP: &str = "redeem_ticket";
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(OP))?;
    let redeemed: Option<String> = tx
        .prepare_cached(
            "UPDATE approvals SET status = 'redeemed', redeemed_at = ?5 \
             WHERE status = 'approved' AND id = (SELECT id FROM approvals \
             WHERE requester_provider = ?1 AND requester_subject = ?2 AND connection = ?3 \
             AND fingerprint = ?4 AND status = 'approved' AND mode = 'ticket' \
             AND grant_expires_at > ?5 \
             ORDER BY requested_at, id LIMIT 1) \
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![provider, subject, connection, fingerprint, at],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(store.err(OP))?;
    let Some(id) = redeemed else {
        return Ok(None);
    };
    let record = reread(store, OP, &tx, &id)?.ok_or_else(|| vanished(store, OP, &id))?;
    tx.commit().map_err(store.err(OP))?;
    Ok(Some(record))
}

pub(super) fn expire_due(store: &SqliteStore, now: i64) -> Result<Vec<ApprovalRecord>, StoreError> {
    end_all_pending(
        store,
        "expire_due",
        "expires_at <= ?1",
        ApprovalStatus::Expired,
        now,
    )
}

pub(super) fn withdraw_pending_holds(
    store: &SqliteStore,
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

/// Ends every pending request `condition` (SQL on `approvals`, `?1` being `at`) matches
/// with `to` at `at`, and returns them as they now stand, oldest first.
fn end_all_pending(
    store: &SqliteStore,
    op: &'static str,
    condition: &str,
    to: ApprovalStatus,
    at: i64,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    let mut conn = store.conn.lock();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store.err(op))?;
    let ended: Vec<String> = tx
        .prepare_cached(&format!(
            "UPDATE approvals SET status = ?2, resolved_at = ?1 \
             WHERE status = 'pending' AND {condition} RETURNING id"
        ))
        .and_then(|mut s| {
            s.query_map(params![at, to.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(store.err(op))?;
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let ids = serde_json::to_string(&ended).map_err(|e| StoreError::Other {
        op,
        db: store.db.clone(),
        source: Box::new(e),
    })?;
    let raws = read(
        &tx,
        &approvals_query(
            "SELECT * FROM approvals WHERE id IN (SELECT value FROM json_each(?1))",
            OLDEST_FIRST,
        ),
        [ids],
    )
    .map_err(store.err(op))?;
    tx.commit().map_err(store.err(op))?;
    drop(conn);
    decode(store, op, raws)
}

/// Ends the request if it is still pending: the conditional update every non-decision
/// change of a pending request goes through.
fn end_pending(
    conn: &Connection,
    id: &str,
    to: ApprovalStatus,
    at: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE approvals SET status = ?2, resolved_at = ?3 \
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![id, to.as_str(), at])
}

/// The request with its decisions, undecoded.
fn read_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Vec<RawApproval>> {
    read(
        conn,
        &approvals_query("SELECT * FROM approvals WHERE id = ?1", NEWEST_FIRST),
        [id],
    )
}

/// The request as it stands in this transaction, decoded.
fn reread(
    store: &SqliteStore,
    op: &'static str,
    conn: &Connection,
    id: &str,
) -> Result<Option<ApprovalRecord>, StoreError> {
    let raws = read_by_id(conn, id).map_err(store.err(op))?;
    Ok(decode(store, op, raws)?.into_iter().next())
}

/// The requests (with their decisions) an [`approvals_query`] returns.
fn read(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<Vec<RawApproval>> {
    let rows = conn
        .prepare_cached(sql)?
        .query_map(values, approval_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(group_approvals(rows))
}

fn decode(
    store: &SqliteStore,
    op: &'static str,
    raws: Vec<RawApproval>,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    raws.into_iter()
        .map(|raw| raw.decode(op, &store.db))
        .collect()
}

fn invalid(store: &SqliteStore, op: &'static str, reason: String) -> StoreError {
    StoreError::InvalidInput {
        op,
        db: store.db.clone(),
        reason,
    }
}

/// A request changed or went away while this call held the write lock: it cannot, so
/// this is reported (and the transaction rolled back) rather than papered over.
fn vanished(store: &SqliteStore, op: &'static str, id: &str) -> StoreError {
    StoreError::Other {
        op,
        db: store.db.clone(),
        source: format!("approval request {id:?} changed under the write lock").into(),
    }
}

/// One row of an [`approvals_query`].
fn approval_row(r: &Row<'_>) -> rusqlite::Result<(RawApproval, Option<RawDecision>)> {
    let approval = RawApproval {
        id: r.get(0)?,
        mode: r.get(1)?,
        status: r.get(2)?,
        requester: r.get(3)?,
        connection: r.get(4)?,
        protocol: r.get(5)?,
        session_id: r.get(6)?,
        statement: r.get(7)?,
        parameters: r.get(8)?,
        fingerprint: r.get(9)?,
        reason: r.get(10)?,
        rule: r.get(11)?,
        approvers: r.get(12)?,
        min_approvals: r.get(13)?,
        requested_at: r.get(14)?,
        expires_at: r.get(15)?,
        grant_window: r.get(16)?,
        grant_expires_at: r.get(17)?,
        resolved_at: r.get(18)?,
        redeemed_at: r.get(19)?,
        decisions: Vec::new(),
    };
    let d = DECISION_COLUMNS_AT;
    let decision = match r.get::<_, Option<i64>>(d)? {
        Some(seq) => Some(RawDecision {
            seq,
            approver: r.get(d + 1)?,
            verdict: r.get(d + 2)?,
            reason: r.get(d + 3)?,
            at: r.get(d + 4)?,
        }),
        None => None,
    };
    Ok((approval, decision))
}
