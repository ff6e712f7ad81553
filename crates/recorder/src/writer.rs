//! The batching writer: the one task that chains, stores and checkpoints events.
//!
//! Sessions put events on a bounded queue ([`crate::queue`]); the writer, a thread of its
//! own, takes everything waiting (up to `max_batch`), seals each event into its session's
//! hash chain ([`ChainBuilder`]) and stores the batch in one transaction. While one batch
//! is being written the next accumulates, so under load a single commit carries many
//! sessions' events (group commit), and no session's task ever waits on the store itself.
//! After a commit, each session's durable mark moves up and its waiters wake.
//!
//! **Failure.** A batch the store refuses is kept, sealed, and written again with backoff;
//! until that succeeds the recorder reports itself unavailable, and sessions refuse new
//! statements (see [`crate::SessionRecorder`]). Nothing that was queued is dropped.
//!
//! **Checkpoints.** Every `checkpoint_interval` (and at shutdown, and right after a
//! purge) the heads of the chains that grew since the last checkpoint are signed and
//! stored. **Retention** runs every `retention_check_interval`: sessions whose last event
//! is older than `retention` are removed, a `purged` event is recorded as a session of its
//! own, and a checkpoint signs it at once, as verification's purge rule requires.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_audit::{
    new_session_id, ChainBuilder, ChainHead, CheckpointSigner, Event, EventBody, Purged, Timestamp,
};
use std::time::Instant;

use parking_lot::Mutex;
use sluice_store::{Store, StoreError};
use tokio::sync::{oneshot, watch};

use crate::journal::Journal;
use crate::queue::{Queue, Queued};
use crate::session::SessionTrack;
use crate::{now, Health, RecorderSettings};

/// Why a batch could not be made durable or stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
}

/// What the writer thread owns.
pub(crate) struct WriterState {
    store: Arc<dyn Store>,
    signer: CheckpointSigner,
    /// Chains of the sessions that are still open.
    chains: HashMap<String, ChainBuilder>,
    /// Heads that grew since the last checkpoint.
    unsigned: HashMap<String, ChainHead>,
    /// Sealed events not yet durable (a failed batch waits here), with their sessions.
    sealed: Vec<Event>,
    tracks: Vec<Arc<SessionTrack>>,
    /// Where events become durable first, when there is one (see [`crate::journal`]);
    /// shared with sessions that journal their own events.
    journal: Option<Arc<Mutex<Journal>>>,
    /// The queue, to know whether journaled events still wait to be taken.
    queue: Arc<Queue>,
    /// Durable in the journal, not yet in the store.
    unstored: Vec<Event>,
    /// When the oldest of `unstored` became durable.
    unstored_since: Option<Instant>,
    /// Sessions opened and not yet closed in the store: retention never purges them.
    live: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl WriterState {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        signer: CheckpointSigner,
        journal: Option<Arc<Mutex<Journal>>>,
        queue: Arc<Queue>,
        live: Arc<Mutex<std::collections::HashSet<String>>>,
    ) -> Self {
        Self {
            store,
            signer,
            chains: HashMap::new(),
            unsigned: HashMap::new(),
            sealed: Vec::new(),
            tracks: Vec::new(),
            journal,
            queue,
            unstored: Vec::new(),
            unstored_since: None,
            live,
        }
    }

