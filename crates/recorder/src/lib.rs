//! Recording sessions into the audit trail (DESIGN.md §6), protocol-neutral.
//!
//! A protocol crate holds a [`Recorder`] (one per gateway) and, for each session, a
//! [`SessionRecorder`]: it records the session's opening, each request with its decision
//! before the request runs, each result as the agent saw it (built with a
//! [`ResultCapture`]), and the close. Events go through a bounded queue to one batching
//! writer, which chains them, stores them and signs checkpoints.
//!
//! Layout:
//! - [`settings`]: [`RecorderSettings`], result caps, the store-failure policy;
//! - [`session`]: [`SessionRecorder`], and the durability guarantee it gives;
//! - [`capture`]: [`ResultCapture`], a result capped for the record;
//! - `journal`: the append-only file where a batch becomes durable before the store has
//!   it, so requests cost one `write`, not one store transaction each;
//! - `queue`: the bounded queue between sessions and the writer, which wakes the writer
//!   for requests only;
//! - `writer`: the batching writer thread (sealing, group commit, retries, checkpoints,
//!   retention).
//!
//! Architecture invariants:
//! - Nothing here knows a wire protocol: requests, results and reasons arrive as
//!   `sluice-audit` events, already in the agent's terms.
//! - The data path never waits on the store except through
//!   [`SessionRecorder::wait_durable`], and that only for requests it recorded; store
//!   calls run on blocking threads, never on the relay's tasks.
//! - No event is dropped quietly: a request that cannot be queued is refused, results and
//!   closes wait for room, a batch the store refuses is retried, and every loss that the
//!   `continue` policy accepts is logged as an error.
//! - One writer per store: it alone assigns hashes, so each session's chain is written in
//!   the order the session recorded it.

pub mod capture;
mod journal;
mod queue;
pub mod session;
pub mod settings;
mod writer;

use std::sync::Arc;

use sluice_audit::{CheckpointSigner, EventBody, LoginRefused, SessionOpened, Timestamp};
use sluice_store::Store;
use tokio::sync::{oneshot, watch};

pub use capture::ResultCapture;
pub use session::SessionRecorder;
pub use settings::{OnStoreFailure, RecorderSettings, ResultCaps};

/// Why an event could not be recorded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the audit store cannot take events ({0}); statements are refused until it can")]
    Unavailable(String),
    #[error(
        "the audit trail is behind (its queue is full); statements are refused until it catches up"
    )]
    QueueFull,
    #[error("the audit recorder has stopped")]
    Stopped,
}

/// Whether the store takes events, and if not, why.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub available: bool,
    pub error: Option<String>,
}

impl Health {
    fn available() -> Self {
        Self {
            available: true,
            error: None,
        }
    }

    fn failed(error: &str) -> Self {
        Self {
            available: false,
            error: Some(error.to_string()),
        }
    }
}

/// The gateway's recorder: cheap to clone, shared by every listener.
#[derive(Clone)]
pub struct Recorder {
    queue: Arc<queue::Queue>,
    /// Set when sessions journal their own events (`durability: os`).
    session_journal: Option<Arc<parking_lot::Mutex<journal::Journal>>>,
    /// Sessions opened and not yet closed in the store (retention spares them).
    live: Arc<parking_lot::Mutex<std::collections::HashSet<String>>>,
    health: watch::Receiver<Health>,
    settings: Arc<RecorderSettings>,
}

