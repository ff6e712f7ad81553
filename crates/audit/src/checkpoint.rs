//! Signed checkpoints: the gateway's Ed25519 signature over the heads of its chains.
//!
//! A hash chain shows any change inside it but not its end being cut off, nor a chain
//! rewritten from some event on (the hashes have no key). A [`Checkpoint`] closes both
//! gaps: the gateway signs, from time to time, the latest [`ChainHead`] of each session
//! that grew, and verification later insists that every signed head is still there with
//! the same hash ([`crate::verify`]).
//!
//! **What is signed.** The bytes [`CHECKPOINT_CONTEXT`] followed by the
//! [canonical JSON](crate::canonical) of the checkpoint without its `signature`: `at`,
//! `heads` (in the order given, each with `at`, `hash`, `seq`, `session_id`) and
//! `key_id`. The context string keeps a checkpoint signature from ever being valid for
//! any other message the same key might sign. Verification uses Ed25519's strict rules
//! (no malleable signatures, no small-order keys).
//!
//! The signing key lives in the gateway's data directory; this crate only converts it to
//! and from bytes or PKCS#8 PEM, and the public key to and from hex or SPKI PEM (what
//! `openssl pkey -pubin` reads), so an auditor can check checkpoints without Sluice.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use zeroize::Zeroizing;

use crate::{canonical, ChainHead, Timestamp};

/// Prefixed to every signed checkpoint (domain separation, and the format's version).
pub const CHECKPOINT_CONTEXT: &[u8] = b"sluice-audit checkpoint v1\n";

/// Hex digits of a key id: 64 bits of the public key's SHA-256, enough to tell the keys of
/// one deployment apart, not a security boundary (the signature is).
const KEY_ID_HEX_DIGITS: usize = 16;

/// The gateway's signature over chain heads at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// When the gateway signed.
    pub at: Timestamp,
    /// [`PublicKey::key_id`] of the signing key, so a reader picks the right key after a
    /// rotation.
    pub key_id: String,
    pub heads: Vec<ChainHead>,
    /// The Ed25519 signature, 128 lowercase hex digits.
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes the signature is over.
    pub fn signed_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Unsigned<'a> {
            at: Timestamp,
            key_id: &'a str,
            heads: &'a [ChainHead],
        }
        let mut bytes = CHECKPOINT_CONTEXT.to_vec();
        canonical::write(
            &Unsigned {
                at: self.at,
                key_id: &self.key_id,
                heads: &self.heads,
            },
            &mut bytes,
        )
        .expect("checkpoints serialize to JSON");
        bytes
    }

    /// Whether `key` made this checkpoint, over exactly these heads.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        if self.key_id != key.key_id() {
            return Err(CheckpointError::OtherKey {
                checkpoint_key_id: self.key_id.clone(),
                key_id: key.key_id(),
            });
        }
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(CheckpointError::MalformedSignature)?;
        key.key
            .verify_strict(&self.signed_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// Why a checkpoint is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("signed by key {checkpoint_key_id}, not by the given key {key_id}")]
    OtherKey {
        checkpoint_key_id: String,
        key_id: String,
    },
    #[error("the signature is not 128 hex digits")]
    MalformedSignature,
    #[error("the signature does not match its heads: forged or altered")]
    BadSignature,
}

/// A key that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a public key is 64 hex digits")]
    Hex,
    #[error("not an Ed25519 public key")]
    InvalidPublicKey,
    #[error("not a PEM-encoded Ed25519 key: {0}")]
    Pem(String),
}

/// The gateway's checkpoint signing key.
pub struct CheckpointSigner {
    key: SigningKey,
    public: PublicKey,
}

impl CheckpointSigner {
    /// A new key from `rand`'s thread-local generator (a CSPRNG seeded by the operating
    /// system).
    pub fn generate() -> Self {
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        Self::from_secret_bytes(&seed)
    }

    /// The key whose 32-byte Ed25519 secret is `secret`.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(secret);
        let public = PublicKey {
            key: key.verifying_key(),
        };
        Self { key, public }
    }

    /// The 32-byte secret, to store; zeroed when dropped.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// Reads a PKCS#8 `PRIVATE KEY` PEM, as [`to_pkcs8_pem`](Self::to_pkcs8_pem) writes it
    /// and `openssl genpkey -algorithm ed25519` makes it.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key =
            SigningKey::from_pkcs8_pem(pem).map_err(|error| KeyError::Pem(error.to_string()))?;
        Ok(Self::from_secret_bytes(&key.to_bytes()))
    }

    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map_err(|error| KeyError::Pem(error.to_string()))
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `heads` as the state of the chains at `at`.
    pub fn sign(&self, at: Timestamp, heads: Vec<ChainHead>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            at,
            key_id: self.public.key_id(),
            heads,
            signature: String::new(),
        };
        let signature = self.key.sign(&checkpoint.signed_bytes());
        checkpoint.signature = hex::encode(signature.to_bytes());
        checkpoint
    }
}

/// Shows which key, never the secret.
impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