    /// Stores `events` in one transaction. If the store says some are there already (a
    /// commit whose answer was lost, then retried), those are dropped, by position, and
    /// the rest stored. Sessions whose close is now stored stop being live.
    fn store_events(&self, events: &[Event]) -> Result<(), StoreError> {
        match self.store.append_events(events) {
            Err(StoreError::Duplicate { .. }) => {
                let mut last: HashMap<&str, Option<u64>> = HashMap::new();
                for event in events {
                    if !last.contains_key(event.session_id.as_str()) {
                        let stored = self.store.last_event(&event.session_id)?.map(|e| e.seq);
                        last.insert(&event.session_id, stored);
                    }
                }
                let missing: Vec<Event> = events
                    .iter()
                    .filter(|e| last[e.session_id.as_str()].is_none_or(|l| e.seq > l))
                    .cloned()
                    .collect();
                tracing::warn!(
                    stored = events.len() - missing.len(),
                    "the store already had part of a batch (a commit whose answer was lost); storing the rest"
                );
                self.store.append_events(&missing)?;
            }
            other => other?,
        }
        let mut live = self.live.lock();
        for event in events {
            if matches!(event.body, EventBody::SessionClosed(_)) {
                live.remove(&event.session_id);
            }
        }
        Ok(())
    }

    fn journal_error(&self, source: std::io::Error) -> WriteError {
        WriteError::Journal {
            path: self
                .journal
                .as_ref()
                .map(|j| j.lock().path().display().to_string())
                .unwrap_or_default(),
            source,
        }
    }

    /// Closes, with a `session_closed` event saying so, every session the store still
    /// holds as open: at start, with this gateway the only one writing the store, no
    /// session can be running, so those are sessions the last run never closed (it was
    /// killed or crashed). Returns how many.
    pub(crate) fn close_orphans(&mut self) -> Result<usize, WriteError> {
        let open: Vec<String> = self
            .store
            .list_sessions(&sluice_store::SessionFilter::default())?
            .into_iter()
            .filter(|s| s.end == sluice_store::SessionEnd::Open)
            .map(|s| s.session_id)
            .collect();
        let mut closes = Vec::new();
        for session_id in &open {
            let Some(last) = self.store.last_event(session_id)? else {
                continue;
            };
            let mut chain = ChainBuilder::resume(&last);
            let close = chain.append(
                now(),
                EventBody::SessionClosed(sluice_audit::SessionClosed {
                    reason: "the gateway stopped without closing the session (killed or crashed); closed at the next start".into(),
                }),
            );
            self.unsigned
                .insert(close.session_id.clone(), ChainHead::of(&close));
            closes.push(close);
        }
        self.store.append_events(&closes)?;
        Ok(closes.len())
    }

    /// Moves into the store what the journal kept from before this start (the gateway
    /// stopped before storing it), skipping events the store already has, then empties
    /// the journal. The sessions it names are over; their heads are signed next.
    pub(crate) fn recover(&mut self) -> Result<usize, WriteError> {
        let Some(journal) = &self.journal else {
            return Ok(0);
        };
        let read = journal.lock().read_back();
        let events = read.map_err(|e| self.journal_error(e))?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut last_stored: HashMap<String, Option<u64>> = HashMap::new();
        let mut missing = Vec::new();
        for event in events {
            let last = match last_stored.get(&event.session_id) {
                Some(last) => *last,
                None => {
                    let last = self.store.last_event(&event.session_id)?.map(|e| e.seq);
                    last_stored.insert(event.session_id.clone(), last);
                    last
                }
            };
            if last.is_none_or(|last| event.seq > last) {
                missing.push(event);
            }
        }
        self.store.append_events(&missing)?;
        for event in &missing {
            self.unsigned
                .insert(event.session_id.clone(), ChainHead::of(event));
        }
        if let Some(journal) = &self.journal {
            let cleared = journal.lock().clear();
            cleared.map_err(|e| self.journal_error(e))?;
        }
        Ok(missing.len())
    }

