//! One session's side of recording: numbering its events, queueing them, and waiting
//! until its requests are durable.
//!
//! A [`SessionRecorder`] is cloned into each half of a protocol's relay (requests on one
//! side, results on the other); the clones share one [`SessionTrack`], whose lock makes
//! taking a position and queueing the event one step, so positions follow queue order.
//!
//! **The durability guarantee.** A protocol records a request with
//! [`SessionRecorder::request`] before sending it to the resource, and calls
//! [`SessionRecorder::wait_durable`] before delivering the message that completes a
//! result (PostgreSQL: CommandComplete, ErrorResponse, ReadyForQuery). That wait returns
//! once the writer has committed every request the session recorded so far, so no agent
//! ever holds a complete result whose request is not in the store. The wait is normally
//! free: the request is committed while the resource is still working on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_audit::{EventBody, Request, SessionClosed, StatementResult};
use tokio::sync::{watch, Notify};

use crate::queue::{Queue, Queued, Rejected};
use crate::{now, Health, OnStoreFailure, RecordError};

/// What the writer and the session share about the session.
pub(crate) struct SessionTrack {
    pub session_id: String,
    /// The position the next event gets; held while the event is queued.
    next_seq: Mutex<u64>,
    /// One past the highest position committed to the store.
    durable: AtomicU64,
    /// One past the position of the last request recorded.
    requested: AtomicU64,
    committed: Notify,
}

impl SessionTrack {
    pub(crate) fn new(session_id: String) -> Self {
        Self {
            session_id,
            next_seq: Mutex::new(0),
            durable: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            committed: Notify::new(),
        }
    }

    pub(crate) fn mark_durable(&self, seq: u64) {
        if self.durable.fetch_max(seq + 1, Ordering::AcqRel) < seq + 1 {
            self.committed.notify_waiters();
        }
    }
}

/// Records one session. Cheap to clone; every clone records into the same chain.
#[derive(Clone)]
pub struct SessionRecorder {
    track: Arc<SessionTrack>,
    queue: Arc<Queue>,
    health: watch::Receiver<Health>,
    on_failure: OnStoreFailure,
}

impl SessionRecorder {
    pub(crate) fn new(
        session_id: String,
        queue: Arc<Queue>,
        health: watch::Receiver<Health>,
        on_failure: OnStoreFailure,
    ) -> Self {
        Self {
            track: Arc::new(SessionTrack::new(session_id)),
            queue,
            health,
            on_failure,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.track.session_id
    }

    /// Queues `body` now if there is room; returns its position. `urgent` for events the
    /// data path will wait on (requests), which wake the writer at once.
    pub(crate) fn try_record(&self, body: EventBody, urgent: bool) -> Result<u64, RecordError> {
        self.queue_now(body, urgent).map_err(|(e, _)| e)
    }

    /// Queues `body` now, or gives it back with the reason.
    #[allow(clippy::result_large_err)] // as `Queue::push`: the body comes back unboxed
    fn queue_now(&self, body: EventBody, urgent: bool) -> Result<u64, (RecordError, EventBody)> {
        let mut next = self.track.next_seq.lock();
        let queued = Queued {
            track: self.track.clone(),
            seq: *next,
            at: now(),
            body,
        };
        match self.queue.push(queued, urgent) {
            Ok(()) => {
                *next += 1;
                Ok(*next - 1)
            }
            Err((Rejected::Full, queued)) => Err((RecordError::QueueFull, queued.body)),
            Err((Rejected::Closed, queued)) => Err((RecordError::Stopped, queued.body)),
        }
    }

    /// Queues `body` for the next batch, waiting for room in the queue if need be.
    async fn record(&self, body: EventBody) -> Result<u64, RecordError> {
        let mut body = body;
        loop {
            match self.queue_now(body, false) {
                Ok(seq) => return Ok(seq),
                Err((RecordError::QueueFull, back)) => {
                    body = back;
                    self.queue.room().await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Whether new requests may go ahead: the store takes events, or the config lets
    /// sessions run unrecorded. The error says why not.
    pub fn check_available(&self) -> Result<(), RecordError> {
        let health = self.health.borrow();
        if health.available || self.on_failure == OnStoreFailure::Continue {
            Ok(())
        } else {
            Err(RecordError::Unavailable(
                health.error.clone().unwrap_or_default(),
            ))
        }
    }

    /// Records a request (allowed or not) before it is sent on; returns its position,
    /// which its result names. An error means it cannot be recorded and, allowed or not,
    /// must not run: the caller refuses it with the error's text.
    pub fn request(&self, request: Request) -> Result<u64, RecordError> {
        self.check_available()?;
        match self.try_record(EventBody::Request(request), true) {
            Ok(seq) => {
                self.track.requested.fetch_max(seq + 1, Ordering::AcqRel);
                Ok(seq)
            }
            Err(e) if self.on_failure == OnStoreFailure::Continue => {
                tracing::error!(session = %self.session_id(), error = %e, "request not recorded (on_store_failure: continue)");
                Ok(u64::MAX)
            }
            Err(e) => Err(e),
        }
    }

    /// Records what came back for a request. Waits for room in the queue rather than
    /// lose it.
    pub async fn result(&self, result: StatementResult) {
        if result.request_seq == u64::MAX {
            return;
        }
        if let Err(e) = self.record(EventBody::Result(result)).await {
            tracing::error!(session = %self.session_id(), error = %e, "result not recorded");
        }
    }

    /// Records the session's end.
    pub async fn close(&self, reason: &str) {
        let body = EventBody::SessionClosed(SessionClosed {
            reason: reason.to_string(),
        });
        if let Err(e) = self.record(body).await {
            tracing::error!(session = %self.session_id(), error = %e, "session close not recorded");
        }
    }

    /// Whether every request recorded so far is committed (no waiting needed).
    pub fn requests_durable(&self) -> bool {
        self.track.durable.load(Ordering::Acquire) >= self.track.requested.load(Ordering::Acquire)
    }

    /// Waits until every request recorded so far is committed. An error means the store
    /// failed first: the result must be withheld (unless `on_store_failure: continue`).
    pub async fn wait_durable(&mut self) -> Result<(), RecordError> {
        let target = self.track.requested.load(Ordering::Acquire);
        loop {
            let committed = self.track.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            if self.track.durable.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            {
                let health = self.health.borrow_and_update();
                if !health.available {
                    return match self.on_failure {
                        OnStoreFailure::Continue => Ok(()),
                        OnStoreFailure::Refuse => Err(RecordError::Unavailable(
                            health.error.clone().unwrap_or_default(),
                        )),
                    };
                }
            }
            tokio::select! {
                _ = &mut committed => {}
                changed = self.health.changed() => {
                    if changed.is_err() {
                        return Err(RecordError::Stopped);
                    }
                }
            }
        }
    }
}
