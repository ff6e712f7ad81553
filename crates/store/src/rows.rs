//! Rows as both backends store them, and their conversion to and from the store's records.
//!
//! The SQLite and PostgreSQL stores keep the same columns, so what a row means is decided
//! once, here: how an event is encoded before anything is written ([`EncodedEvent`]), how a
//! stored API key, event, session summary or checkpoint is rebuilt from its columns
//! (`Raw*::decode`), and which inputs the store refuses ([`validate_api_key`]). Each backend
//! only moves these values in and out of its own rows (`from_row` in `sqlite.rs` and
//! `sqlite/audit.rs`, the row readers in `postgres.rs`), so an event read back from either
//! is rebuilt from exactly the columns its hash covers, the same way.

use sluice_audit::{ChainHead, Checkpoint, Event, EventBody, Protocol, Timestamp};

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
