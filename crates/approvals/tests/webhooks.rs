//! The broker's webhooks, delivered over HTTP to a real local receiver: the signed JSON
//! receiver hears every request, decision, expiry and withdrawal in turn, each signed as
//! documented (HMAC-SHA256 of `<timestamp>.<body>`) under its own delivery id, and the
//! Slack receiver gets a message with approve and deny links while the request is
//! pending, none once it is not. Server errors are retried with the same delivery id,
//! client errors are not, and a receiver that never answers holds up neither the broker
//! nor the other receivers.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use sluice_approvals::webhook::RetryPolicy;
use sluice_approvals::{Broker, WebhookFormat, WebhookTarget, Webhooks};
use sluice_core::{ApprovalMode, ApprovalStatus, Verdict};
use support::{alice, new_approval, settings, TestStore, CONSOLE, STATEMENT};

const SECRET: &[u8] = b"whsec-test-0123456789";
const LONG: Duration = Duration::from_secs(600);
/// How long a test waits for what should happen at once.
const PROMPTLY: Duration = Duration::from_secs(10);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header on {}", self.path))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A local HTTP receiver that records every request and answers by path: `/json` and
/// `/slack` 200, `/flaky` 500 twice then 200, `/bad` 400, `/hang` only after 30 s.
#[derive(Clone, Default)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    flaky_hits: Arc<AtomicU32>,
    hang_answered: Arc<AtomicU32>,
    base: String,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_string();
    receiver.log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
        at: Instant::now(),
    });
    match path.as_str() {
        "/flaky" if receiver.flaky_hits.fetch_add(1, Ordering::SeqCst) < 2 => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        "/bad" => StatusCode::BAD_REQUEST,
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            receiver.hang_answered.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
        _ => StatusCode::OK,
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn json_target(&self, path: &str) -> WebhookTarget {
        WebhookTarget {
            url: self.url(path),
            format: WebhookFormat::Json,
            secret: Some(Arc::from(SECRET)),
        }
    }

    fn slack_target(&self, path: &str) -> WebhookTarget {
        WebhookTarget {
            url: self.url(path),
            format: WebhookFormat::Slack,
            secret: None,
        }
    }

    /// What `path` got so far, in order of arrival.
    fn at(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// What `path` got, once it got at least `n` (panics after [`PROMPTLY`]).
    async fn until(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + PROMPTLY;
        loop {
            let got = self.at(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} requests in {PROMPTLY:?}, expected {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
    }
}

/// Whether `signature` (`v1=<hex>`) is the HMAC-SHA256 of `<timestamp>.<body>` under
/// `secret`, checked as a receiver would.
fn verifies(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_mac) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn assert_signed(r: &Received) {
    let (timestamp, signature) = (
        r.header("x-sluice-timestamp"),
        r.header("x-sluice-signature"),
    );
    assert!(
        verifies(SECRET, timestamp, &r.body, signature),
        "signature {signature} does not verify"
    );
    assert!(
        !verifies(b"another secret", timestamp, &r.body, signature),
        "a wrong secret verifies"
    );
    let mut tampered = r.body.to_vec();
    tampered.push(b' ');
    assert!(!verifies(SECRET, timestamp, &tampered, signature));
    let later = (timestamp.parse::<u64>().unwrap() + 1).to_string();
    assert!(!verifies(SECRET, &later, &r.body, signature));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sent: u64 = timestamp.parse().unwrap();
    assert!(
        sent.abs_diff(now) < 300,
        "timestamp {sent} is far from now ({now})"
    );
}

/// The approve and deny links of a Slack message, empty when it has none.
fn slack_buttons(body: &Value) -> Vec<(String, String)> {
    body["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| {
            (
                e["text"]["text"].as_str().unwrap().to_string(),
                e["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn receivers_hear_requests_decisions_expiries_and_withdrawals() {
    let receiver = Receiver::start().await;
    let webhooks = Webhooks::start(
        vec![
            receiver.json_target("/json"),
            receiver.slack_target("/slack"),
        ],
        retry(),
    );
    assert!(!webhooks.is_empty());
    let store = TestStore::new();
    let broker = Broker::new(store.store.clone(), settings(), webhooks);

    // Each step waits for its announcements: deliveries to one receiver run side by side,
    // so only announcements some time apart arrive in the order they were made.
    let decided = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    receiver.until("/json", 1).await;
    receiver.until("/slack", 1).await;
    broker
        .decide(&alice(), &decided.id, Verdict::Approve, "ticket OPS-12")
        .await
        .unwrap();
    receiver.until("/json", 2).await;
    receiver.until("/slack", 2).await;
    let expired = broker
        .request(new_approval(ApprovalMode::Hold, Duration::from_millis(300)))
        .await
        .unwrap();
    receiver.until("/json", 3).await;
    receiver.until("/slack", 3).await;
    let record = broker.wait(&expired.id).await.unwrap();
    assert_eq!(record.status, ApprovalStatus::Expired);
    receiver.until("/json", 4).await;
    receiver.until("/slack", 4).await;
    let withdrawn = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();
    receiver.until("/json", 5).await;
    receiver.until("/slack", 5).await;
    broker.withdraw(&withdrawn.id).await.unwrap();
    let json = receiver.until("/json", 6).await;
    let slack = receiver.until("/slack", 6).await;

    // Nothing more, nothing twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.at("/json").len(), 6);
    assert_eq!(receiver.at("/slack").len(), 6);

    let expected = [
        ("approval.requested", &decided.id, "pending"),
        ("approval.decided", &decided.id, "approved"),
        ("approval.requested", &expired.id, "pending"),
        ("approval.expired", &expired.id, "expired"),
        ("approval.requested", &withdrawn.id, "pending"),
        ("approval.withdrawn", &withdrawn.id, "withdrawn"),
    ];

    // The signed JSON receiver.
    let mut deliveries = HashSet::new();
    for (r, (event, id, status)) in json.iter().zip(expected) {
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.header("x-sluice-event"), event);
        assert_signed(r);
        let delivery = r.header("x-sluice-delivery");
        assert_eq!(delivery.len(), 32, "{delivery}");
        assert!(
            deliveries.insert(delivery.to_string()),
            "delivery id {delivery} used twice"
        );
        let body = r.json();
        assert_eq!(body["event"], event);
        assert_eq!(body["approval"]["id"], id.as_str());
        assert_eq!(body["approval"]["status"], status, "{event}");
        assert_eq!(body["approval"]["statement"], STATEMENT);
        assert_eq!(body["approval"]["parameters"], serde_json::json!(["42"]));
        assert_eq!(body["approval"]["connection"], "orders");
        assert_eq!(body["approval"]["mode"], "hold");
        assert_eq!(
            body["approval"]["console_url"],
            format!("{CONSOLE}/approvals/{id}")
        );
        assert!(body["at"].is_string());
        if event == "approval.decided" {
            let decision = &body["decision"];
            assert_eq!(decision["verdict"], "approve");
            assert_eq!(decision["reason"], "ticket OPS-12");
            assert_eq!(decision["approver"]["subject"], alice().subject);
            assert_eq!(body["approval"]["approvals"], 1);
        } else {
            assert!(body.get("decision").is_none(), "{event}: {body}");
        }
    }

    // The Slack receiver.
    for (r, (event, id, status)) in slack.iter().zip(expected) {
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.headers.get("x-sluice-signature").is_none());
        let body = r.json();
        let text = body["text"].as_str().expect("text");
        assert!(text.contains(id.as_str()), "{event}: {text}");
        // The statement in a plain-text block, which Slack shows as written.
        let statement = &body["blocks"][1]["text"];
        assert_eq!(statement["type"], "plain_text");
        assert!(
            statement["text"].as_str().unwrap().contains(STATEMENT),
            "{statement}"
        );
        let buttons = slack_buttons(&body);
        if status == "pending" {
            let link = format!("{CONSOLE}/approvals/{id}");
            assert_eq!(
                buttons,
                [
                    ("Approve".to_string(), format!("{link}?decide=approve")),
                    ("Deny".to_string(), format!("{link}?decide=deny")),
                ],
                "{event}"
            );
        } else {
            assert!(buttons.is_empty(), "{event} still offers {buttons:?}");
        }
    }
    let decided_text = slack[1].json()["text"].as_str().unwrap().to_string();
    assert!(
        decided_text.contains("approved by") && decided_text.contains("ticket OPS-12"),
        "{decided_text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_with_the_same_delivery_and_client_errors_are_not() {
    let receiver = Receiver::start().await;
    let webhooks = Webhooks::start(
        vec![receiver.json_target("/flaky"), receiver.json_target("/bad")],
        retry(),
    );
    let store = TestStore::new();
    let broker = Broker::new(store.store.clone(), settings(), webhooks);
    let request = broker
        .request(new_approval(ApprovalMode::Hold, LONG))
        .await
        .unwrap();

    let flaky = receiver.until("/flaky", 3).await;
    receiver.until("/bad", 1).await;
    // Well past any further backoff (50, 100, 200 ms).
    tokio::time::sleep(Duration::from_millis(800)).await;
    let flaky_now = receiver.at("/flaky");
    assert_eq!(flaky_now.len(), 3, "delivered once it was answered 200");
    assert_eq!(receiver.at("/bad").len(), 1, "a 400 was retried");

    let first = &flaky[0];
    assert_eq!(first.json()["approval"]["id"], request.id);
    for again in &flaky[1..] {
        // The same delivery, signed again when it is sent (a receiver refusing stale
        // timestamps must not refuse a retry).
        assert_eq!(
            again.header("x-sluice-delivery"),
            first.header("x-sluice-delivery")
        );
        assert_eq!(again.body, first.body);
        assert_signed(again);
    }
    // Backing off: at least 50 ms, then at least 100 ms.
    let gaps = [
        flaky[1].at.duration_since(flaky[0].at),
        flaky[2].at.duration_since(flaky[1].at),
    ];
    assert!(gaps[0] >= Duration::from_millis(45), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(95), "{gaps:?}");
    assert_ne!(
        receiver.at("/bad")[0].header("x-sluice-delivery"),
        first.header("x-sluice-delivery"),
        "each receiver has its own delivery id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_never_answers_does_not_hold_up_the_broker() {
    let receiver = Receiver::start().await;
    let mut retry = retry();
    retry.timeout = Duration::from_secs(60);
    let webhooks = Webhooks::start(vec![receiver.json_target("/hang")], retry);
    let store = TestStore::new();
    let broker = Broker::new(store.store.clone(), settings(), webhooks);

    let generous = Duration::from_secs(5);
    let request = tokio::time::timeout(
        generous,
        broker.request(new_approval(ApprovalMode::Hold, LONG)),
    )
    .await
    .expect("request waited on the webhook")
    .unwrap();
    // The receiver has it, and holds on to it.
    receiver.until("/hang", 1).await;
    // Deciding, and asking again, while the receiver holds the connection.
    let decided = tokio::time::timeout(
        generous,
        broker.decide(&alice(), &request.id, Verdict::Approve, "fine"),
    )
    .await
    .expect("decide waited on the webhook")
    .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    tokio::time::timeout(
        generous,
        broker.request(new_approval(ApprovalMode::Hold, LONG)),
    )
    .await
    .expect("a second request waited on the webhook")
    .unwrap();
    receiver.until("/hang", 3).await;
    assert_eq!(
        receiver.hang_answered.load(Ordering::SeqCst),
        0,
        "the receiver answered; this test shows nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
    let receiver = Receiver::start().await;
    let mut retry = retry();
    retry.timeout = Duration::from_secs(60);
    let webhooks = Webhooks::start(
        vec![receiver.json_target("/hang"), receiver.json_target("/json")],
        retry,
    );
    let store = TestStore::new();
    // More announcements than deliveries may be in flight at once, all from one agent.
    const REQUESTS: usize = 80;
    let mut settings = settings();
    settings.pending_per_principal = REQUESTS;
    let broker = Broker::new(store.store.clone(), settings, webhooks);

    for _ in 0..REQUESTS {
        broker
            .request(new_approval(ApprovalMode::Hold, LONG))
            .await
            .unwrap();
    }
    let json = receiver.until("/json", REQUESTS).await;
    let ids: HashSet<_> = json
        .iter()
        .map(|r| r.json()["approval"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), REQUESTS);
    assert_eq!(receiver.hang_answered.load(Ordering::SeqCst), 0);
}
