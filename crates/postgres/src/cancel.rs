//! CancelRequest routing.
//!
//! Each client session gets its own random cancel key from the gateway; the registry maps
//! it to the resource's key for that session's upstream backend. A cancel request is
//! forwarded only when its (pid, secret) pair matches a live session exactly, so one
//! client cannot cancel another's queries, and the resource's own keys never leave the
//! gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocol::startup::CANCEL_REQUEST;

/// Where a cancel for one session goes.
#[derive(Debug, Clone, Copy)]
pub struct CancelTarget {
    pub upstream: SocketAddr,
    pub pid: i32,
    pub secret: i32,
}

/// A registered session: where its cancels go upstream, and how its relay hears of them
/// (a statement held for approval is not upstream yet; the relay withdraws it).
struct Registered {
    target: CancelTarget,
    requests: tokio::sync::watch::Sender<u64>,
}

#[derive(Default, Clone)]
pub struct CancelRegistry {
    sessions: Arc<Mutex<HashMap<(i32, i32), Registered>>>,
}

impl CancelRegistry {
    /// Registers a session and returns the key its client gets.
    pub fn register(&self, target: CancelTarget) -> CancelKey {
        let mut rng = rand::rng();
        let mut sessions = self.sessions.lock();
        loop {
            let key = (rng.random_range(1..i32::MAX), rng.random::<i32>());
            if let std::collections::hash_map::Entry::Vacant(slot) = sessions.entry(key) {
                let (requests, heard) = tokio::sync::watch::channel(0);
                slot.insert(Registered { target, requests });
                return CancelKey {
                    pid: key.0,
                    secret: key.1,
                    requests: heard,
                    registry: self.clone(),
                };
            }
        }
    }

    /// Forwards a client's cancel request, if it names a live session, and tells that
    /// session's relay.
    pub async fn cancel(&self, pid: i32, secret: i32) -> bool {
        let target = {
            let sessions = self.sessions.lock();
            let Some(registered) = sessions.get(&(pid, secret)) else {
                return false;
            };
            registered.requests.send_modify(|n| *n += 1);
            registered.target
        };
        send_cancel(target).await.is_ok()
    }
}

/// Sends a CancelRequest for `target` to the resource.
pub async fn send_cancel(target: CancelTarget) -> std::io::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(target.upstream).await?;
    let mut packet = [0u8; 16];
    packet[..4].copy_from_slice(&16i32.to_be_bytes());
    packet[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    packet[8..12].copy_from_slice(&target.pid.to_be_bytes());
    packet[12..].copy_from_slice(&target.secret.to_be_bytes());
    stream.write_all(&packet).await?;
    stream.shutdown().await?;
    // The postmaster closes the connection once it has signalled the backend: waiting for
    // that tells the caller the cancel has been delivered.
    let mut byte = [0u8; 1];
    let _ = stream.read(&mut byte).await;
    Ok(())
}

/// A session's registered key; unregistered when dropped.
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
    /// Counts the cancel requests made with this key.
    pub requests: tokio::sync::watch::Receiver<u64>,
    registry: CancelRegistry,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry
            .sessions
            .lock()
            .remove(&(self.pid, self.secret));
    }
}
