//! Sluice's persistence: the [`Store`] interface, the embedded SQLite store, and its schema
//! migrations.
//!
//! Everything Sluice keeps across restarts goes through [`Store`], so the gateway does not
//! care whether it runs on the embedded SQLite file (the default, one gateway instance) or,
//! later, on PostgreSQL (several instances sharing state). Callers obtain one with
//! [`open_store`] from the config's `store:` URL and hold it as `Arc<dyn Store>`.
//!
//! Layout:
//! - `lib.rs`: the [`Store`] trait and the records it stores ([`ApiKeyRow`], [`RevokeOutcome`]);
//! - `error.rs`: [`StoreError`], with the operation and database in every error, and
//!   [`StoreError::is_unavailable`] to tell "could not reach the database" from the rest;
//! - `migrations/`: the versioned schema ([`migrations::MIGRATIONS`]), one `.sql` file each;
//! - `sqlite.rs`: [`SqliteStore`], connection settings and the SQL for each operation;
//! - `url.rs`: [`StoreUrl`] parsing and [`open_store`].
//!
//! Every store call is synchronous and short. Async callers should run them on a blocking
//! thread (`tokio::task::spawn_blocking`) if they are on a hot path.

mod error;
pub mod migrations;
mod sqlite;
mod url;

pub use error::{BoxError, StoreError};
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
}
