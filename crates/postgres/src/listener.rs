//! Accepting PostgreSQL connections: one task per client, stopped by the shutdown signal.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::PgGateway;

/// Serves clients from `listener` until `shutdown` completes; then stops accepting and
/// gives running sessions `grace` to finish before they are closed.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<PgGateway>,
    shutdown: impl Future<Output = ()>,
    grace: std::time::Duration,
) {
    let mut sessions = JoinSet::new();
    // Flipped when the grace period is over: sessions still open end with a FATAL.
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let gateway = gateway.clone();
                    let closing = closing_rx.clone();
                    sessions.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        crate::login::handle_client(stream, peer, gateway, closing).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        sessions = sessions.len(),
        "postgres listener stopped accepting; waiting for sessions"
    );
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            sessions = sessions.len(),
            "grace period over; closing remaining sessions"
        );
        let _ = closing_tx.send(true);
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            sessions.shutdown().await;
        }
    }
}
