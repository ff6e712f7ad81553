//! How the recorder behaves: result caps, queue and batch sizes, checkpoint and retention
//! schedules, and what happens when the store fails. Built from the config's
//! `recording:` block by the binary; defaults are DESIGN.md §6's.

use std::time::Duration;

/// Everything the recorder can be told.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// How much of each statement's result the record keeps.
    pub result_caps: ResultCaps,
    /// Events that may wait for the writer. Past it, new statements are refused (they
    /// could not be recorded); results and closes wait for room instead of being lost.
    pub queue_capacity: usize,
    /// Most events written in one store transaction.
    pub max_batch: usize,
    /// How often the heads of the chains that grew are signed.
    pub checkpoint_interval: Duration,
    /// Sessions whose last event is older than this are purged; `None` keeps them.
    pub retention: Option<Duration>,
    /// How often retention looks for expired sessions.
    pub retention_check_interval: Duration,
    pub on_store_failure: OnStoreFailure,
    /// First wait before writing again after the store failed; doubled up to
    /// `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Where events become durable before the store has them (see the journal module);
    /// `None`: each batch is durable once the store has committed it.
    pub journal: Option<std::path::PathBuf>,
    /// `fdatasync` the journal after every batch (`recording.durability: disk`).
    pub journal_sync: bool,
    /// At start, close the sessions the store still holds as open: right when this
    /// gateway is the store's only writer (SQLite), wrong when several share it (their
    /// open sessions may be running).
    pub close_orphans_at_start: bool,
    /// Journaled events wait at most this long for the store...
    pub store_delay: Duration,
    /// ...or until this many have gathered.
    pub store_batch: usize,
}

impl Default for RecorderSettings {
    fn default() -> Self {
        Self {
            result_caps: ResultCaps::default(),
            queue_capacity: 8192,
            max_batch: 1024,
            checkpoint_interval: Duration::from_secs(5),
            retention: None,
            retention_check_interval: Duration::from_secs(3600),
            on_store_failure: OnStoreFailure::Refuse,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(2),
            journal: None,
            journal_sync: false,
            close_orphans_at_start: false,
            store_delay: Duration::from_millis(100),
            store_batch: 4096,
        }
    }
}

/// The part of each statement's result kept in its record (the rest is counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCaps {
    pub rows: u64,
    /// Bytes of values kept (their text, as recorded).
    pub bytes: u64,
}

impl Default for ResultCaps {
    fn default() -> Self {
        Self {
            rows: 1000,
            bytes: 1024 * 1024,
        }
    }
}

/// What a session does when the store cannot take its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreFailure {
    /// Refuse new statements and withhold results whose request is not durable (fail
    /// closed).
    #[default]
    Refuse,
    /// Let statements run unrecorded; every event that cannot be recorded is logged as an
    /// error. A deliberate, loud relaxation.
    Continue,
}
