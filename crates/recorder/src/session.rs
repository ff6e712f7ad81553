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
//! once every request the session recorded so far is durable, so no agent ever holds a
//! complete result whose request could be lost.
//!
//! **Two ways to durable.** With a journal and `durability: os` (the default), a session
//! seals each event into its chain and appends it to the journal itself, under its chain's
//! lock: a request is durable when `request` returns, and nothing waits or wakes anyone.
//! Otherwise (`durability: disk`, whose `fdatasync` is worth sharing among sessions, or
//! no journal) events are queued and the writer seals and writes them in batches; a
//! request wakes it, and `wait_durable` waits for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sluice_audit::{ChainBuilder, EventBody, Request, SessionClosed, StatementResult};
use tokio::sync::{watch, Notify};

use crate::journal::Journal;
use crate::queue::{Queue, Queued, Rejected};
use crate::{now, Health, OnStoreFailure, RecordError};

/// How long a request waits for room in a full queue before it is refused.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The session's chain, as far as it has gone.
struct SessionChain {
    /// The position the next event gets.
    next_seq: u64,
    /// The chain itself, when the session seals its own events.
    builder: ChainBuilder,
}

/// What the writer and the session share about the session.
pub(crate) struct SessionTrack {
    pub session_id: String,
    /// Held while an event takes its position and is queued (or sealed and journaled), so
    /// positions follow queue and journal order.
    chain: Mutex<SessionChain>,
    /// One past the highest position committed to the store.
    durable: AtomicU64,
    /// One past the position of the last request recorded.
    requested: AtomicU64,
    committed: Notify,
}

impl SessionTrack {
    pub(crate) fn new(session_id: String) -> Self {
        Self {
            chain: Mutex::new(SessionChain {
                next_seq: 0,
                builder: ChainBuilder::new(session_id.clone()),
            }),
            session_id,
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
    /// The journal the session appends its own sealed events to (`durability: os`).
    journal: Option<Arc<Mutex<Journal>>>,
    health: watch::Receiver<Health>,
    on_failure: OnStoreFailure,
}

impl SessionRecorder {
    pub(crate) fn new(
        session_id: String,
        queue: Arc<Queue>,
        journal: Option<Arc<Mutex<Journal>>>,
        health: watch::Receiver<Health>,
        on_failure: OnStoreFailure,
    ) -> Self {
        Self {
            track: Arc::new(SessionTrack::new(session_id)),
            queue,
            journal,
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
        let mut chain = self.track.chain.lock();
        if let Some(journal) = &self.journal {
            return self.seal_and_journal(&mut chain, journal, body);
        }
        let queued = Queued {
            track: self.track.clone(),
            seq: chain.next_seq,
            at: now(),
            body,
        };
        match self.queue.push(queued, urgent) {
            Ok(()) => {
                chain.next_seq += 1;
                Ok(chain.next_seq - 1)
            }
            Err((Rejected::Full, queued)) => Err((RecordError::QueueFull, queued.body)),
            Err((Rejected::Closed, queued)) => Err((RecordError::Stopped, queued.body)),
        }
    }

    /// Seals `body` into the chain and appends it to the journal: durable on return. The
    /// writer gets it for the store's next batch.
    #[allow(clippy::result_large_err)] // as `queue_now`
    fn seal_and_journal(
        &self,
        chain: &mut SessionChain,
        journal: &Mutex<Journal>,
        body: EventBody,
    ) -> Result<u64, (RecordError, EventBody)> {
        match self.queue.refuses() {
            Some(Rejected::Full) => return Err((RecordError::QueueFull, body)),
            Some(Rejected::Closed) => return Err((RecordError::Stopped, body)),
            None => {}
        }
        // Sealed on a copy of the chain, kept only once the journal has the event.
        let mut builder = chain.builder.clone();
        let event = builder.append(now(), body);
        let seq = event.seq;
        let mut journal = journal.lock();
        if let Err(e) = journal.append(std::slice::from_ref(&event)) {
            let error = RecordError::Unavailable(format!(
                "the audit journal {}: {e}",
                journal.path().display()
            ));
            return Err((error, event.body));
        }
        self.queue.push_sealed(event);
        drop(journal);
        chain.builder = builder;
        chain.next_seq = seq + 1;
        self.track.mark_durable(seq);
        Ok(seq)
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
    ///
    /// A full queue (the writer is behind) is waited out for up to [`QUEUE_WAIT`], which
    /// slows the session down to what the trail can take; only a queue that stays full is
    /// an error.
    pub async fn request(&self, request: Request) -> Result<u64, RecordError> {
        self.check_available()?;
        match self.queue_waiting(EventBody::Request(request)).await {
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

    /// Queues a request, waiting up to [`QUEUE_WAIT`] for room.
    async fn queue_waiting(&self, body: EventBody) -> Result<u64, RecordError> {
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        let mut body = body;
        loop {
            match self.queue_now(body, true) {
                Ok(seq) => return Ok(seq),
                Err((RecordError::QueueFull, back)) => {
                    body = back;
                    if tokio::time::timeout_at(deadline, self.queue.room())
                        .await
                        .is_err()
                    {
                        return Err(RecordError::QueueFull);
                    }
                }
                Err((e, _)) => return Err(e),
            }
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

    /// Records what became of an approval the session asked for: each approver's
    /// decision, then how it ended (`sluice_audit::ApprovalResolved`). Waits for room
    /// rather than lose them; the statement that runs under the approval is recorded
    /// after them as a request of its own.
    pub async fn approval_outcome(
        &self,
        decisions: Vec<sluice_audit::ApprovalDecided>,
        resolved: sluice_audit::ApprovalResolved,
    ) {
        let bodies = decisions
            .into_iter()
            .map(EventBody::ApprovalDecided)
            .chain(std::iter::once(EventBody::ApprovalResolved(resolved)));
        for body in bodies {
            if let Err(e) = self.record(body).await {
                tracing::error!(session = %self.session_id(), error = %e, "approval event not recorded");
            }
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