    /// Appends each event to its session's chain.
    fn seal(&mut self, batch: Vec<Queued>) {
        for queued in batch {
            let session_id = &queued.track.session_id;
            let ends_session = matches!(
                queued.body,
                EventBody::SessionClosed(_) | EventBody::LoginRefused(_)
            );
            let chain = self
                .chains
                .entry(session_id.clone())
                .or_insert_with(|| ChainBuilder::new(session_id.clone()));
            // Sessions number their events as they queue them, one queue in order: a
            // mismatch is a bug, and an event with a wrong position must not be stored.
            if chain.next_seq() != queued.seq {
                tracing::error!(session = %session_id, expected = chain.next_seq(), got = queued.seq,
                    "audit event out of sequence; dropped");
                continue;
            }
            let event = chain.append(queued.at, queued.body);
            self.unsigned
                .insert(session_id.clone(), ChainHead::of(&event));
            if ends_session {
                self.chains.remove(session_id);
            }
            self.sealed.push(event);
            self.tracks.push(queued.track);
        }
    }

    /// Makes the sealed events durable (in the journal, or else in the store) and marks
    /// them so.
    fn write(&mut self) -> Result<(), WriteError> {
        if self.sealed.is_empty() {
            return Ok(());
        }
        match &self.journal {
            Some(journal) => {
                let appended = journal.lock().append(&self.sealed);
                if let Err(e) = appended {
                    return Err(self.journal_error(e));
                }
                self.unstored_since.get_or_insert_with(Instant::now);
                for (event, track) in self.sealed.drain(..).zip(self.tracks.drain(..)) {
                    track.mark_durable(event.seq);
                    self.unstored.push(event);
                }
            }
            None => {
                self.store_events(&self.sealed)?;
                for (event, track) in self.sealed.drain(..).zip(self.tracks.drain(..)) {
                    track.mark_durable(event.seq);
                }
            }
        }
        Ok(())
    }

    /// Whether journaled events wait for the store.
    fn unstored(&self) -> usize {
        self.unstored.len()
    }

    /// Takes events sessions sealed and journaled themselves: durable already, they wait
    /// for the store's next batch, and their heads for the next checkpoint.
    fn accept_sealed(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.unstored_since.get_or_insert_with(Instant::now);
        for event in events {
            self.unsigned
                .insert(event.session_id.clone(), ChainHead::of(&event));
            self.unstored.push(event);
        }
    }

    /// Moves what the journal holds into the store, in one transaction, and empties the
    /// journal.
    fn store_unstored(&mut self) -> Result<(), WriteError> {
        if self.unstored.is_empty() {
            return Ok(());
        }
        self.store_events(&self.unstored)?;
        self.unstored.clear();
        self.unstored_since = None;
        if let Some(journal) = &self.journal {
            // Sessions append and hand over under the journal's lock: if nothing waits in
            // the queue now, the store has everything the journal holds.
            let mut journal = journal.lock();
            if !self.queue.has_sealed() {
                if let Err(e) = journal.clear() {
                    drop(journal);
                    return Err(self.journal_error(e));
                }
            }
        }
        Ok(())
    }

    /// Signs the heads that grew since the last checkpoint (once the store has them: a
    /// signed head must be there for anyone who verifies).
    fn checkpoint(&mut self) -> Result<(), WriteError> {
        self.store_unstored()?;
        if self.unsigned.is_empty() {
            return Ok(());
        }
        let mut heads: Vec<ChainHead> = self.unsigned.values().cloned().collect();
        heads.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let checkpoint = self.signer.sign(now(), heads);
        self.store.put_checkpoint(&checkpoint)?;
        self.unsigned.clear();
        Ok(())
    }

    /// Removes sessions whose last event is before `before`, records the purge as a
    /// session of its own, and signs it.
    fn purge(&mut self, before: Timestamp) -> Result<u64, WriteError> {
        // Everything sealed must be stored first: a purge must not race its own backlog.
        self.write()?;
        self.store_unstored()?;
        let live: Vec<String> = self
            .live
            .lock()
            .iter()
            .chain(self.chains.keys())
            .cloned()
            .collect();
        let removed = self.store.purge_sessions(before, &live)?;
        if removed == 0 {
            return Ok(0);
        }
        let mut chain = ChainBuilder::new(new_session_id());
        let record = chain.append(
            now(),
            EventBody::Purged(Purged {
                before,
                sessions: removed,
            }),
        );
        self.store.append_events(std::slice::from_ref(&record))?;
        self.unsigned
            .insert(record.session_id.clone(), ChainHead::of(&record));
        self.checkpoint()?;
        Ok(removed)
    }
}

