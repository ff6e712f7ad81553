//! Hash chains: each event of a session holds the SHA-256 of the one before it.
//!
//! **What is hashed.** An event's `hash` is the SHA-256, written as 64 lowercase hex
//! digits, of the [canonical JSON](crate::canonical) of the event with its `hash` field
//! removed: `at`, `body` (with its `"kind"` and every field of the variant,
//! `classification` included), `prev_hash`, `seq` and `session_id`, keys sorted, no
//! whitespace. The field is removed from the serialized event rather than listed, so a
//! field added to [`Event`] later is covered without anyone remembering to add it here.
//!
//! The first event of a session has [`GENESIS_PREV_HASH`] as its `prev_hash`. Because
//! `prev_hash` is itself hashed, changing, removing or reordering any event breaks the
//! link of the event after it, and changing an event's own fields breaks its hash. What a
//! chain cannot show is its own end being cut off (or rewritten wholesale from some event
//! on, since the hash has no key): that is what signed [checkpoints](crate::checkpoint)
//! over the chain heads are for.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{canonical, Event, EventBody, Timestamp};

/// `prev_hash` of the first event of every session: 64 zeros.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash `event` should carry, computed from everything in it but its `hash` field.
///
/// Written straight from the event's fields in canonical order ([`canonical::event`]),
/// which is what the writer pays for every event; [`event_hash_by_value`] computes the
/// same through a generic JSON value and is what the property tests hold this to.
pub fn event_hash(event: &Event) -> String {
    let mut hasher = Sha256::new();
    canonical::event(event, &mut hasher).expect("hashing cannot fail to write");
    hex::encode(hasher.finalize())
}

/// [`event_hash`] the generic way: the event as a `serde_json::Value` without `hash`,
/// written canonically. The definition the fast path must agree with.
#[doc(hidden)]
pub fn event_hash_by_value(event: &Event) -> String {
    let mut unhashed = serde_json::to_value(event).expect("audit events serialize to JSON");
    if let serde_json::Value::Object(fields) = &mut unhashed {
        fields.remove("hash");
    }
    let mut hasher = Sha256::new();
    canonical::write_value(&unhashed, &mut hasher).expect("hashing cannot fail to write");
    hex::encode(hasher.finalize())
}

/// The latest event of a session, as a checkpoint signs it. `at` is that event's time,
/// which is what lets a purge record vouch for a head whose session retention removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    pub session_id: String,
    pub seq: u64,
    pub at: Timestamp,
    pub hash: String,
}

impl ChainHead {
    /// The head a chain has when `event` is its last event.
    pub fn of(event: &Event) -> Self {
        Self {
            session_id: event.session_id.clone(),
            seq: event.seq,
            at: event.at,
            hash: event.hash.clone(),
        }
    }
}

/// Appends events to one session's chain, stamping `seq`, `prev_hash` and `hash`.
///
/// One per session, owned by whoever orders that session's events (the writer), so
/// sequence numbers follow the order events are recorded in.
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    session_id: String,
    head: Option<ChainHead>,
}

impl ChainBuilder {
    /// The chain of a session with no events yet.
    pub fn new(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            head: None,
        }
    }

    /// Continues the chain whose last recorded event is `last` (after a restart).
    pub fn resume(last: &Event) -> Self {
        Self {
            session_id: last.session_id.clone(),
            head: Some(ChainHead::of(last)),
        }
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The `seq` the next appended event gets.
    pub fn next_seq(&self) -> u64 {
        self.head.as_ref().map_or(0, |head| head.seq + 1)
    }

    /// The last appended event, or `None` before the first.
    pub fn head(&self) -> Option<&ChainHead> {
        self.head.as_ref()
    }

    /// Adds `body`, observed at `at`, as the session's next event and returns it sealed.
    pub fn append(&mut self, at: Timestamp, body: EventBody) -> Event {
        let prev_hash = self
            .head
            .as_ref()
            .map_or(GENESIS_PREV_HASH, |head| head.hash.as_str())
            .to_owned();
        let mut event = Event {
            session_id: self.session_id.clone(),
            seq: self.next_seq(),
            at,
            prev_hash,
            hash: String::new(),
            body,
        };
        event.hash = event_hash(&event);
        self.head = Some(ChainHead::of(&event));
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SessionClosed, Timestamp};

    fn at(second: u32) -> Timestamp {
        format!("2026-05-01T09:30:{second:02}.000000Z")
            .parse()
            .unwrap()
    }

    fn closed(reason: &str) -> EventBody {
        EventBody::SessionClosed(SessionClosed {
            reason: reason.into(),
        })
    }

    #[test]
    fn links_each_event_to_the_one_before() {
        let mut chain = ChainBuilder::new("s1");
        let first = chain.append(at(0), closed("a"));
        let second = chain.append(at(1), closed("b"));
        assert_eq!((first.seq, second.seq), (0, 1));
        assert_eq!(first.prev_hash, GENESIS_PREV_HASH);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(first.hash, event_hash(&first));
        assert_eq!(first.hash.len(), 64);
        assert_eq!(chain.head(), Some(&ChainHead::of(&second)));
        assert_eq!(chain.next_seq(), 2);
    }

    #[test]
    fn the_hash_is_sha256_of_the_canonical_json_without_hash() {
        let mut chain = ChainBuilder::new("s1");
        let event = chain.append(at(0), closed("done"));
        let expected_input = format!(
            r#"{{"at":"2026-05-01T09:30:00.000000Z","body":{{"kind":"session_closed","reason":"done"}},"prev_hash":"{GENESIS_PREV_HASH}","seq":0,"session_id":"s1"}}"#
        );
        assert_eq!(
            event.hash,
            hex::encode(Sha256::digest(expected_input.as_bytes()))
        );
    }

    #[test]
    fn the_hash_ignores_the_stored_hash() {
        let mut chain = ChainBuilder::new("s1");
        let mut event = chain.append(at(0), closed("done"));
        let sealed = event.hash.clone();
        event.hash = "anything".into();
        assert_eq!(event_hash(&event), sealed);
    }

    #[test]
    fn resumes_after_the_last_stored_event() {
        let mut chain = ChainBuilder::new("s1");
        chain.append(at(0), closed("a"));
        let last = chain.append(at(1), closed("b"));
        let mut resumed = ChainBuilder::resume(&last);
        let next = resumed.append(at(2), closed("c"));
        assert_eq!(next.seq, 2);
        assert_eq!(next.prev_hash, last.hash);
        assert_eq!(resumed.session_id(), "s1");
    }
}
