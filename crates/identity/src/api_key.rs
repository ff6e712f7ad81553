//! API keys, for agents that have no OIDC provider (DESIGN.md §1, `sluice keys`).
//!
//! Format: `sk_sluice_<id>_<secret>`. The id is 16 random lowercase letters and digits
//! (12 or more are accepted), safe to log and to show in `sluice keys list`. The secret is
//! 32 random bytes, base64url without padding (43 characters). Only SHA-256 of the secret
//! (of its 43-character text, hex-encoded) is stored: the key is shown once, when created.
//!
//! Checking a key looks its id up through [`ApiKeyDirectory`] on every call, with no
//! caching, so a revoked key stops working at once; hashes are compared in constant time;
//! a directory error refuses the key (fail closed). The secret is checked before the
//! revocation state, so only the key's holder learns that it was revoked.
//!
//! At most [`MAX_CONCURRENT_LOOKUPS`] lookups run at once per [`crate::Authenticator`].
//! Each holds a blocking thread for as long as the store takes, and anyone who can connect
//! can present well-formed made-up keys, so without a cap a slow store would let them
//! exhaust the blocking pool the rest of the gateway needs. A key presented while the cap
//! is reached is refused at once as a store failure ([`AuthError::ApiKeyStore`],
//! transient) rather than queued. Store errors are logged (`tracing::warn!`) with their
//! detail; the agent only hears that the store is unavailable.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use sluice_core::{Principal, PrincipalKind};

use crate::error::AuthError;

/// Every API key starts with this; [`crate::Authenticator`] tells keys from tokens by it.
pub const API_KEY_PREFIX: &str = "sk_sluice_";
/// The provider name of principals authenticated by API key.
pub const API_KEY_PROVIDER: &str = "apikey";

const ID_LEN: usize = 16;
const MIN_ID_LEN: usize = 12;
const MAX_ID_LEN: usize = 64;
const SECRET_BYTES: usize = 32;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Most API key lookups in flight at once, per authenticator.
pub const MAX_CONCURRENT_LOOKUPS: usize = 64;

