//! The one event schema every protocol records into (DESIGN.md §6).
//!
//! An [`Event`] is an envelope (session, position, time, chain links) around an
//! [`EventBody`], which says what happened. The schema is protocol-neutral: a protocol
//! crate fills `text` and `classification` in its own terms (SQL and its accesses; later
//! an HTTP request line or a Kubernetes verb and resource) and everything else means the
//! same for every protocol, so listing, replay, export and verification are written once.
//!
//! The types map onto rows as they are: the envelope's fields are columns
//! (`session_id`, `seq`, `at`, [`EventBody::kind`], `prev_hash`, `hash`) and the body is
//! one JSON column; an event serialized with `serde_json` is one line of the JSONL export.
//! Unknown fields are refused when reading, so nothing can ride along in a stored event
//! that its hash does not cover.
//!
//! A session is one agent connection from login to close. Two kinds of event stand alone
//! as a session of one event: a refused login (there was never a session to join) and a
//! retention purge (it belongs to no connection).

use serde::{Deserialize, Serialize};

/// One recorded event, with its place in its session's hash chain.
///
/// Built by [`ChainBuilder::append`](crate::ChainBuilder::append), which fills `seq`,
/// `prev_hash` and `hash`; read back from a store or an export, it is checked by
/// [`verify_session`](crate::verify_session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The session this event belongs to: 32 lowercase hex digits (128 random bits), as
    /// [`new_session_id`] makes them. Verification treats it as opaque text.
    pub session_id: String,
    /// Position in the session, from 0 without gaps.
    pub seq: u64,
    /// When the gateway observed what the event records.
    pub at: crate::Timestamp,
    /// `hash` of the event before this one in the session, or
    /// [`GENESIS_PREV_HASH`](crate::GENESIS_PREV_HASH) for `seq` 0.
    pub prev_hash: String,
    /// SHA-256 of everything else in this event, lowercase hex
    /// ([`event_hash`](crate::event_hash) says exactly what is hashed).
    pub hash: String,
    pub body: EventBody,
}

/// What an event records. Serialized with its [`EventKind`] as `"kind"` beside the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    SessionOpened(SessionOpened),
    LoginRefused(LoginRefused),
    Request(Request),
    Result(StatementResult),
    SessionClosed(SessionClosed),
    Purged(Purged),
    ApprovalDecided(ApprovalDecided),
    ApprovalResolved(ApprovalResolved),
}

/// The name of an [`EventBody`] variant, for a store's `kind` column and for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SessionOpened,
    LoginRefused,
    Request,
    Result,
    SessionClosed,
    Purged,
    ApprovalDecided,
    ApprovalResolved,
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::SessionOpened(_) => EventKind::SessionOpened,
            EventBody::LoginRefused(_) => EventKind::LoginRefused,
            EventBody::Request(_) => EventKind::Request,
            EventBody::Result(_) => EventKind::Result,
            EventBody::SessionClosed(_) => EventKind::SessionClosed,
            EventBody::Purged(_) => EventKind::Purged,
            EventBody::ApprovalDecided(_) => EventKind::ApprovalDecided,
            EventBody::ApprovalResolved(_) => EventKind::ApprovalResolved,
        }
    }
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::SessionOpened,
        EventKind::LoginRefused,
        EventKind::Request,
        EventKind::Result,
        EventKind::SessionClosed,
        EventKind::Purged,
        EventKind::ApprovalDecided,
        EventKind::ApprovalResolved,
    ];

    /// The same name `"kind"` has in an event's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionOpened => "session_opened",
            EventKind::LoginRefused => "login_refused",
            EventKind::Request => "request",
            EventKind::Result => "result",
            EventKind::SessionClosed => "session_closed",
            EventKind::Purged => "purged",
            EventKind::ApprovalDecided => "approval_decided",
            EventKind::ApprovalResolved => "approval_resolved",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire protocol a session spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Postgres,
    Mysql,
    Http,
    Kubernetes,
}

/// A session began: who logged in, from where, to which connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionOpened {
    pub principal: RecordedPrincipal,
    /// The agent's address as the listener saw it (`ip:port`).
    pub client_addr: String,
    /// The configured connection (resource) the session was for.
    pub connection: String,
    pub protocol: Protocol,
    /// Whether the agent's side of the session was encrypted.
    pub tls: bool,
}

/// The identity a session ran as, as it stood at login. A copy rather than
/// `sluice_core::Principal` itself, so the recorded schema only changes on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedPrincipal {
    /// The identity provider that vouched for it (`entra`, `local`, `apikey`).
    pub provider: String,
    pub subject: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// The token's identifier (`uti`/`jti`) or the API key's id, to tie a session to the
    /// credential that opened it.
    pub token_id: Option<String>,
}

impl From<&sluice_core::Principal> for RecordedPrincipal {
    fn from(principal: &sluice_core::Principal) -> Self {
        Self {
            provider: principal.provider.clone(),
            subject: principal.subject.clone(),
            display_name: principal.display_name.clone(),
            roles: principal.roles.clone(),
            groups: principal.groups.clone(),
            token_id: principal.token_id.clone(),
        }
    }
}

