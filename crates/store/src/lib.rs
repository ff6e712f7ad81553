//! Sluice's persistence: the [`Store`] interface, its two backends (the embedded SQLite
//! store and the PostgreSQL store), and their schema migrations.
//!
//! Everything Sluice keeps across restarts goes through [`Store`], so the gateway does not
//! care whether it runs on the embedded SQLite file (the default, one gateway instance) or
//! on PostgreSQL (several instances sharing state). Callers obtain one with [`open_store`]
//! from the config's `store:` URL and hold it as `Arc<dyn Store>`. Both backends give the
//! same results and errors for the same calls; the few differences are in `postgres.rs`'s
//! docs.
//!
//! Layout:
//! - `lib.rs`: the [`Store`] trait and the records it stores ([`ApiKeyRow`], [`RevokeOutcome`]);
//! - `approvals.rs`: approval requests and decisions ([`ApprovalRecord`], [`DecideOutcome`]),
//!   and the rule by which a decision resolves a request, the same for both backends;
//! - `audit.rs`: the audit trail's listing records ([`SessionSummary`], [`SessionFilter`]);
//!   events and checkpoints are stored as `sluice-audit` defines them;
//! - `error.rs`: [`StoreError`], with the operation and database in every error, and
//!   [`StoreError::is_unavailable`] to tell "could not reach the database" from the rest;
//! - `rows.rs`: what a stored row means, shared by the backends: how events and approval
//!   requests are encoded before writing and how keys, events, summaries, checkpoints and
//!   approval requests are rebuilt from their columns, and the input the store refuses;
//! - `migrations/`: the versioned schema, one `.sql` file each: SQLite's
//!   ([`migrations::MIGRATIONS`]) and, under the same versions, PostgreSQL's in
//!   `migrations/postgres/` ([`migrations::POSTGRES_MIGRATIONS`]);
//! - `sqlite.rs`: [`SqliteStore`], connection settings and the SQL for each operation;
//!   `sqlite/audit.rs` has the audit trail's, `sqlite/approvals.rs` approval requests';
//! - `postgres.rs`: [`PostgresStore`], URL checks, error classification and API keys;
//!   `postgres/worker.rs` the thread that owns its connection, `postgres/migrate.rs` its
//!   migrations under an advisory lock, `postgres/audit.rs` the audit trail's SQL,
//!   `postgres/approvals.rs` approval requests';
//! - `url.rs`: [`StoreUrl`] parsing and [`open_store`].
//!
//! Every store call is synchronous and short, and may be made from any thread, a tokio
//! worker's included (the PostgreSQL store runs its client on a thread of its own). Async
//! callers should run them on a blocking thread (`tokio::task::spawn_blocking`) if they are
//! on a hot path.

mod approvals;
mod audit;
mod error;
pub mod migrations;
mod postgres;
mod rows;
mod sqlite;
mod url;

use sluice_core::ApprovalStatus;

pub use approvals::{ApprovalDecision, ApprovalFilter, ApprovalRecord, DecideOutcome};
pub use audit::{SessionEnd, SessionFilter, SessionPrincipal, SessionSummary};
pub use error::{BoxError, StoreError};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, BUSY_TIMEOUT};
pub use url::{open_store, redact, StoreUrl};

/// An API key row: the shared [`sluice_core::ApiKeyRecord`].
pub type ApiKeyRow = sluice_core::ApiKeyRecord;

/// What [`Store::revoke_api_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was live and is now revoked.
    Revoked,
    /// The key was already revoked; its original revocation time is unchanged.
    AlreadyRevoked,
    /// No key has this id.
    NotFound,
}

