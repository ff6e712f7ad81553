//! The gateway's SCRAM-SHA-256 client (RFC 5802, RFC 7677) for logging in to the resource,
//! with the salted password cached.
//!
//! Every client session opens its own upstream session, so the gateway logs in to the
//! resource as often as agents connect. SCRAM's cost is the key derivation: PBKDF2 with the
//! server's iteration count (4,096 by default), about a millisecond and a half of CPU per
//! login, and the same result every time for the same password, salt and count. The
//! resource keeps one salt per role, so the derived key is cached per (password, salt,
//! iterations) and each later login costs a few HMACs. The nonce is fresh every time, so
//! nothing of the exchange itself is reused; the cached key is what the configured password
//! already allows (it lets one log in to that resource, and nothing else).
//!
//! Channel binding is not offered (`n,,`), as with libpq's default `channel_binding=prefer`
//! over a connection without TLS; over TLS the certificate is verified instead.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::LazyLock;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;

/// The SASL mechanism name.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// Derivations cached at most; on overflow the cache starts afresh (a gateway has a handful
/// of connections, each one role).
const MAX_CACHED_KEYS: usize = 256;

/// Iteration counts above this are refused: a resource (or something impersonating it
/// before TLS verification) must not make the gateway spin.
const MAX_ITERATIONS: u32 = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM server message: {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend the client's")]
    NonceMismatch,
    #[error("SCRAM iteration count {0} is out of range")]
    Iterations(u64),
    #[error("the server reported a SCRAM error: {0}")]
    Server(String),
    #[error("the server's signature is wrong: it does not know the password")]
    BadServerSignature,
}

#[derive(Hash, PartialEq, Eq)]
struct DerivationKey {
    /// SHA-256 of the prepared password, so the cache holds no password.
    password: [u8; 32],
    salt: Vec<u8>,
    iterations: u32,
}

static SALTED_PASSWORDS: LazyLock<Mutex<HashMap<DerivationKey, [u8; 32]>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Hi(password, salt, i) of RFC 5802: PBKDF2-HMAC-SHA-256, from the cache when it was
/// derived before.
fn salted_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; 32] {
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(digest::digest(&digest::SHA256, password).as_ref());
    let key = DerivationKey {
        password: fingerprint,
        salt: salt.to_vec(),
        iterations: iterations.get(),
    };
    if let Some(hit) = SALTED_PASSWORDS.lock().get(&key) {
        return *hit;
    }
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut salted,
    );
    let mut cache = SALTED_PASSWORDS.lock();
    if cache.len() >= MAX_CACHED_KEYS {
        cache.clear();
    }
    cache.insert(key, salted);
    salted
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.sign().as_ref());
    out
}

/// SASLprep of the password as PostgreSQL applies it: a password that is not valid
/// UTF-8 or fails the profile is used as raw bytes.
fn prepare_password(password: &[u8]) -> Vec<u8> {
    std::str::from_utf8(password)
        .ok()
        .and_then(|text| stringprep::saslprep(text).ok())
        .map(|prepared| prepared.as_bytes().to_vec())
        .unwrap_or_else(|| password.to_vec())
}

/// One SCRAM-SHA-256 exchange, client side.
pub struct ScramClient {
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

enum State {
    Initial,
    /// The client-final message was sent; the server must prove it with this signature.
    AwaitingServerFinal {
        server_signature: [u8; 32],
    },
    Done,
}

impl ScramClient {
    /// A new exchange with a fresh 18-byte random nonce. PostgreSQL ignores the SCRAM user
    /// name (the startup packet's `user` counts), so it is left empty as libpq does.
    pub fn new(password: &[u8]) -> Self {
        let mut nonce = [0u8; 18];
        rand::rng().fill_bytes(&mut nonce);
        Self::with_nonce(password, "", &BASE64.encode(nonce))
    }

    fn with_nonce(password: &[u8], user: &str, nonce: &str) -> Self {
        ScramClient {
            password: prepare_password(password),
            client_nonce: nonce.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            state: State::Initial,
        }
    }

