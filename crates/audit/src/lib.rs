//! The audit trail's core, protocol-neutral (DESIGN.md §6): what is recorded, how it is
//! chained, signed and checked.
//!
//! - [`event`]: the one [`Event`] schema every protocol records into, from login to
//!   close, refused logins and retention purges included;
//! - [`timestamp`]: the single spelling of a time the trail writes and hashes;
//! - [`canonical`]: the exact bytes that are hashed and signed;
//! - [`chain`]: [`ChainBuilder`] links each event of a session to the one before by
//!   SHA-256 ([`event_hash`] says exactly what is hashed);
//! - [`checkpoint`]: [`CheckpointSigner`] signs the chains' heads with the gateway's
//!   Ed25519 key, so a cut-off or rewritten tail shows;
//! - [`verify`]: checks chains and checkpoints and names the first broken link.
//!
//! Architecture invariants: no I/O, no async, no clock, no storage: the caller stamps
//! times, and the writer and stores (`sluice-store`) keep events as rows and export them
//! as JSONL in exactly the serde form defined here. The only thing taken from the system
//! is randomness, for new signing keys and session ids. The hash covers every field of an
//! event but itself. Verification names the first broken link, not merely that one
//! exists. Nothing here knows a wire format: a protocol fills `text` and
//! `classification` in its own terms.

pub mod canonical;
pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod timestamp;
pub mod verify;

pub use chain::{event_hash, event_hash_by_value, ChainBuilder, ChainHead, GENESIS_PREV_HASH};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, KeyError, PublicKey, Zeroizing,
    CHECKPOINT_CONTEXT,
};
pub use event::{
    new_session_id, ApprovalDecided, ApprovalResolved, Decision, Event, EventBody, EventKind,
    LoginRefused, Protocol, Purged, RecordedPrincipal, Request, ResultError, SessionClosed,
    SessionOpened, StatementResult,
};
pub use timestamp::{Timestamp, TimestampError};
pub use verify::{
    verify_against_checkpoints, verify_session, BrokenLink, LinkProblem, Verified, VerifyError,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signers_and_keys_are_shared_across_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CheckpointSigner>();
        shareable::<PublicKey>();
        shareable::<Event>();
    }
}