/// A login that was refused; the only event of its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRefused {
    pub client_addr: String,
    /// The connection the agent asked for, as it asked (it may name none configured).
    pub connection: String,
    pub protocol: Protocol,
    /// Why, in the words the gateway logs (never the credential itself).
    pub reason: String,
}

/// What the gateway decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    /// Held for a human's approval; `approval_id` names the approval.
    Approve,
}

/// One request of the agent (a statement, an HTTP request, a Kubernetes call) and the
/// decision about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The request as the agent sent it (SQL text; later a method and path).
    pub text: String,
    /// What the protocol crate made of it (for SQL: the statements and their accesses),
    /// in that protocol's own shape. Shared, because a prepared statement's executions
    /// all carry the same one.
    pub classification: std::sync::Arc<serde_json::Value>,
    pub decision: Decision,
    /// The rule that decided, as the policy engine names it (`policy p, allow rule 1`);
    /// `None` when no rule did (default deny).
    pub rule: Option<String>,
    pub approval_id: Option<String>,
    /// Values bound to the request's placeholders, as text (`None` for NULL), when the
    /// protocol carries them apart from the text (an extended-protocol Execute). Left
    /// out of the JSON when empty, so requests without any hash as they always have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Option<String>>,
}

/// What came back for a request, as the agent saw it: masked, and capped per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementResult {
    /// `seq` of the [`Request`] event this answers, in the same session.
    pub request_seq: u64,
    pub columns: Vec<String>,
    /// The rows kept in the record, each value as text as the agent received it after
    /// masking (`None` for NULL); at most the cap, the rest counted but not kept.
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether `rows` stops short of what the agent received.
    pub truncated: bool,
    /// Rows the agent received (or the resource reported affected), all of them.
    pub row_count: u64,
    /// Bytes of result the agent received, all of them.
    pub bytes: u64,
    /// From the request leaving the gateway to its result completing, in microseconds:
    /// an integer, so the hashed text has one spelling.
    pub duration_us: u64,
    pub error: Option<ResultError>,
}

/// An error the agent received instead of (or after part of) a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultError {
    /// The protocol's code: a SQLSTATE, an HTTP status.
    pub code: String,
    pub message: String,
}

/// A session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClosed {
    /// Why: the client left, the token expired, the gateway shut down, an error.
    pub reason: String,
}

/// An approver's decision on an approval this session asked for. The session records it
/// when it learns of it: when its held statement's wait ends, or when it redeems a ticket
/// (every decision of the ticket then), so each session's chain is written by that session
/// alone. `decided_at` is when the approver decided; the event's `at`, when the session
/// recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecided {
    pub approval_id: String,
    pub approver: RecordedPrincipal,
    pub verdict: sluice_core::Verdict,
    /// The approver's reason.
    pub reason: String,
    pub decided_at: crate::Timestamp,
}

/// How an approval this session asked for ended for it: `approved` (a held statement runs
/// next), `denied`, `expired`, `withdrawn` (the session left while it waited) or `redeemed`
/// (a ticket's statement runs next). The statement that runs under an approval is recorded
/// after this as a request of its own, allowed, with the approval's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalResolved {
    pub approval_id: String,
    pub status: sluice_core::ApprovalStatus,
}

/// Retention removed every session whose last event was before `before`. Recorded as a
/// session of its own and covered by a signed checkpoint, it is what lets verification
/// accept that signed heads of those sessions are gone (see [`crate::verify`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purged {
    pub before: crate::Timestamp,
    /// How many sessions were removed, for the reader; verification does not rely on it.
    pub sessions: u64,
}

/// A new session id: 128 bits from the operating system's random source, as 32
/// lowercase hex digits. Random rather than sequential so that ids of different gateway
/// instances sharing one store never collide and reveal nothing about traffic.
pub fn new_session_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_32_hex_digits_and_differ() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, b);
    }

    #[test]
    fn kind_names_match_the_json_tag() {
        let body = EventBody::SessionClosed(SessionClosed {
            reason: "client left".into(),
        });
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["kind"], body.kind().as_str());
        for kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
        }
    }

    #[test]
    fn refuses_unknown_fields_in_a_body() {
        let json = r#"{"kind":"session_closed","reason":"client left","note":"x"}"#;
        assert!(serde_json::from_str::<EventBody>(json).is_err());
        let json = r#"{"kind":"session_closed","reason":"client left"}"#;
        assert!(serde_json::from_str::<EventBody>(json).is_ok());
    }

    #[test]
    fn records_a_core_principal() {
        let principal = sluice_core::Principal {
            provider: "entra".into(),
            subject: "tid/oid".into(),
            tenant_id: Some("tid".into()),
            display_name: "Reporting agent".into(),
            kind: sluice_core::PrincipalKind::App,
            roles: vec!["reader".into()],
            groups: vec!["g1".into()],
            token_id: Some("uti-1".into()),
            expires_at: Some(1),
        };
        let recorded = RecordedPrincipal::from(&principal);
        assert_eq!(recorded.subject, "tid/oid");
        assert_eq!(recorded.roles, ["reader"]);
        assert_eq!(recorded.token_id.as_deref(), Some("uti-1"));
    }
}