    /// The client-first message, for SASLInitialResponse.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Takes the server-first message (AuthenticationSASLContinue) and returns the
    /// client-final message (SASLResponse).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(ScramError::Malformed("server-first message out of order"));
        }
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut parts = server_first.split(',');
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        let salt = parts
            .next()
            .and_then(|p| p.strip_prefix("s="))
            .ok_or(ScramError::Malformed("no salt"))?;
        let iterations = parts
            .next()
            .and_then(|p| p.strip_prefix("i="))
            .ok_or(ScramError::Malformed("no iteration count"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = BASE64
            .decode(salt)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u64 = iterations
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count is not a number"))?;
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| *i <= MAX_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or(ScramError::Iterations(iterations))?;

        let salted = salted_password(&self.password, &salt, iterations);

        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        // "biws" is base64("n,,"): no channel binding.
        let final_without_proof = format!("c=biws,r={nonce}");
        let auth_message: [&[u8]; 5] = [
            self.client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            final_without_proof.as_bytes(),
        ];
        let client_signature = hmac_sha256(stored_key.as_ref(), &auth_message);
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = hmac_sha256(&salted, &[b"Server Key"]);
        self.state = State::AwaitingServerFinal {
            server_signature: hmac_sha256(&server_key, &auth_message),
        };
        Ok(format!("{final_without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (AuthenticationSASLFinal): the resource proves it
    /// knows the password too.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let State::AwaitingServerFinal { server_signature } = self.state else {
            return Err(ScramError::Malformed("server-final message out of order"));
        };
        let server_final =
            std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(ScramError::Server(error.to_string()));
        }
        let verifier = server_final
            .split(',')
            .next()
            .and_then(|p| p.strip_prefix("v="))
            .ok_or(ScramError::Malformed("no verifier"))?;
        let verifier = BASE64
            .decode(verifier)
            .map_err(|_| ScramError::Malformed("verifier is not base64"))?;
        constant_time::verify_slices_are_equal(&verifier, &server_signature)
            .map_err(|_| ScramError::BadServerSignature)?;
        self.state = State::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    #[test]
    fn rfc7677_example_exchange() {
        let mut client = ScramClient::with_nonce(b"pencil", "user", CLIENT_NONCE);
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), CLIENT_FINAL);
        client.verify_server_final(SERVER_FINAL.as_bytes()).unwrap();
    }

    #[test]
    fn a_derived_key_is_served_from_the_cache() {
        let iterations = NonZeroU32::new(4096).unwrap();
        let fresh = salted_password(b"reused password", b"salty", iterations);
        assert_eq!(
            fresh,
            salted_password(b"reused password", b"salty", iterations)
        );
        assert_ne!(
            fresh,
            salted_password(b"another password", b"salty", iterations)
        );
        assert_ne!(
            fresh,
            salted_password(b"reused password", b"salted", iterations)
        );
        // A planted entry is what a later login gets: the derivation is not run again.
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest::digest(&digest::SHA256, b"planted").as_ref());
        SALTED_PASSWORDS.lock().insert(
            DerivationKey {
                password: fingerprint,
                salt: b"salty".to_vec(),
                iterations: 4096,
            },
            [7; 32],
        );
        assert_eq!(salted_password(b"planted", b"salty", iterations), [7; 32]);
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut client = ScramClient::with_nonce(b"not pencil", "user", CLIENT_NONCE);
        client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            client.verify_server_final(SERVER_FINAL.as_bytes()),
            Err(ScramError::BadServerSignature)
        );
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for (message, expected) in [
            ("r=someoneelse,s=c2FsdA==,i=4096", ScramError::NonceMismatch),
            (
                "r=rOprNGfwEbeRWgbNEkqO,s=c2FsdA==,i=4096",
                ScramError::NonceMismatch,
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=0",
                ScramError::Iterations(0),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOx,s=c2FsdA==,i=99999999999",
                ScramError::Iterations(99_999_999_999),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096",
                ScramError::Malformed("salt is not base64"),
            ),
            ("s=c2FsdA==", ScramError::Malformed("no nonce")),
        ] {
            let mut client = ScramClient::with_nonce(b"pencil", "", CLIENT_NONCE);
            assert_eq!(
                client.client_final(message.as_bytes()),
                Err(expected),
                "{message}"
            );
        }
    }

    #[test]
    fn a_server_error_is_reported() {
        let mut client = ScramClient::with_nonce(b"pencil", "user", CLIENT_NONCE);
        client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            client.verify_server_final(b"e=invalid-proof"),
            Err(ScramError::Server("invalid-proof".into()))
        );
    }
}
