//! Real peers for the identity tests, and tools to craft tokens.
//!
//! - [`OidcProvider`]: the Entra-shaped OpenID Connect provider of
//!   `tests-support/oidc-provider` (panva/oidc-provider on Node), started per test on a free
//!   port and killed on drop. Its `node_modules` come from `scripts/test-deps.sh` (which
//!   runs `npm ci --prefix tests-support/oidc-provider`); when they are missing the harness
//!   runs `npm ci` itself, so `cargo test` works on its own too.
//! - [`JwksServer`]: a discovery document and JWKS served by axum from keys the test
//!   generates, for claim-level cases (expired, nbf, iss, aud, key rotation) that a real
//!   provider will not produce on request. Its JWKS can be swapped and slowed down.
//! - [`EcKey`], [`sign_rs256_with_fresh_key`], [`rsa_spki_pem`]: keys and signatures for
//!   hand-made tokens.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims of a token, unverified (for comparing with what the authenticator returns).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

/// `base64url(header).base64url(claims).base64url(sign(signing input))`.
pub fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(sig))
}

// ---------------------------------------------------------------------------------------
// The real OIDC provider.

fn oidc_provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests-support/oidc-provider")
}

/// Runs `npm ci` once if the provider's dependencies are not installed.
fn ensure_node_modules() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = oidc_provider_dir();
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        eprintln!(
            "installing the test OIDC provider's packages: npm ci in {}",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("cannot run npm: the identity tests need Node.js 20+ and npm (see scripts/test-deps.sh)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    *done = true;
}

/// A running `node server.js`, killed on drop.
pub struct OidcProvider {
    child: Child,
    /// Kept open: the server exits when it closes (`--exit-with-parent`), so it cannot
    /// outlive a test process that dies without running `Drop`.
    _stdin: ChildStdin,
    pub issuer: String,
    pub tenant: String,
    pub port: u16,
    http: reqwest::Client,
}

impl OidcProvider {
    pub async fn start() -> OidcProvider {
        ensure_node_modules();
        let mut child = Command::new("node")
            .args(["server.js", "--port", "0", "--exit-with-parent"])
            .current_dir(oidc_provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start node: the identity tests need Node.js 20+");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();

        // Forward the server's stderr through the test's own output (shown when a test
        // fails), minus oidc-provider's fixed start-up warnings about the Node version and
        // its in-memory store, which are expected here.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !line.starts_with("oidc-provider WARNING") {
                    eprintln!("[oidc-provider] {line}");
                }
            }
        });

        // The server prints one JSON line once it listens; read it off-thread with a
        // deadline so a broken server fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the OIDC provider did not start: {other:?}");
            }
        };
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        let provider = OidcProvider {
            child,
            _stdin: stdin,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            tenant: ready["tenant"].as_str().unwrap().to_string(),
            port: ready["port"].as_u64().unwrap() as u16,
            http: reqwest::Client::new(),
        };
        provider.wait_for_discovery().await;
        provider
    }

    async fn wait_for_discovery(&self) {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        for _ in 0..100 {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("discovery at {url} never answered");
    }

    /// An access token for `client_id` (its secret is `<client_id>-secret`) and the
    /// default resource `api://sluice`.
    pub async fn token(&self, client_id: &str) -> String {
        self.token_for(client_id, "api://sluice").await
    }

    pub async fn token_for(&self, client_id: &str, resource: &str) -> String {
        let secret = format!("{client_id}-secret");
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret.as_str()),
                ("resource", resource),
            ])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert!(
            status.is_success(),
            "token request for {client_id} failed: {status} {body}"
        );
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn jwks(&self) -> Value {
        self.http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stops the server now (to test behaviour while the provider is unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Keys made in the test.

/// A P-256 key pair with a `kid`.
pub struct EcKey {
    pair: EcdsaKeyPair,
    pub kid: String,
}

impl EcKey {
    pub fn generate(kid: &str) -> EcKey {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        EcKey {
            pair,
            kid: kid.to_string(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
               "kid": self.kid, "use": "sig"})
    }

    pub fn raw_sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// An ES256 token over `claims` with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        compact(header, claims, |m| self.raw_sign(m))
    }
}

/// RS256 signature of `msg` with a freshly generated 2048-bit RSA key nobody knows.
pub fn sign_rs256_with_fresh_key(msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
        .unwrap();
    sig
}

/// The PEM (SubjectPublicKeyInfo) of an RSA JWK: the bytes an HS256 key-confusion attack
/// uses as the HMAC secret.
pub fn rsa_spki_pem(jwk: &Value) -> String {
    fn len(n: usize) -> Vec<u8> {
        if n < 128 {
            vec![n as u8]
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(len(body.len()));
        out.extend_from_slice(body);
        out
    }
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut body = bytes.to_vec();
        if body[0] & 0x80 != 0 {
            body.insert(0, 0);
        }
        tlv(0x02, &body)
    }
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let rsa_public_key = tlv(0x30, &[integer(&n), integer(&e)].concat());
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let algorithm = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
            ),
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let mut bit_string = vec![0u8];
    bit_string.extend(rsa_public_key);
    let spki = tlv(0x30, &[algorithm, tlv(0x03, &bit_string)].concat());
    let b64 = STANDARD.encode(spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

// ---------------------------------------------------------------------------------------
// A provider whose keys the test controls.

/// Discovery and JWKS served from loopback; the JWKS can be swapped (key rotation).
pub struct JwksServer {
    pub issuer: String,
    jwks: Arc<RwLock<Value>>,
    pub jwks_requests: Arc<AtomicU64>,
    /// Milliseconds each JWKS answer is held back (a slow provider).
    jwks_delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(jwks: Value) -> JwksServer {
        Self::start_with_discovery_issuer(jwks, None).await
    }

    /// `discovery_issuer`: what the discovery document claims as issuer (to test the
    /// mismatch check); `None` for the correct one.
    pub async fn start_with_discovery_issuer(
        jwks: Value,
        discovery_issuer: Option<&str>,
    ) -> JwksServer {
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}/idp", listener.local_addr().unwrap());
        let jwks = Arc::new(RwLock::new(jwks));
        let jwks_requests = Arc::new(AtomicU64::new(0));
        let jwks_delay_ms = Arc::new(AtomicU64::new(0));
        let discovery = json!({
            "issuer": discovery_issuer.unwrap_or(&issuer),
            "jwks_uri": format!("{issuer}/keys"),
        });
        let app = axum::Router::new()
            .route(
                "/idp/.well-known/openid-configuration",
                get(move || {
                    let discovery = discovery.clone();
                    async move { axum::Json(discovery) }
                }),
            )
            .route(
                "/idp/keys",
                get({
                    let jwks = jwks.clone();
                    let count = jwks_requests.clone();
                    let delay = jwks_delay_ms.clone();
                    move || {
                        count.fetch_add(1, Ordering::SeqCst);
                        let body = jwks.read().unwrap().clone();
                        let delay = Duration::from_millis(delay.load(Ordering::SeqCst));
                        async move {
                            tokio::time::sleep(delay).await;
                            axum::Json(body)
                        }
                    }
                }),
            );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            issuer,
            jwks,
            jwks_requests,
            jwks_delay_ms,
            task,
        }
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.jwks.write().unwrap() = jwks;
    }

    /// Holds back every JWKS answer from now on by `delay` (the count goes up at once).
    pub fn set_jwks_delay(&self, delay: Duration) {
        self.jwks_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn jwks_request_count(&self) -> u64 {
        self.jwks_requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on loopback with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
