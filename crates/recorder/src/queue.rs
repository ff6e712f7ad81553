//! The bounded queue between sessions and the writer.
//!
//! A mutex-guarded list and a condition variable rather than a channel, for one reason:
//! not every event needs the writer now. A request must be durable before its result
//! completes, so queueing one wakes the writer; a result or a session's close can wait
//! for the next batch (at most [`LAZY_DELAY`]), so a busy session costs the writer one
//! wake-up per statement, not two. Under load the writer rarely sleeps at all: each batch
//! takes everything queued while the previous one was written.
//!
//! The queue holds at most `capacity` events. A request that finds it full is refused
//! (it could not be recorded, so it must not run); results and closes wait for room.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use sluice_audit::{Event, EventBody, Timestamp};
use std::sync::Arc;
use tokio::sync::{oneshot, Notify};

use crate::session::SessionTrack;

/// The longest an event that needs no prompt write waits for its batch.
pub(crate) const LAZY_DELAY: Duration = Duration::from_millis(20);

/// An event of a session, in the order the session recorded it; `seq` is the position
/// the session gave it, which sealing checks.
pub(crate) struct Queued {
    pub track: Arc<SessionTrack>,
    pub seq: u64,
    pub at: Timestamp,
    pub body: EventBody,
}

/// Why an event was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Full,
    Closed,
}

/// What the writer takes in one go.
#[derive(Default)]
pub(crate) struct Taken {
    pub events: Vec<Queued>,
    /// Events a session sealed and journaled itself: only the store is still to come.
    pub sealed: Vec<Event>,
    /// Answered once everything taken with them is durable.
    pub flushes: Vec<oneshot::Sender<Result<(), String>>>,
    /// Write what is taken, sign a last checkpoint, stop.
    pub shutdown: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    taken: Taken,
    /// Something queued must be written now (a request, a flush, shutdown).
    urgent: bool,
    /// When the oldest lazily queued event must be written at the latest.
    lazy_deadline: Option<Instant>,
    writer_waiting: bool,
    closed: bool,
}

pub(crate) struct Queue {
    state: Mutex<State>,
    writer: Condvar,
    /// Signalled when the writer has taken events, for sessions waiting for room.
    room: Notify,
    capacity: usize,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            writer: Condvar::new(),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues an event now, or gives it back with the reason. `urgent` wakes the writer
    /// at once.
    // The event comes back whole so a caller can wait for room and try again; boxing it
    // would cost an allocation for every event to spare the rare rejection.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, event: Queued, urgent: bool) -> Result<(), (Rejected, Queued)> {
        let mut state = self.state.lock();
        if state.closed {
            return Err((Rejected::Closed, event));
        }
        if state.taken.events.len() + state.taken.sealed.len() >= self.capacity {
            return Err((Rejected::Full, event));
        }
        state.taken.events.push(event);
        self.wake(&mut state, urgent);
        Ok(())
    }

    /// Whether an event would be refused now, and why.
    pub(crate) fn refuses(&self) -> Option<Rejected> {
        let state = self.state.lock();
        if state.closed {
            Some(Rejected::Closed)
        } else if state.taken.events.len() + state.taken.sealed.len() >= self.capacity {
            Some(Rejected::Full)
        } else {
            None
        }
    }

    /// Hands the writer an event a session has sealed and journaled: it is durable, and
    /// waits for the store's next batch without waking anyone. Called with the journal
    /// locked, so the journal never holds an event the writer cannot see.
    pub(crate) fn push_sealed(&self, event: Event) {
        let mut state = self.state.lock();
        state.taken.sealed.push(event);
        self.wake(&mut state, false);
    }

    /// Whether sealed events wait to be taken (the journal holds events not yet stored).
    pub(crate) fn has_sealed(&self) -> bool {
        !self.state.lock().taken.sealed.is_empty()
    }

    /// Waits until the queue has room (or is closed).
    pub(crate) async fn room(&self) {
        let room = self.room.notified();
        tokio::pin!(room);
        room.as_mut().enable();
        {
            let state = self.state.lock();
            if state.closed || state.taken.events.len() + state.taken.sealed.len() < self.capacity {
                return;
            }
        }
        room.await
    }

    pub(crate) fn flush(&self, reply: oneshot::Sender<Result<(), String>>) -> Result<(), Rejected> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Rejected::Closed);
        }
        state.taken.flushes.push(reply);
        self.wake(&mut state, true);
        Ok(())
    }

    pub(crate) fn shutdown(&self, ack: oneshot::Sender<()>) -> Result<(), Rejected> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(Rejected::Closed);
        }
        state.taken.shutdown = Some(ack);
        state.closed = true;
        self.wake(&mut state, true);
        Ok(())
    }

    fn wake(&self, state: &mut State, urgent: bool) {
        let mut notify = urgent;
        if urgent {
            state.urgent = true;
        } else if state.lazy_deadline.is_none() {
            state.lazy_deadline = Some(Instant::now() + LAZY_DELAY);
            // A writer asleep until its next checkpoint must learn of the new deadline.
            notify = true;
        }
        if notify && state.writer_waiting {
            self.writer.notify_one();
        }
    }

    /// The writer's side: waits until something must be written or `until` passes, then
    /// takes everything queued (at most `max` events; the rest stay for the next call).
    pub(crate) fn take(&self, until: Instant, max: usize) -> Taken {
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            let lazy_due = state.lazy_deadline.is_some_and(|d| d <= now);
            if state.urgent || lazy_due || now >= until || state.taken.shutdown.is_some() {
                break;
            }
            let wake_at = state.lazy_deadline.map_or(until, |d| d.min(until));
            state.writer_waiting = true;
            self.writer.wait_until(&mut state, wake_at);
            state.writer_waiting = false;
        }
        let taken = if state.taken.events.len() > max {
            let rest = state.taken.events.split_off(max);
            // What is left is written next, without waiting.
            state.urgent = true;
            Taken {
                events: std::mem::replace(&mut state.taken.events, rest),
                sealed: std::mem::take(&mut state.taken.sealed),
                flushes: Vec::new(),
                shutdown: None,
            }
        } else {
            state.urgent = false;
            state.lazy_deadline = None;
            std::mem::take(&mut state.taken)
        };
        drop(state);
        self.room.notify_waiters();
        taken
    }

    /// Events still waiting (after a shutdown, what was never taken).
    pub(crate) fn is_empty(&self) -> bool {
        let state = self.state.lock();
        state.taken.events.is_empty() && state.taken.sealed.is_empty()
    }
}
