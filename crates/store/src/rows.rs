//! Rows as both backends store them, and their conversion to and from the store's records.
//!
//! The SQLite and PostgreSQL stores keep the same columns, so what a row means is decided
//! once, here: how an event or an approval request is encoded before anything is written
//! ([`EncodedEvent`], [`EncodedApproval`]), how a stored API key, event, session summary,
//! checkpoint or approval request is rebuilt from its columns (`Raw*::decode`), and which
//! inputs the store refuses ([`validate_api_key`], [`EncodedApproval::of`]). Each backend
//! only moves these values in and out of its own rows (`from_row` in `sqlite.rs`,
//! `sqlite/audit.rs` and `sqlite/approvals.rs`, the row readers in `postgres.rs` and
//! `postgres/*.rs`), so an event read back from either is rebuilt from exactly the columns
//! its hash covers, the same way.

use sluice_audit::{ChainHead, Checkpoint, Event, EventBody, Protocol, Timestamp};
use sluice_core::{ApprovalMode, ApprovalStatus, Principal, Subjects, Verdict};

use crate::approvals::{ApprovalDecision, ApprovalRecord};
use crate::audit::{SessionEnd, SessionPrincipal, SessionSummary};
use crate::error::StoreError;
use crate::ApiKeyRow;

/// The columns of `api_keys`, in the order the `Raw*` readers expect them.
pub(crate) const API_KEY_COLUMNS: &str =
    "id, name, secret_sha256, subject, roles, groups, created_at, revoked_at";

/// The columns of `audit_events` an event is rebuilt from, in [`RawEvent`]'s order.
pub(crate) const EVENT_COLUMNS: &str = "session_id, seq, at, prev_hash, hash, body";

/// Checks what the schema also enforces, to give a readable error instead of a constraint name.
pub(crate) fn validate_api_key(key: &ApiKeyRow) -> Result<(), String> {
    if key.id.is_empty() {
        return Err("API key id is empty".into());
    }
    if key.name.is_empty() {
        return Err("API key name is empty".into());
    }
    if key.subject.is_empty() {
        return Err("API key subject is empty".into());
    }
    let h = &key.secret_sha256;
    if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("secret_sha256 must be 64 lowercase hex digits (a SHA-256 digest)".into());
    }
    Ok(())
}

/// A list of strings as the JSON array text `api_keys.roles` and `groups` hold.
pub(crate) fn json_list(list: &[String]) -> String {
    // Serialising a slice of strings cannot fail.
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// The name a protocol has in the event JSON (`"postgres"`), for the summary's column.
pub(crate) fn protocol_name(protocol: Protocol) -> String {
    match serde_json::to_value(protocol) {
        Ok(serde_json::Value::String(name)) => name,
        // Protocol is a unit enum with snake_case names: always a string.
        other => unreachable!("a protocol serializes as a string, not {other:?}"),
    }
}

pub(crate) fn corrupt(op: &'static str, db: &str, detail: String) -> StoreError {
    StoreError::Corrupt {
        op,
        db: db.to_owned(),
        detail,
    }
}

/// An API key row as stored, before the JSON columns are decoded.
pub(crate) struct RawApiKey {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) secret_sha256: String,
    pub(crate) subject: String,
    pub(crate) roles: String,
    pub(crate) groups: String,
    pub(crate) created_at: i64,
    pub(crate) revoked_at: Option<i64>,
}

