//! How far the resource has answered: the count of ReadyForQuery messages (sync points)
//! the resource-to-client half has seen, which the client half waits on before it lets a
//! statement after a risky one through (see `Session::settle`).
//!
//! The count advances on every ReadyForQuery, and someone waits on it only after a risky
//! statement, so advancing must cost next to nothing: a store, and a wake-up only when a
//! waiter announced itself. (A `tokio::sync::watch` channel took its notifier's locks on
//! every send.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct ReadyCount {
    seen: AtomicU64,
    waiting: AtomicBool,
    notify: Notify,
}

impl ReadyCount {
    /// The resource has answered up to sync point `seen`.
    pub(super) fn advance_to(&self, seen: u64) {
        // Sequentially consistent with `wait_for`'s store and load: either the waiter sees
        // this count, or this sees the waiter and wakes it.
        self.seen.store(seen, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// Returns once the resource has answered up to `sync_point`.
    pub(super) async fn wait_for(&self, sync_point: u64) {
        loop {
            // Made before the count is read: a `notify_waiters` from then on wakes it.
            let notified = self.notify.notified();
            self.waiting.store(true, Ordering::SeqCst);
            if self.seen.load(Ordering::SeqCst) >= sync_point {
                self.waiting.store(false, Ordering::SeqCst);
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_waiter_returns_once_the_count_reaches_its_point() {
        let ready = Arc::new(ReadyCount::default());
        ready.advance_to(1);
        // Already there: no wait.
        tokio::time::timeout(Duration::from_secs(5), ready.wait_for(1))
            .await
            .expect("returns at once");

        let waiter = tokio::spawn({
            let ready = ready.clone();
            async move { ready.wait_for(3).await }
        });
        tokio::task::yield_now().await;
        ready.advance_to(2);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "returned before its sync point");
        ready.advance_to(3);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("no panic");
    }

    /// Advances racing a waiter on another thread never leave it asleep.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_advance_is_missed() {
        let ready = Arc::new(ReadyCount::default());
        let waiter = tokio::spawn({
            let ready = ready.clone();
            async move {
                for point in 1..=20_000 {
                    ready.wait_for(point).await;
                }
            }
        });
        for seen in 1..=20_000 {
            ready.advance_to(seen);
            if seen % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the waiter saw every advance")
            .expect("no panic");
    }
}