impl Recorder {
    /// Starts the writer on a thread of its own, after storing what the journal kept from
    /// before (the gateway stopped before the store had it). Fails if the journal cannot
    /// be opened or what it kept cannot be stored: a gateway that cannot complete its
    /// trail does not start.
    pub fn start(
        store: Arc<dyn Store>,
        signer: CheckpointSigner,
        settings: RecorderSettings,
    ) -> Result<Recorder, String> {
        let queue = Arc::new(queue::Queue::new(settings.queue_capacity));
        let (health_tx, health) = watch::channel(Health::available());
        if settings.on_store_failure == OnStoreFailure::Continue {
            tracing::warn!("recording.on_store_failure is `continue`: if the audit store fails, statements run unrecorded");
        }
        let journal = match &settings.journal {
            None => None,
            Some(path) => Some(Arc::new(parking_lot::Mutex::new(
                journal::Journal::open(path, settings.journal_sync)
                    .map_err(|e| format!("opening the audit journal {}: {e}", path.display()))?,
            ))),
        };
        // A flush to disk is worth sharing among sessions: with `disk` the writer batches.
        let session_journal = journal.clone().filter(|_| !settings.journal_sync);
        let live = Arc::new(parking_lot::Mutex::new(std::collections::HashSet::new()));
        let mut state =
            writer::WriterState::new(store, signer, journal, queue.clone(), live.clone());
        // The trail is whole before anything new is recorded.
        match state.recover() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                events = n,
                "stored the audit events the journal kept from before the last stop"
            ),
            Err(e) => {
                return Err(format!(
                    "storing what the audit journal kept from before the last stop: {e}"
                ))
            }
        }
        if settings.close_orphans_at_start {
            match state.close_orphans() {
                Ok(0) => {}
                Ok(n) => tracing::warn!(sessions = n, "closed the sessions the last run left open"),
                Err(e) => return Err(format!("closing the sessions the last run left open: {e}")),
            }
        }
        let (thread_queue, thread_settings) = (queue.clone(), settings.clone());
        std::thread::Builder::new()
            .name("sluice-audit-writer".into())
            .spawn(move || writer::run(thread_queue, state, health_tx, thread_settings))
            .expect("starting the audit writer thread");
        Ok(Recorder {
            queue,
            session_journal,
            live,
            health,
            settings: Arc::new(settings),
        })
    }

    pub fn settings(&self) -> &RecorderSettings {
        &self.settings
    }

    /// Starts recording a session: queues its opening event. Refused (fail closed) while
    /// the store cannot take events, unless the policy is `continue`.
    pub fn open_session(&self, opened: SessionOpened) -> Result<SessionRecorder, RecordError> {
        let session = SessionRecorder::new(
            sluice_audit::new_session_id(),
            self.queue.clone(),
            self.session_journal.clone(),
            self.health.clone(),
            self.settings.on_store_failure,
        );
        session.check_available()?;
        // Live before its first event exists, so retention can never see it half-there.
        self.live.lock().insert(session.session_id().to_string());
        match session.try_record(EventBody::SessionOpened(opened), true) {
            Ok(_) => Ok(session),
            Err(e) if self.settings.on_store_failure == OnStoreFailure::Continue => {
                tracing::error!(error = %e, "session opening not recorded (on_store_failure: continue)");
                Ok(session)
            }
            Err(e) => {
                self.live.lock().remove(session.session_id());
                Err(e)
            }
        }
    }

    /// Records a refused login, as a session of one event. Never blocks; a loss is logged.
    pub fn login_refused(&self, refused: LoginRefused) {
        let session = SessionRecorder::new(
            sluice_audit::new_session_id(),
            self.queue.clone(),
            self.session_journal.clone(),
            self.health.clone(),
            self.settings.on_store_failure,
        );
        if let Err(e) = session.try_record(EventBody::LoginRefused(refused), false) {
            tracing::error!(error = %e, "refused login not recorded");
        }
    }

    /// Whether the store currently takes events.
    pub fn is_available(&self) -> bool {
        self.health.borrow().available
    }

    /// Waits until everything queued so far is durable; the error is the store's.
    pub async fn flush(&self) -> Result<(), String> {
        let stopped = || "the audit recorder has stopped".to_string();
        let (reply, answer) = oneshot::channel();
        self.queue.flush(reply).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Writes what is queued, signs a last checkpoint and stops the writer. Events
    /// recorded after this are refused.
    pub async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.shutdown(ack).is_ok() {
            let _ = done.await;
        }
    }
}

/// The time an event is stamped with.
pub(crate) fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    Timestamp::from_unix_micros(micros).expect("the system clock is within the timestamp range")
}