/// The writer thread's loop; ends after a shutdown request.
pub(crate) fn run(
    queue: Arc<Queue>,
    mut state: WriterState,
    health: watch::Sender<Health>,
    settings: RecorderSettings,
) {
    let mut backoff = settings.retry_backoff;
    let mut next_checkpoint = Instant::now() + settings.checkpoint_interval;
    let mut next_retention = Instant::now()
        + settings
            .retention_check_interval
            .min(Duration::from_secs(60));
    let mut flushes: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut shutdown: Option<oneshot::Sender<()>> = None;
    loop {
        let failing = !health.borrow().available;
        let mut wake = if settings.retention.is_some() {
            next_checkpoint.min(next_retention)
        } else {
            next_checkpoint
        };
        if let Some(since) = state.unstored_since {
            wake = wake.min(since + settings.store_delay);
        }
        if failing {
            wake = Instant::now();
        }
        let taken = queue.take(wake, settings.max_batch);
        flushes.extend(taken.flushes);
        if taken.shutdown.is_some() {
            shutdown = taken.shutdown;
        }
        let now = Instant::now();
        let due_checkpoint = now >= next_checkpoint || shutdown.is_some();
        let due_retention = settings
            .retention
            .filter(|_| now >= next_retention && !failing);

        state.accept_sealed(taken.sealed);
        state.seal(taken.events);
        let mut outcome = state.write();
        let due_store = failing
            || due_checkpoint
            || !flushes.is_empty()
            || state.unstored() >= settings.store_batch
            || state
                .unstored_since
                .is_some_and(|since| now >= since + settings.store_delay);
        if outcome.is_ok() && due_store {
            outcome = state.store_unstored();
        }
        if outcome.is_ok() && due_checkpoint {
            outcome = state.checkpoint();
        }
        if outcome.is_ok() {
            if let Some(retention) = due_retention {
                let before = Timestamp::from_unix_micros(
                    now_micros() - retention.as_micros().min(i64::MAX as u128) as i64,
                );
                match before.map(|before| state.purge(before)) {
                    Ok(Ok(0)) => {}
                    Ok(Ok(removed)) => {
                        tracing::info!(sessions = removed, "retention purged expired sessions")
                    }
                    Ok(Err(e)) => outcome = Err(e),
                    Err(e) => tracing::error!(error = %e, "retention cut-off out of range"),
                }
            }
        }
        if due_checkpoint {
            next_checkpoint = Instant::now() + settings.checkpoint_interval;
        }
        if due_retention.is_some() {
            next_retention = Instant::now() + settings.retention_check_interval;
        }

        match outcome {
            Ok(()) => {
                backoff = settings.retry_backoff;
                if failing {
                    tracing::warn!("the audit store takes events again");
                    health.send_replace(Health::available());
                }
                for flush in flushes.drain(..) {
                    let _ = flush.send(Ok(()));
                }
                if let Some(ack) = shutdown.take() {
                    if queue.is_empty() && state.unstored() == 0 {
                        let _ = ack.send(());
                        return;
                    }
                    // More was queued than one batch takes: write it first.
                    shutdown = Some(ack);
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, retry_in = ?backoff, "the audit store cannot take events; new statements are refused until it can");
                health.send_replace(Health::failed(&message));
                for flush in flushes.drain(..) {
                    let _ = flush.send(Err(message.clone()));
                }
                if let Some(ack) = shutdown.take() {
                    tracing::error!("stopping with audit events the store did not take");
                    let _ = ack.send(());
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(settings.retry_backoff_max);
            }
        }
    }
}

fn now_micros() -> i64 {
    now().unix_micros()
}