/// The public half of a [`CheckpointSigner`]: what `verify` needs, and what is exported.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    /// 64 lowercase hex digits of the raw 32-byte key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.key.as_bytes())
    }

    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KeyError::Hex)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Self { key })
    }

    /// The key as an SPKI `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(Default::default())
            .map_err(|error| KeyError::Pem(error.to_string()))
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|error| KeyError::Pem(error.to_string()))?;
        Ok(Self { key })
    }

    /// A short name for the key: the first 16 hex digits of SHA-256 of its 32 bytes.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.key.as_bytes());
        hex::encode(digest)[..KEY_ID_HEX_DIGITS].to_owned()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_hex()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        "2026-05-01T09:30:00.000000Z".parse().unwrap()
    }

    fn heads() -> Vec<ChainHead> {
        vec![ChainHead {
            session_id: "s1".into(),
            seq: 3,
            at: at(),
            hash: "ab".repeat(32),
        }]
    }

    #[test]
    fn a_signed_checkpoint_verifies() {
        let signer = CheckpointSigner::generate();
        let checkpoint = signer.sign(at(), heads());
        assert_eq!(checkpoint.signature.len(), 128);
        assert_eq!(checkpoint.key_id, signer.public_key().key_id());
        checkpoint.verify(signer.public_key()).unwrap();
    }

    #[test]
    fn an_altered_head_is_refused() {
        let signer = CheckpointSigner::generate();
        let mut checkpoint = signer.sign(at(), heads());
        checkpoint.heads[0].seq = 2;
        assert_eq!(
            checkpoint.verify(signer.public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn another_key_is_refused_even_under_the_right_key_id() {
        let gateway = CheckpointSigner::generate();
        let forger = CheckpointSigner::generate();
        let mut forged = forger.sign(at(), heads());
        assert!(matches!(
            forged.verify(gateway.public_key()),
            Err(CheckpointError::OtherKey { .. })
        ));
        forged.key_id = gateway.public_key().key_id();
        assert_eq!(
            forged.verify(gateway.public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn a_malformed_signature_is_refused() {
        let signer = CheckpointSigner::generate();
        let mut checkpoint = signer.sign(at(), heads());
        checkpoint.signature.pop();
        assert_eq!(
            checkpoint.verify(signer.public_key()),
            Err(CheckpointError::MalformedSignature)
        );
    }

    #[test]
    fn the_signature_covers_the_context_and_the_canonical_json() {
        let signer = CheckpointSigner::from_secret_bytes(&[7; 32]);
        let checkpoint = signer.sign(at(), heads());
        let expected = format!(
            "sluice-audit checkpoint v1\n{{\"at\":\"2026-05-01T09:30:00.000000Z\",\"heads\":[{{\"at\":\"2026-05-01T09:30:00.000000Z\",\"hash\":\"{}\",\"seq\":3,\"session_id\":\"s1\"}}],\"key_id\":\"{}\"}}",
            "ab".repeat(32),
            checkpoint.key_id
        );
        assert_eq!(
            String::from_utf8(checkpoint.signed_bytes()).unwrap(),
            expected
        );
    }

    #[test]
    fn secret_keys_round_trip_through_bytes_and_pem() {
        let signer = CheckpointSigner::generate();
        let from_bytes = CheckpointSigner::from_secret_bytes(&signer.secret_bytes());
        assert_eq!(from_bytes.public_key(), signer.public_key());
        let pem = signer.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let from_pem = CheckpointSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(from_pem.public_key(), signer.public_key());
    }

    #[test]
    fn public_keys_round_trip_through_hex_and_pem() {
        let public = CheckpointSigner::generate().public_key().clone();
        assert_eq!(PublicKey::from_hex(&public.to_hex()).unwrap(), public);
        let pem = public.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
        assert_eq!(PublicKey::from_hex("abcd"), Err(KeyError::Hex));
        assert!(PublicKey::from_pem("not a key").is_err());
    }

    #[test]
    fn reads_keys_openssl_writes() {
        // `openssl genpkey -algorithm ed25519`, and `openssl pkey -pubout` of it.
        let private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEIMbVdbHsNifDrK0jPenpwfeswIZ/zgzifWE6+xyIm3gT\n\
            -----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAm3rGYjNSMbzyp8qWb8rndm6ILMga28LLhnYGHbqBJZU=\n\
            -----END PUBLIC KEY-----\n";
        let signer = CheckpointSigner::from_pkcs8_pem(private).unwrap();
        assert_eq!(
            signer.public_key().to_hex(),
            "9b7ac662335231bcf2a7ca966fcae7766e882cc81adbc2cb8676061dba812595"
        );
        assert_eq!(&PublicKey::from_pem(public).unwrap(), signer.public_key());
        assert_eq!(signer.public_key().to_pem().unwrap(), public);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = CheckpointSigner::from_secret_bytes(&[0x5a; 32]);
        let shown = format!("{signer:?}");
        assert!(!shown.contains("5a5a"), "{shown}");
        assert!(shown.contains(&signer.public_key().key_id()));
    }
}
