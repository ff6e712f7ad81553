//! The generic webhook: the [`Announcement`] as JSON, signed.
//!
//! Headers: `X-Sluice-Event` (the event), `X-Sluice-Delivery` (unique per announcement and
//! receiver, the same on every retry, for deduplication), `X-Sluice-Timestamp` (Unix
//! seconds) and `X-Sluice-Signature: v1=<hex>`, the HMAC-SHA256 under the receiver's
//! secret of `<timestamp>.<body>`. A receiver recomputes it over the raw body, compares in
//! constant time, and refuses old timestamps to stop replays.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use super::{Announcement, Outgoing};

/// The signature header's value for `body` sent at `timestamp` under `secret`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn payload(announcement: &Announcement, secret: &[u8]) -> Outgoing {
    let body = serde_json::to_vec(announcement).expect("an announcement serializes");
    let delivery = format!("{:032x}", rand::rng().random::<u128>());
    Outgoing {
        headers: vec![
            ("x-sluice-event", announcement.event.to_string()),
            ("x-sluice-delivery", delivery),
        ],
        body,
        signing: Some(secret.into()),
        event: announcement.event,
        approval: announcement.approval.id.clone(),
    }
}

/// The timestamp and signature headers for sending `body` now: each attempt is signed
/// when it is sent, so a retry's timestamp is fresh.
pub fn sign_now(secret: &[u8], body: &[u8]) -> [(&'static str, String); 2] {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    [
        ("x-sluice-signature", signature(secret, &timestamp, body)),
        ("x-sluice-timestamp", timestamp),
    ]
}