/// A freshly generated key: the plaintext to show once, and the record to store.
#[derive(Clone)]
pub struct NewApiKey {
    /// `sk_sluice_<id>_<secret>`; show it once, never store it.
    pub plaintext: String,
    pub record: ApiKeyRecord,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("plaintext", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

pub use sluice_core::ApiKeyRecord;

/// Where API key records are looked up (the store implements it).
///
/// `find` is called on a blocking-capable thread (`spawn_blocking`), so an implementation
/// may do synchronous I/O. `Ok(None)` means no such key; `Err` means the lookup itself
/// failed, and the key is refused.
pub trait ApiKeyDirectory: Send + Sync {
    fn find(&self, id: &str) -> Result<Option<ApiKeyRecord>, String>;
}

/// Creates a key for `subject` with the given roles and groups; `now` becomes `created_at`.
pub fn generate_api_key(
    name: &str,
    subject: &str,
    roles: Vec<String>,
    groups: Vec<String>,
    now: i64,
) -> NewApiKey {
    let mut rng = rand::rng();
    let id: String = (0..ID_LEN)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect();
    let mut secret_bytes = [0u8; SECRET_BYTES];
    rng.fill(&mut secret_bytes);
    let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
    NewApiKey {
        plaintext: format!("{API_KEY_PREFIX}{id}_{secret}"),
        record: ApiKeyRecord {
            id,
            name: name.to_string(),
            secret_sha256: secret_hash(&secret),
            subject: subject.to_string(),
            roles,
            groups,
            created_at: now,
            revoked_at: None,
        },
    }
}

/// Splits a key into its id and secret, checking the format.
pub fn parse_api_key(key: &str) -> Result<(&str, &str), AuthError> {
    let rest = key.strip_prefix(API_KEY_PREFIX).ok_or_else(|| {
        AuthError::ApiKeyMalformed(format!("it does not start with {API_KEY_PREFIX}"))
    })?;
    // The id has no underscore; the secret (base64url) may contain one.
    let (id, secret) = rest
        .split_once('_')
        .ok_or_else(|| AuthError::ApiKeyMalformed("it has no secret part".into()))?;
    if id.len() < MIN_ID_LEN
        || id.len() > MAX_ID_LEN
        || !id.bytes().all(|b| ID_ALPHABET.contains(&b))
    {
        return Err(AuthError::ApiKeyMalformed(format!(
            "the id must be {MIN_ID_LEN} to {MAX_ID_LEN} lowercase letters and digits"
        )));
    }
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|b| b.len() == SECRET_BYTES);
    if !secret_ok {
        return Err(AuthError::ApiKeyMalformed(format!(
            "the secret must be {SECRET_BYTES} bytes in base64url ({} characters)",
            SECRET_BYTES.div_ceil(3) * 4 - 1
        )));
    }
    Ok((id, secret))
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Timing does not reveal how many leading bytes matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A store failure: logged with its detail, refused with it kept out of the message.
fn store_error(detail: String) -> AuthError {
    tracing::warn!(detail = %detail, "API key lookup failed; refusing the key");
    AuthError::ApiKeyStore(detail)
}

/// Checks a key against the directory and returns its principal. `lookups` holds the
/// permits for lookups in flight ([`MAX_CONCURRENT_LOOKUPS`]).
pub(crate) async fn authenticate(
    directory: &Arc<dyn ApiKeyDirectory>,
    lookups: &Arc<tokio::sync::Semaphore>,
    key: &str,
) -> Result<Principal, AuthError> {
    let (id, secret) = parse_api_key(key)?;
    let id = id.to_string();
    let presented = Sha256::digest(secret.as_bytes());

    let Ok(permit) = Arc::clone(lookups).try_acquire_owned() else {
        return Err(store_error(format!(
            "{MAX_CONCURRENT_LOOKUPS} lookups are already in flight"
        )));
    };
    let lookup = {
        let directory = Arc::clone(directory);
        let id = id.clone();
        // The permit goes with the blocking call, so it is held until the store answers
        // even if this request is abandoned meanwhile.
        tokio::task::spawn_blocking(move || {
            let found = directory.find(&id);
            drop(permit);
            found
        })
    };
    let record = match lookup.await {
        Ok(Ok(Some(record))) => record,
        Ok(Ok(None)) => return Err(AuthError::ApiKeyUnknown(id)),
        Ok(Err(e)) => return Err(store_error(e)),
        Err(e) => return Err(store_error(format!("lookup task failed: {e}"))),
    };
    if record.id != id {
        return Err(store_error(format!(
            "lookup of key `{id}` returned key `{}`",
            record.id
        )));
    }
    let stored = hex::decode(&record.secret_sha256)
        .map_err(|_| store_error(format!("the stored hash of key `{id}` is not hex")))?;
    if !constant_time_eq(&stored, presented.as_slice()) {
        return Err(AuthError::ApiKeyWrongSecret(id));
    }
    if record.revoked_at.is_some() {
        return Err(AuthError::ApiKeyRevoked(id));
    }
    Ok(Principal {
        provider: API_KEY_PROVIDER.to_string(),
        display_name: record.subject.clone(),
        subject: record.subject,
        tenant_id: None,
        kind: PrincipalKind::App,
        roles: record.roles,
        groups: record.groups,
        token_id: Some(record.id),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash() {
        let k = generate_api_key("ci", "agent-ci", vec!["R".into()], vec![], 7);
        assert!(k.plaintext.starts_with("sk_sluice_"));
        let (id, secret) = parse_api_key(&k.plaintext).unwrap();
        assert_eq!(id, k.record.id);
        assert_eq!(id.len(), 16);
        assert_eq!(secret.len(), 43);
        assert_eq!(k.record.secret_sha256, secret_hash(secret));
        assert_eq!(k.record.secret_sha256.len(), 64);
        assert_eq!(k.record.created_at, 7);
        assert!(!format!("{k:?}").contains(secret));
        let other = generate_api_key("ci", "agent-ci", vec![], vec![], 7);
        assert_ne!(other.record.id, k.record.id);
    }

    #[test]
    fn malformed_keys() {
        let good_secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for bad in [
            "sk_sluice_".to_string(),
            "sk_sluice_abcdefghijkl".to_string(),
            format!("sk_sluice_short_{good_secret}"),
            format!("sk_sluice_ABCDEFGHIJKLM_{good_secret}"),
            "sk_sluice_abcdefghijklmn_tooshort".to_string(),
            format!("sk_sluice_abcdefghijklmn_{good_secret}x"),
            format!("sk_sluice_abcdefghijklmn_{}", &good_secret[..42]),
            format!("pk_sluice_abcdefghijklmn_{good_secret}"),
        ] {
            assert_eq!(
                parse_api_key(&bad).unwrap_err().code(),
                "apikey_malformed",
                "{bad}"
            );
        }
        assert!(parse_api_key(&format!("sk_sluice_abcdefghijklmn_{good_secret}")).is_ok());
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
