//! The store's error type, shared by every backend.
//!
//! Each error says which operation failed and on which database, so a log line is enough to
//! act on. The one distinction callers branch on is [`StoreError::is_unavailable`]: the
//! database could not be reached or written (I/O, locked, disk full, cannot open) as opposed
//! to a request the store understood and refused. Either way a caller that guards access must
//! fail closed; the distinction decides between "try again / page someone" and "fix the input".
//!
//! Database locations in errors never carry credentials: backends pass a display form of
//! their location (a file path for SQLite, a password-less URL for PostgreSQL).

use std::error::Error as StdError;

/// A boxed underlying cause, so backends other than SQLite can report their own errors.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
///
/// `op` is the operation that failed (`"open"`, `"insert_api_key"`, ...); `db` is where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached, opened, locked or written: I/O errors, a busy or
    /// locked database after the busy timeout, a full disk, a read-only file, a missing
    /// directory that cannot be created. Usually transient or operational.
    #[error("store unavailable: {op} on {db}: {source}")]
    Unavailable {
        op: &'static str,
        db: String,
        #[source]
        source: BoxError,
    },

    /// A record with the same unique value already exists (`what` names it, e.g.
    /// `API key named "ci"`).
    #[error("{op} on {db}: {what} already exists")]
    Duplicate {
        op: &'static str,
        db: String,
        what: String,
    },

    /// The caller passed something the store will not record (empty id, malformed hash, ...).
    #[error("{op} on {db}: invalid input: {reason}")]
    InvalidInput {
        op: &'static str,
        db: String,
        reason: String,
    },

    /// The database was migrated by a newer Sluice than this binary. Opening it anyway could
    /// misread or damage data written under rules this binary does not know.
    #[error(
        "database {db} has schema version {found}, but this build of Sluice supports only up \
         to version {supported}; refusing to open it (upgrade Sluice, or point it at another \
         database)"
    )]
    SchemaTooNew {
        db: String,
        found: u32,
        supported: u32,
    },

    /// The migration history in the database does not match this binary's (a version recorded
    /// under another name): the file was not created by Sluice, or by an incompatible build.
    #[error(
        "database {db}: migration {version} is recorded as {found:?} but this build knows it \
         as {expected:?}; refusing to open a database with an unknown history"
    )]
    MigrationMismatch {
        db: String,
        version: u32,
        found: String,
        expected: &'static str,
    },

    /// A migration's SQL failed for a reason other than unavailability. Its transaction was
    /// rolled back, so the database stays at the previous version.
    #[error("database {db}: migration {version} ({name}) failed: {source}")]
    Migration {
        db: String,
        version: u32,
        name: &'static str,
        #[source]
        source: BoxError,
    },

    /// The file is not a database, is damaged, or holds a value this binary cannot decode.
    #[error("{op} on {db}: database is corrupt or not a Sluice database: {detail}")]
    Corrupt {
        op: &'static str,
        db: String,
        detail: String,
    },

    /// A store URL that cannot be parsed. `url` has any password removed.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// A well-formed store URL for a backend this build does not provide. `url` has any
    /// password removed.
    #[error("store URL {url:?}: {reason}")]
    Unsupported { url: String, reason: String },

    /// Any other failure of the database engine (a bug more often than not).
    #[error("{op} on {db}: {source}")]
    Other {
        op: &'static str,
        db: String,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// True when the database could not be reached or written, as opposed to a request that
    /// was understood and refused. Callers fail closed either way; this decides whether the
    /// failure is operational (retry, alert) or caused by the input.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The operation that failed, when the error is tied to one.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            StoreError::Unavailable { op, .. }
            | StoreError::Duplicate { op, .. }
            | StoreError::InvalidInput { op, .. }
            | StoreError::Corrupt { op, .. }
            | StoreError::Other { op, .. } => Some(op),
            StoreError::SchemaTooNew { .. }
            | StoreError::MigrationMismatch { .. }
            | StoreError::Migration { .. } => Some("migrate"),
            StoreError::InvalidUrl { .. } | StoreError::Unsupported { .. } => None,
        }
    }
}