impl RawApiKey {
    pub(crate) fn decode(self, op: &'static str, db: &str) -> Result<ApiKeyRow, StoreError> {
        let list = |column: &str, text: &str| -> Result<Vec<String>, StoreError> {
            serde_json::from_str(text).map_err(|e| {
                corrupt(
                    op,
                    db,
                    format!(
                        "api_keys.{column} of key {:?} is not a JSON string array: {e}",
                        self.id
                    ),
                )
            })
        };
        let roles = list("roles", &self.roles)?;
        let groups = list("groups", &self.groups)?;
        Ok(ApiKeyRow {
            id: self.id,
            name: self.name,
            secret_sha256: self.secret_sha256,
            subject: self.subject,
            roles,
            groups,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

/// The columns of an event that need converting, converted before anything is written.
pub(crate) struct EncodedEvent {
    pub(crate) seq: i64,
    /// The hashed, canonical text of the event's time.
    pub(crate) at: String,
    /// The body exactly as serialized (and hashed).
    pub(crate) body: String,
}

impl EncodedEvent {
    pub(crate) fn of(event: &Event) -> Result<Self, String> {
        if event.session_id.is_empty() {
            return Err(format!("event seq {} has an empty session id", event.seq));
        }
        let seq = i64::try_from(event.seq).map_err(|_| {
            format!(
                "event seq {} of session {} is beyond what the store can hold",
                event.seq, event.session_id
            )
        })?;
        let body = serde_json::to_string(&event.body)
            .map_err(|e| format!("event seq {seq} of session {}: {e}", event.session_id))?;
        Ok(Self {
            seq,
            at: event.at.to_string(),
            body,
        })
    }
}

/// An event row as stored; decoded outside the backend's row reading so that decoding
/// errors are the store's, naming the event.
pub(crate) struct RawEvent {
    pub(crate) session_id: String,
    pub(crate) seq: i64,
    pub(crate) at: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
    pub(crate) body: String,
}

impl RawEvent {
    pub(crate) fn decode(self, op: &'static str, db: &str) -> Result<Event, StoreError> {
        let place = format!("event seq {} of session {}", self.seq, self.session_id);
        let seq = u64::try_from(self.seq)
            .map_err(|_| corrupt(op, db, format!("{place}: a negative seq")))?;
        let at: Timestamp = self
            .at
            .parse()
            .map_err(|e| corrupt(op, db, format!("{place}: {e}")))?;
        let body: EventBody = serde_json::from_str(&self.body).map_err(|e| {
            corrupt(
                op,
                db,
                format!("{place}: the body is not an event body: {e}"),
            )
        })?;
        Ok(Event {
            session_id: self.session_id,
            seq,
            at,
            prev_hash: self.prev_hash,
            hash: self.hash,
            body,
        })
    }
}

/// A row of `audit_sessions` with its event count, as stored.
pub(crate) struct RawSummary {
    pub(crate) session_id: String,
    pub(crate) opened_at: String,
    pub(crate) status: String,
    pub(crate) provider: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) connection: String,
    pub(crate) protocol: String,
    pub(crate) client_addr: String,
    pub(crate) tls: bool,
    pub(crate) closed_at: Option<String>,
    pub(crate) close_reason: Option<String>,
    pub(crate) events: i64,
}

impl RawSummary {
    pub(crate) fn decode(self, op: &'static str, db: &str) -> Result<SessionSummary, StoreError> {
        let place = format!("the summary of session {}", self.session_id);
        let bad = |what: String| corrupt(op, db, format!("{place}: {what}"));
        let time = |text: &str| text.parse::<Timestamp>().map_err(|e| bad(e.to_string()));
        let opened_at = time(&self.opened_at)?;
        let protocol: Protocol =
            serde_json::from_value(serde_json::Value::String(self.protocol.clone()))
                .map_err(|_| bad(format!("unknown protocol {:?}", self.protocol)))?;
        let principal = match (self.provider, self.subject, self.display_name) {
            (Some(provider), Some(subject), Some(display_name)) => Some(SessionPrincipal {
                provider,
                subject,
                display_name,
            }),
            _ => None,
        };
        let reason = self.close_reason.unwrap_or_default();
        let end = match (self.status.as_str(), &self.closed_at) {
            ("open", _) => SessionEnd::Open,
            ("closed", Some(closed_at)) => SessionEnd::Closed {
                at: time(closed_at)?,
                reason,
            },
            ("login_refused", _) => SessionEnd::LoginRefused { reason },
            (status, _) => return Err(bad(format!("status {status:?} without its details"))),
        };
        Ok(SessionSummary {
            session_id: self.session_id,
            opened_at,
            principal,
            connection: self.connection,
            protocol,
            client_addr: self.client_addr,
            tls: self.tls,
            end,
            events: u64::try_from(self.events).unwrap_or(0),
        })
    }
}

/// A row of `audit_checkpoints`, as stored.
pub(crate) struct RawCheckpoint {
    pub(crate) id: i64,
    pub(crate) at: String,
    pub(crate) key_id: String,
    pub(crate) heads: String,
    pub(crate) signature: String,
}

impl RawCheckpoint {
    pub(crate) fn decode(self, op: &'static str, db: &str) -> Result<Checkpoint, StoreError> {
        let place = format!("checkpoint {}", self.id);
        let at = self
            .at
            .parse()
            .map_err(|e| corrupt(op, db, format!("{place}: {e}")))?;
        let heads: Vec<ChainHead> = serde_json::from_str(&self.heads)
            .map_err(|e| corrupt(op, db, format!("{place}: the heads do not read: {e}")))?;
        Ok(Checkpoint {
            at,
            key_id: self.key_id,
            heads,
            signature: self.signature,
        })
    }
}

/// What [`approvals_query`] orders requests by: newest first (listing).
pub(crate) const NEWEST_FIRST: &str = "a.requested_at DESC, a.id DESC";

/// What [`approvals_query`] orders requests by: oldest first (expiry and withdrawal).
pub(crate) const OLDEST_FIRST: &str = "a.requested_at, a.id";

/// A query for requests with their decisions, valid in both databases. `requests` is a
/// `SELECT * FROM approvals ...` choosing them (its filter and limit in the backend's
/// placeholders), `order` orders them ([`NEWEST_FIRST`], [`OLDEST_FIRST`]).
///
/// One row per decision, [`RawApproval`]'s columns then [`RawDecision`]'s; a request
/// without decisions gives one row whose decision columns are NULL. A request's rows are
/// consecutive, its decisions in the order they were recorded, as [`group_approvals`]
/// expects. Being one statement, it reads a request and its decisions as one transaction
/// left them.
pub(crate) fn approvals_query(requests: &str, order: &str) -> String {
    format!(
        "SELECT a.id, a.mode, a.status, a.requester, a.connection, a.protocol, a.session_id, \
         a.statement, a.parameters, a.fingerprint, a.reason, a.rule, a.approvers, \
         a.min_approvals, a.requested_at, a.expires_at, a.grant_window, a.grant_expires_at, \
         a.resolved_at, a.redeemed_at, \
         d.seq, d.approver, d.verdict, d.reason, d.at \
         FROM ({requests}) a LEFT JOIN approval_decisions d ON d.approval_id = a.id \
         ORDER BY {order}, d.seq"
    )
}

/// Where the decision columns start in an [`approvals_query`] row.
pub(crate) const DECISION_COLUMNS_AT: usize = 20;

/// The columns of an approval request that need converting, converted (and the request
/// checked) before anything is written.
pub(crate) struct EncodedApproval {
    /// The requester's principal as JSON.
    pub(crate) requester: String,
    /// The parameters as a JSON array of strings and nulls.
    pub(crate) parameters: String,
    /// The approvers as a JSON `Subjects` object.
    pub(crate) approvers: String,
    pub(crate) min_approvals: i64,
}

impl EncodedApproval {
    /// Checks a new request (what the schema also enforces, to give a readable error
    /// instead of a constraint name, and what only a new request must be) and encodes it.
    pub(crate) fn of(record: &ApprovalRecord) -> Result<Self, String> {
        let place = || format!("approval request {:?}", record.id);
        if record.id.is_empty() {
            return Err("approval request id is empty".into());
        }
        if record.connection.is_empty() {
            return Err(format!("{}: the connection is empty", place()));
        }
        if record.fingerprint.is_empty() {
            return Err(format!("{}: the fingerprint is empty", place()));
        }
        if record.min_approvals == 0 {
            return Err(format!(
                "{}: min_approvals is 0; a request needs at least one approval",
                place()
            ));
        }
        if record.status != ApprovalStatus::Pending {
            return Err(format!(
                "{}: a new request must be pending, not {}",
                place(),
                record.status
            ));
        }
        if !record.decisions.is_empty() {
            return Err(format!(
                "{}: a new request has no decisions yet ({} given)",
                place(),
                record.decisions.len()
            ));
        }
        if record.resolved_at.is_some()
            || record.grant_expires_at.is_some()
            || record.redeemed_at.is_some()
        {
            return Err(format!(
                "{}: a pending request has no resolved_at, grant_expires_at or redeemed_at",
                place()
            ));
        }
        let json = |what: &str, value: Result<String, serde_json::Error>| {
            value.map_err(|e| format!("{}: the {what} do not serialize: {e}", place()))
        };
        Ok(Self {
            requester: principal_json(&record.requester)
                .map_err(|e| format!("{}: {e}", place()))?,
            parameters: json("parameters", serde_json::to_string(&record.parameters))?,
            approvers: json("approvers", serde_json::to_string(&record.approvers))?,
            min_approvals: i64::from(record.min_approvals),
        })
    }
}

/// A principal as the JSON text `approvals.requester` and `approval_decisions.approver`
/// hold.
pub(crate) fn principal_json(principal: &Principal) -> Result<String, String> {
    serde_json::to_string(principal).map_err(|e| format!("the principal does not serialize: {e}"))
}

/// A row of `approvals` as stored, with its decisions, before its JSON and enumerated
/// columns are decoded. `requester_provider` and `requester_subject` are not read: they
/// repeat what `requester` holds, for queries.
pub(crate) struct RawApproval {
    pub(crate) id: String,
    pub(crate) mode: String,
    pub(crate) status: String,
    pub(crate) requester: String,
    pub(crate) connection: String,
    pub(crate) protocol: String,
    pub(crate) session_id: Option<String>,
    pub(crate) statement: String,
    pub(crate) parameters: String,
    pub(crate) fingerprint: String,
    pub(crate) reason: String,
    pub(crate) rule: String,
    pub(crate) approvers: String,
    pub(crate) min_approvals: i64,
    pub(crate) requested_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) grant_window: Option<i64>,
    pub(crate) grant_expires_at: Option<i64>,
    pub(crate) resolved_at: Option<i64>,
    pub(crate) redeemed_at: Option<i64>,
    /// Filled by [`group_approvals`].
    pub(crate) decisions: Vec<RawDecision>,
}

/// A row of `approval_decisions` as stored (its approver's provider and subject, which
/// repeat what `approver` holds, are not read).
pub(crate) struct RawDecision {
    pub(crate) seq: i64,
    pub(crate) approver: String,
    pub(crate) verdict: String,
    pub(crate) reason: String,
    pub(crate) at: i64,
}

/// Requests with their decisions from [`approvals_query`]'s rows (a request's rows
/// consecutive, each with its decision if it has one), in the rows' order.
pub(crate) fn group_approvals(
    rows: impl IntoIterator<Item = (RawApproval, Option<RawDecision>)>,
) -> Vec<RawApproval> {
    let mut out: Vec<RawApproval> = Vec::new();
    for (approval, decision) in rows {
        let current = match out.last_mut() {
            Some(last) if last.id == approval.id => last,
            _ => {
                out.push(approval);
                out.last_mut().expect("just pushed")
            }
        };
        current.decisions.extend(decision);
    }
    out
}

impl RawApproval {
    pub(crate) fn decode(self, op: &'static str, db: &str) -> Result<ApprovalRecord, StoreError> {
        let place = format!("approval request {:?}", self.id);
        let bad = |what: String| corrupt(op, db, format!("{place}: {what}"));
        let json = |column: &str, expected: &str, e: serde_json::Error| {
            bad(format!("approvals.{column} is not {expected}: {e}"))
        };
        let mode = ApprovalMode::parse(&self.mode)
            .ok_or_else(|| bad(format!("unknown mode {:?}", self.mode)))?;
        let status = ApprovalStatus::parse(&self.status)
            .ok_or_else(|| bad(format!("unknown status {:?}", self.status)))?;
        let requester: Principal = serde_json::from_str(&self.requester)
            .map_err(|e| json("requester", "a principal", e))?;
        let parameters: Vec<Option<String>> = serde_json::from_str(&self.parameters)
            .map_err(|e| json("parameters", "an array of strings and nulls", e))?;
        let approvers: Subjects = serde_json::from_str(&self.approvers)
            .map_err(|e| json("approvers", "a set of subjects", e))?;
        let min_approvals = u32::try_from(self.min_approvals)
            .map_err(|_| bad(format!("impossible min_approvals {}", self.min_approvals)))?;
        let decisions = self
            .decisions
            .into_iter()
            .map(|d| d.decode(&place, op, db))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApprovalRecord {
            id: self.id,
            mode,
            status,
            requester,
            connection: self.connection,
            protocol: self.protocol,
            session_id: self.session_id,
            statement: self.statement,
            parameters,
            fingerprint: self.fingerprint,
            reason: self.reason,
            rule: self.rule,
            approvers,
            min_approvals,
            requested_at: self.requested_at,
            expires_at: self.expires_at,
            grant_window: self.grant_window,
            grant_expires_at: self.grant_expires_at,
            resolved_at: self.resolved_at,
            redeemed_at: self.redeemed_at,
            decisions,
        })
    }
}

impl RawDecision {
    /// `request` names the request it belongs to, for errors.
    fn decode(
        self,
        request: &str,
        op: &'static str,
        db: &str,
    ) -> Result<ApprovalDecision, StoreError> {
        let bad =
            |what: String| corrupt(op, db, format!("{request}, decision {}: {what}", self.seq));
        let verdict = Verdict::parse(&self.verdict)
            .ok_or_else(|| bad(format!("unknown verdict {:?}", self.verdict)))?;
        let approver: Principal = serde_json::from_str(&self.approver).map_err(|e| {
            bad(format!(
                "approval_decisions.approver is not a principal: {e}"
            ))
        })?;
        Ok(ApprovalDecision {
            approver,
            verdict,
            reason: self.reason,
            at: self.at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_hash() {
        let mut key = ApiKeyRow {
            id: "k".into(),
            name: "n".into(),
            secret_sha256: "A".repeat(64),
            subject: "s".into(),
            roles: vec![],
            groups: vec![],
            created_at: 0,
            revoked_at: None,
        };
        assert!(validate_api_key(&key).is_err());
        key.secret_sha256 = "a".repeat(63);
        assert!(validate_api_key(&key).is_err());
        key.secret_sha256 = "a".repeat(64);
        assert!(validate_api_key(&key).is_ok());
    }
}