/// Persistent state, whatever the backend.
///
/// Implementations are shared across threads behind an `Arc<dyn Store>`. Every method either
/// completes or returns an error that says which operation failed on which database; callers
/// guarding access fail closed on any error.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The schema version the database was at once this store opened it (all known
    /// migrations applied).
    fn schema_version(&self) -> u32;

    /// Records a new API key. Fails with [`StoreError::Duplicate`] if its id or name is
    /// taken (also by a revoked key), and [`StoreError::InvalidInput`] if the id, name or
    /// subject is empty or `secret_sha256` is not 64 lowercase hex digits.
    fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError>;

    /// The key with this id, revoked or not; `None` if there is none.
    fn find_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, StoreError>;

    /// Every key, revoked ones included, ordered by `created_at` then `id`.
    fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;

    /// Marks the key revoked at `at`. Revoking twice keeps the first time.
    fn revoke_api_key(&self, id: &str, at: i64) -> Result<RevokeOutcome, StoreError>;

    /// Records a batch of audit events, all or none: the batch is one transaction, so once
    /// this returns `Ok` every event of it is durable, and after an error none of it is
    /// stored. Each event is kept exactly as serialized, so what
    /// [`session_events`](Self::session_events) gives back verifies.
    ///
    /// In the same transaction, a session's `session_opened` or `login_refused` event makes
    /// its [`SessionSummary`], and its `session_closed` event marks it closed (a closing
    /// event of a session whose opening is not in the store changes no summary).
    ///
    /// The store does not check chains (that is verification's job, on what was stored),
    /// but it keeps one event per position: an event whose session and `seq` are taken,
    /// in the store or earlier in the batch, fails the batch with
    /// [`StoreError::Duplicate`]. [`StoreError::InvalidInput`] if a session id is empty or
    /// a `seq` does not fit the store's integers.
    fn append_events(&self, events: &[sluice_audit::Event]) -> Result<(), StoreError>;

    /// Every event of the session, in `seq` order; empty if there is none.
    fn session_events(&self, session_id: &str) -> Result<Vec<sluice_audit::Event>, StoreError>;

    /// The session's event with the highest `seq`, to continue its chain after a restart
    /// ([`sluice_audit::ChainBuilder::resume`]); `None` if it has none.
    fn last_event(&self, session_id: &str) -> Result<Option<sluice_audit::Event>, StoreError>;

    /// Ids of the sessions that have events, in ascending order, at most `limit` of them,
    /// starting after `after` (`None`: from the first). Read from the events themselves,
    /// not the summaries, so a session whose summary is gone is still found; page through
    /// all of them by passing the last id of one page as `after` of the next.
    fn session_ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError>;

    /// Summaries of the sessions `filter` matches, oldest first (by opening time, then id).
    fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>, StoreError>;

    /// Records a signed checkpoint, exactly as given.
    fn put_checkpoint(&self, checkpoint: &sluice_audit::Checkpoint) -> Result<(), StoreError>;

    /// Every checkpoint, in the order they were stored.
    fn checkpoints(&self) -> Result<Vec<sluice_audit::Checkpoint>, StoreError>;

    /// Retention: removes, in one transaction, every session whose latest event is before
    /// `before` (its events and its summary), except sessions holding a `purged` event
    /// (purge records are kept for good, verification relies on them) and the sessions
    /// named in `keep` (live ones, whose next event would otherwise follow a gap). Returns
    /// how many sessions were removed.
    fn purge_sessions(
        &self,
        before: sluice_audit::Timestamp,
        keep: &[String],
    ) -> Result<u64, StoreError>;

    /// Records a new approval request. It must be `pending` with no decisions;
    /// [`StoreError::Duplicate`] if its id is taken, [`StoreError::InvalidInput`] if the
    /// id, fingerprint or connection is empty, `min_approvals` is 0, or it is not pending.
    fn insert_approval(&self, record: &ApprovalRecord) -> Result<(), StoreError>;

    /// The request with this id, with its decisions; `None` if there is none.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;

    /// The requests `filter` matches, newest first (by `requested_at`, then id descending),
    /// each with its decisions.
    fn list_approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// Records one approver's decision, in one transaction with the status change it
    /// causes (see [`DecideOutcome`]). A request pending past its `expires_at` (compared
    /// with `decision.at`) is expired instead, resolved at `decision.at`, and nothing is
    /// recorded. Approvals are counted by distinct approver (provider and subject).
    fn decide_approval(
        &self,
        id: &str,
        decision: &ApprovalDecision,
    ) -> Result<DecideOutcome, StoreError>;

    /// Ends a request that is still pending with `to` (`expired` or `withdrawn`) at `at`.
    /// Returns the request as it stands afterwards, whether or not this call changed it
    /// (a decision recorded first wins); `None` if there is none.
    /// [`StoreError::InvalidInput`] if `to` is neither.
    fn resolve_approval(
        &self,
        id: &str,
        to: ApprovalStatus,
        at: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// Redeems an approved ticket: the oldest `approved` ticket-mode request of this
    /// requester (provider and subject) for this connection and fingerprint whose grant
    /// has not run out at `at` becomes `redeemed` at `at`, and is returned. `None` when
    /// there is none; each ticket is redeemed once, however many callers race for it.
    fn redeem_ticket(
        &self,
        provider: &str,
        subject: &str,
        connection: &str,
        fingerprint: &str,
        at: i64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;

    /// Expires every request still pending whose `expires_at` is at or before `now`
    /// (resolved at `now`), and returns them as they now stand, oldest first (for the
    /// expiry notifications).
    fn expire_due(&self, now: i64) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// Withdraws every pending `hold` request (their sessions died with the gateway that
    /// held them) at `at`, and returns them as they now stand, oldest first. Tickets are
    /// left alone: they do not wait on a session.
    fn withdraw_pending_holds(&self, at: i64) -> Result<Vec<ApprovalRecord>, StoreError>;
}
