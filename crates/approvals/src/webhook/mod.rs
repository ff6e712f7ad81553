//! Webhooks: every request, decision, expiry and withdrawal, told to the configured
//! receivers without ever holding up a statement or a decision.
//!
//! [`Webhooks::announce`] puts an [`Announcement`] on each receiver's bounded queue and
//! returns; each receiver's task turns what its queue holds into deliveries, each a task
//! of its own that retries with exponential backoff. A receiver that is down does not
//! delay the others: its queue and its deliveries in flight are its own, so when it hangs
//! only its own announcements wait. A full queue drops the announcement for that receiver
//! with an error logged: the data path never waits on a webhook. Two payloads: [`slack`]
//! (an incoming-webhook message with approve and deny links to the console) and
//! [`signed_json`] (the announcement itself, signed with HMAC-SHA256 so the receiver knows
//! it came from the gateway).

pub mod signed_json;
pub mod slack;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::view::{ApprovalView, DecisionView};

/// Announcements waiting for one receiver; beyond this they are dropped for it (and
/// logged).
const QUEUE: usize = 1024;
/// Deliveries in flight at once to one receiver.
const IN_FLIGHT: usize = 32;

/// What happened to an approval request, as every receiver is told.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    /// `approval.requested`, `approval.decided`, `approval.expired` or
    /// `approval.withdrawn`.
    pub event: &'static str,
    /// The request as it stands after the event.
    pub approval: ApprovalView,
    /// For `approval.decided`: the decision just recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionView>,
    /// When the gateway announced it (RFC 3339).
    pub at: String,
}

/// Which payload a receiver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    Slack,
    Json,
}

/// One receiver.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub format: WebhookFormat,
    /// The signing key of `json` receivers.
    pub secret: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// How deliveries are retried: `attempts` in all, waiting `first_backoff` after the first
/// failure and twice as long after each next one, at most `max_backoff`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// For each attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// The gateway's webhooks: a handle to the receivers' queues, cheap to clone.
#[derive(Clone, Default)]
pub struct Webhooks {
    receivers: Arc<[Queue]>,
}

/// One receiver's queue.
struct Queue {
    /// Where it is, for the log: the host only (a Slack webhook's path is its secret).
    host: String,
    tx: mpsc::Sender<Arc<Announcement>>,
}

impl Webhooks {
    /// No receivers: announcements go nowhere.
    pub fn none() -> Self {
        Webhooks::default()
    }

    /// Starts a task for each of `targets` (none: same as [`Webhooks::none`]). Must be
    /// called inside a tokio runtime.
    pub fn start(targets: Vec<WebhookTarget>, retry: RetryPolicy) -> Self {
        if targets.is_empty() {
            return Webhooks::none();
        }
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let receivers = targets
            .into_iter()
            .map(|target| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let host = reqwest::Url::parse(&target.url)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_owned))
                    .unwrap_or_default();
                tokio::spawn(serve(rx, target, client.clone(), retry));
                Queue { host, tx }
            })
            .collect();
        Webhooks { receivers }
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// Queues `announcement` for every receiver; never waits.
    pub fn announce(&self, announcement: Announcement) {
        if self.receivers.is_empty() {
            return;
        }
        let announcement = Arc::new(announcement);
        for receiver in self.receivers.iter() {
            if receiver.tx.try_send(announcement.clone()).is_err() {
                tracing::error!(event = announcement.event, approval = %announcement.approval.id,
                    receiver = %receiver.host, "webhook announcement dropped: the receiver's queue is full or stopped");
            }
        }
    }
}

/// Delivers what one receiver's queue holds, at most [`IN_FLIGHT`] at once. Waiting for a
/// delivery to end holds up only this receiver's queue.
async fn serve(
    mut rx: mpsc::Receiver<Arc<Announcement>>,
    target: WebhookTarget,
    client: reqwest::Client,
    retry: RetryPolicy,
) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(announcement) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Built once a delivery may start, so its timestamp is when it was first sent.
        let request = match target.format {
            WebhookFormat::Slack => slack::payload(&announcement),
            WebhookFormat::Json => {
                signed_json::payload(&announcement, target.secret.as_deref().unwrap_or(&[]))
            }
        };
        let (client, url) = (client.clone(), target.url.clone());
        tokio::spawn(async move {
            deliver(&client, &url, request, retry).await;
            drop(permit);
        });
    }
}

/// What one receiver is sent: a JSON body and its headers, the same on every attempt,
/// and, for signed receivers, the key each attempt is signed with as it is sent.
#[derive(Clone)]
pub struct Outgoing {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    pub signing: Option<Arc<[u8]>>,
    /// For the log.
    pub event: &'static str,
    pub approval: String,
}

async fn deliver(client: &reqwest::Client, url: &str, out: Outgoing, retry: RetryPolicy) {
    // A webhook's URL can be its secret (Slack's are): logs name the host only.
    let receiver = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    for attempt in 1..=retry.attempts.max(1) {
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(out.body.clone());
        for (name, value) in &out.headers {
            request = request.header(*name, value);
        }
        if let Some(secret) = &out.signing {
            for (name, value) in signed_json::sign_now(secret, &out.body) {
                request = request.header(name, value);
            }
        }
        let failure = match request.send().await {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(%receiver, event = out.event, approval = %out.approval, attempt, "webhook delivered");
                return;
            }
            Ok(response) => {
                let status = response.status();
                // A receiver that says the request itself is wrong will not change its
                // mind; a timeout, a rate limit or a server error may pass.
                if status.is_client_error()
                    && status != reqwest::StatusCode::REQUEST_TIMEOUT
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    tracing::error!(%receiver, event = out.event, approval = %out.approval, %status, "webhook refused by its receiver; not retried");
                    return;
                }
                format!("status {status}")
            }
            Err(e) => e.without_url().to_string(),
        };
        if attempt == retry.attempts.max(1) {
            tracing::error!(%receiver, event = out.event, approval = %out.approval, attempts = attempt, error = %failure, "webhook not delivered; giving up");
            return;
        }
        let wait = retry.backoff(attempt);
        tracing::warn!(%receiver, event = out.event, approval = %out.approval, attempt, error = %failure, retry_in = ?wait, "webhook delivery failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::RetryPolicy;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let retry = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        };
        let waits: Vec<_> = (1..=5).map(|n| retry.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }
}
