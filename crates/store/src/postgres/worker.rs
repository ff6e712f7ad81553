//! The thread that owns the PostgreSQL store's connection, and how a synchronous
//! [`Store`](crate::Store) call reaches it.
//!
//! The store's methods are synchronous and are called both from tokio worker threads (async
//! code calling the store directly) and from blocking threads. A client that blocks on its
//! own runtime would panic inside a runtime, so the connection lives elsewhere: one std
//! thread per store owns a current-thread tokio runtime and the one `tokio_postgres`
//! connection. A call sends a job over a channel and blocks until the thread replies, so
//! calls are served one at a time, in the order they arrive, as the SQLite store serves
//! them behind its mutex. Blocking the caller's thread for the length of one short query is
//! the same cost SQLite's file I/O has.
//!
//! Connection life:
//! - opened on the first call ([`PostgresStore::open`](super::PostgresStore::open) makes
//!   that call, to migrate) and kept;
//! - a call that finds it broken (the server closed it, a network error, no answer within
//!   [`CALL_TIMEOUT`]) fails with [`StoreError::Unavailable`] and drops it; the next call
//!   connects again. A call is never retried behind the caller's back: a batch whose commit
//!   was cut off may or may not be stored, and only the caller can decide what to do;
//! - a panic while serving a call drops the connection (it may be inside a transaction)
//!   and fails that call; the thread goes on serving the next ones.
//!
//! The thread ends when the store is dropped; the drop waits for it, so the connection is
//! closed (and the server told so) once the store is gone.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls};

use super::PgError;
use crate::error::{BoxError, StoreError};

/// How long one call may take, connecting included, before the store reports itself
/// unavailable and drops the connection (whose state is then unknown).
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a wait for another session's lock may last before the statement fails (and the
/// call with [`StoreError::Unavailable`]): as long as the SQLite store's busy timeout.
pub(super) const LOCK_TIMEOUT: Duration = crate::sqlite::BUSY_TIMEOUT;

/// How long closing the connection on drop may wait for the server.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a call runs on the connection thread: given the client and the database's display
/// name (for errors), a future that does the work.
pub(super) type CallFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + 'c>>;

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// The store's side of the connection thread: sends jobs, waits for replies.
pub(super) struct Connection {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Connection {
    /// Starts the connection thread. It connects on its first call.
    pub(super) fn start(config: Config, db: String) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable {
                op: "open",
                db: db.clone(),
                source: format!("cannot start the store's connection runtime: {e}").into(),
            })?;
        let (jobs, incoming) = mpsc::channel::<Job>();
        let shown = db.clone();
        let thread = thread::Builder::new()
            .name("sluice-store-pg".to_owned())
            .spawn(move || {
                let mut worker = Worker {
                    rt,
                    config,
                    db,
                    live: None,
                };
                worker.serve(incoming);
            })
            .map_err(|e| StoreError::Unavailable {
                op: "open",
                db: shown,
                source: format!("cannot start the store's connection thread: {e}").into(),
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `work` on the connection thread with [`CALL_TIMEOUT`] and returns its result.
    pub(super) fn call<T, F>(&self, op: &'static str, db: &str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client, &'c str) -> CallFuture<'c, T> + Send + 'static,
    {
        self.call_within(op, db, CALL_TIMEOUT, work)
    }

    /// [`call`](Self::call) with another time limit (opening, which may wait for another
    /// gateway's migration).
    pub(super) fn call_within<T, F>(
        &self,
        op: &'static str,
        db: &str,
        limit: Duration,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client, &'c str) -> CallFuture<'c, T> + Send + 'static,
    {
        let stopped = || StoreError::Other {
            op,
            db: db.to_owned(),
            source: "the store's connection thread failed while serving this call".into(),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            let _ = reply.send(worker.run(op, limit, work));
        });
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop; it then closes the connection.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The connection thread's state.
struct Worker {
    rt: Runtime,
    config: Config,
    db: String,
    live: Option<Live>,
}

/// An open connection: the client, and the task driving its socket.
struct Live {
    client: Client,
    /// `None` once taken to close the connection politely.
    driver: Option<JoinHandle<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        // A connection dropped as broken is cut at once: its state is unknown, and the
        // server rolls back whatever transaction it was in.
        if let Some(driver) = &self.driver {
            driver.abort();
        }
    }
}

impl Worker {
    fn serve(&mut self, incoming: mpsc::Receiver<Job>) {
        while let Ok(job) = incoming.recv() {
            if panic::catch_unwind(AssertUnwindSafe(|| job(self))).is_err() {
                // The reply sender went with the panic, so the caller has its error.
                self.live = None;
            }
        }
        self.close();
    }

    /// Closes the connection politely: the client's end goes first, so the driver sends
    /// the server a Terminate and finishes.
    fn close(&mut self) {
        if let Some(mut live) = self.live.take() {
            let driver = live.driver.take();
            drop(live);
            if let Some(driver) = driver {
                let _ = self
                    .rt
                    .block_on(async { tokio::time::timeout(CLOSE_TIMEOUT, driver).await });
            }
        }
    }

    fn run<T, F>(&mut self, op: &'static str, limit: Duration, work: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Client, &'c str) -> CallFuture<'c, T>,
    {
        if self.live.as_ref().is_some_and(|l| l.client.is_closed()) {
            self.live = None;
        }
        let unavailable = |db: &str, source: BoxError| StoreError::Unavailable {
            op,
            db: db.to_owned(),
            source,
        };
        let no_answer = || format!("no answer from the server within {}s", limit.as_secs());
        let deadline = tokio::time::Instant::now() + limit;
        if self.live.is_none() {
            let connected = self
                .rt
                .block_on(async { tokio::time::timeout_at(deadline, connect(&self.config)).await });
            match connected {
                Ok(Ok(live)) => self.live = Some(live),
                Ok(Err(e)) => return Err(unavailable(&self.db, Box::new(PgError::from(e)))),
                Err(_) => return Err(unavailable(&self.db, no_answer().into())),
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err(unavailable(&self.db, "not connected".into()));
        };
        let db = self.db.as_str();
        let outcome = self.rt.block_on(async {
            tokio::time::timeout_at(deadline, work(&mut live.client, db)).await
        });
        match outcome {
            Ok(result) => {
                if live.client.is_closed() {
                    self.live = None;
                }
                result
            }
            Err(_) => {
                self.live = None;
                Err(unavailable(
                    &self.db,
                    format!("{}; the connection was dropped", no_answer()).into(),
                ))
            }
        }
    }
}

/// Connects and applies the store's session settings.
async fn connect(config: &Config) -> Result<Live, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        // Its error, if any, reaches the caller as the failed request's error.
        let _ = connection.await;
    });
    let live = Live {
        client,
        driver: Some(driver),
    };
    live.client
        .batch_execute(&format!(
            "SET lock_timeout = '{}ms'",
            LOCK_TIMEOUT.as_millis()
        ))
        .await?;
    Ok(live)
}
