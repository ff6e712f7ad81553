//! The gateway's own token issuer, for development, tests, `sluice demo` and
//! `sluice token issue` (DESIGN.md §1).
//!
//! It signs ES256 tokens with a P-256 key kept in `<data_dir>/local-issuer.pem` (PKCS#8,
//! mode 0600), generated on first use. Its issuer is the fixed string
//! [`LOCAL_ISSUER`] (`sluice-local`) and its default audience [`LocalIssuer::default_audience`]
//! (`sluice`). Tokens it issues are validated exactly like a remote provider's: the
//! [`crate::Authenticator`] reads this issuer's [`LocalIssuer::jwks`] into the same key set
//! type and runs the same checks, so the local path is not a weaker side door. The gateway
//! also serves the JWKS at `/.well-known/jwks.json`, so other services can verify them.
//!
//! Claims written: `iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti` (random), `roles`,
//! `groups`, `name` (when given), and `idtyp`: `app` by default (agents are apps), `user`
//! for [`LocalIssuer::issue_as`] with [`PrincipalKind::User`], for human approvers in demos
//! and tests.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_core::PrincipalKind;

use crate::error::IdentityError;

/// The `iss` of every token the local issuer signs.
pub const LOCAL_ISSUER: &str = "sluice-local";
/// File name of the signing key inside the data directory.
pub const LOCAL_KEY_FILE: &str = "local-issuer.pem";
const DEFAULT_AUDIENCE: &str = "sluice";

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// What to put in a local token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub subject: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Lifetime from now; at least one second.
    pub ttl: Duration,
    /// `aud`; empty means [`LocalIssuer::default_audience`].
    pub audience: String,
    /// Display name (`name` claim).
    pub name: Option<String>,
}

/// The local issuer: its signing key and public JWK. Cheap to clone.
#[derive(Clone)]
pub struct LocalIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    /// PKCS#8 DER, as jsonwebtoken's aws-lc backend takes it.
    encoding: EncodingKey,
    kid: String,
    x: String,
    y: String,
    path: PathBuf,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("LocalIssuer")
            .field("issuer", &LOCAL_ISSUER)
            .field("kid", &self.inner.kid)
            .field("key_file", &self.inner.path)
            .finish()
    }
}

impl LocalIssuer {
    /// Loads the ES256 signing key from `<data_dir>/local-issuer.pem` (PKCS#8), generating
    /// it (mode 0600, data dir 0700 if created) on first use.
    ///
    /// Two processes starting at once end up with the same key: the new key is written to
    /// a temporary file (named with a random suffix, so no other process, nor a file left
    /// behind by a crash, can claim the name first) and linked into place only if no key
    /// file exists yet; the loser loads the winner's. Where hard links are not supported,
    /// the key is written straight to its final path with `create_new`, which keeps the
    /// same rule: whoever creates the file first wins.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(LOCAL_KEY_FILE);
        let err = |reason: String| IdentityError::LocalKey {
            path: path.clone(),
            reason,
        };
        match fs::read_to_string(&path) {
            Ok(pem) => return Self::from_pem(&path, &pem),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
        }

        create_private_dir(data_dir)
            .map_err(|e| err(format!("cannot create the data directory: {e}")))?;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| err("cannot generate a P-256 key".into()))?;
        let pem = to_pem(pkcs8.as_ref());
        match put_in_place(data_dir, &path, &pem, |from, to| fs::hard_link(from, to)) {
            Ok(Placed::Ours) => {
                tracing::info!(path = %path.display(), "generated the local issuer's signing key");
                Self::from_pem(&path, &pem)
            }
            Ok(Placed::Theirs) => Self::load_winners(&path),
            Err(e) => Err(err(e)),
        }
    }

    /// Loads the key another process just created. Read a few times over a short while:
    /// with the `create_new` fallback of [`put_in_place`], the winner may still be writing.
    fn load_winners(path: &Path) -> Result<Self, IdentityError> {
        let mut attempt = 0;
        loop {
            let result = fs::read_to_string(path)
                .map_err(|e| IdentityError::LocalKey {
                    path: path.to_path_buf(),
                    reason: format!("cannot read it: {e}"),
                })
                .and_then(|pem| Self::from_pem(path, &pem));
            attempt += 1;
            if result.is_ok() || attempt >= 20 {
                return result;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn from_pem(path: &Path, pem: &str) -> Result<Self, IdentityError> {
        let err = |reason: &str| IdentityError::LocalKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        warn_if_exposed(path);
        if pem.contains("BEGIN EC PRIVATE KEY") {
            return Err(err(
                "it is a SEC1 key (BEGIN EC PRIVATE KEY); convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`",
            ));
        }
        let body = pem
            .split_once(PEM_BEGIN)
            .and_then(|(_, rest)| rest.split_once(PEM_END))
            .map(|(body, _)| body)
            .ok_or_else(|| err("it is not a PEM PKCS#8 private key (BEGIN PRIVATE KEY)"))?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| err("its PEM body is not valid base64"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|e| err(&format!("it is not a P-256 PKCS#8 key: {e}")))?;
        // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(err("unexpected public key encoding"));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 thumbprint: stable across restarts, changes when the key does.
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        Ok(LocalIssuer {
            inner: Arc::new(Inner {
                encoding: EncodingKey::from_ec_der(&der),
                kid,
                x,
                y,
                path: path.to_path_buf(),
            }),
        })
    }

    /// The `iss` of local tokens: always [`LOCAL_ISSUER`] (`sluice-local`). A provider
    /// configured with `local: {}` trusts exactly this issuer.
    pub fn issuer(&self) -> &str {
        LOCAL_ISSUER
    }

    /// The audience local tokens get when the request names none: `sluice`.
    pub fn default_audience() -> &'static str {
        DEFAULT_AUDIENCE
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// Where the signing key lives.
    pub fn key_path(&self) -> &Path {
        &self.inner.path
    }

    /// Signs an app token (`idtyp: app`): agents are apps.
    pub fn issue(&self, req: &TokenRequest) -> Result<String, IdentityError> {
        self.issue_as(req, PrincipalKind::App)
    }

    /// Signs a token of the given kind (`idtyp` `app` or `user`).
    pub fn issue_as(
        &self,
        req: &TokenRequest,
        kind: PrincipalKind,
    ) -> Result<String, IdentityError> {
        if req.subject.trim().is_empty() {
            return Err(IdentityError::InvalidTokenRequest(
                "the subject is empty".into(),
            ));
        }
        if req.ttl < Duration::from_secs(1) {
            return Err(IdentityError::InvalidTokenRequest(
                "the ttl must be at least one second".into(),
            ));
        }
        let ttl = i64::try_from(req.ttl.as_secs())
            .map_err(|_| IdentityError::InvalidTokenRequest("the ttl is too large".into()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let exp = now
            .checked_add(ttl)
            .ok_or_else(|| IdentityError::InvalidTokenRequest("the ttl is too large".into()))?;
        let audience = if req.audience.is_empty() {
            DEFAULT_AUDIENCE
        } else {
            req.audience.as_str()
        };
        let mut jti = [0u8; 16];
        rand::fill(&mut jti);

        let mut claims = json!({
            "iss": LOCAL_ISSUER,
            "sub": req.subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "roles": req.roles,
            "groups": req.groups,
            "idtyp": kind.to_string(),
        });
        if let Some(name) = &req.name {
            claims["name"] = Value::String(name.clone());
        }
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.inner.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.inner.encoding)
            .map_err(|e| IdentityError::Signing(e.to_string()))
    }

    /// The public key as a JWKS document, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": self.inner.x,
            "y": self.inner.y,
            "kid": self.inner.kid,
            "alg": "ES256",
            "use": "sig",
        }]})
    }
}

fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from(PEM_BEGIN);
    pem.push('\n');
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

/// Who created the key file.
#[derive(Debug, PartialEq, Eq)]
enum Placed {
    Ours,
    Theirs,
}

/// Creates `path` holding `pem` unless it exists: written to a temporary file in `dir`
/// under a random name, then `link`ed (hard link, which fails if `path` exists) into
/// place. If linking fails for any other reason (a file system without hard links), falls
/// back to creating `path` itself with `create_new`. Errors are messages for
/// [`IdentityError::LocalKey`].
fn put_in_place(
    dir: &Path,
    path: &Path,
    pem: &str,
    link: impl Fn(&Path, &Path) -> std::io::Result<()>,
) -> Result<Placed, String> {
    let mut suffix = [0u8; 16];
    rand::fill(&mut suffix);
    let tmp = dir.join(format!(".{LOCAL_KEY_FILE}.{}.tmp", hex::encode(suffix)));
    write_private_file(&tmp, pem.as_bytes()).map_err(|e| format!("cannot write it: {e}"))?;
    let linked = link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => return Ok(Placed::Ours),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Placed::Theirs),
        Err(e) => {
            tracing::debug!(error = %e, "cannot hard-link the local issuer's key into place; creating it directly");
        }
    }
    match write_private_file(path, pem.as_bytes()) {
        Ok(()) => Ok(Placed::Ours),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Placed::Theirs),
        Err(e) => Err(format!("cannot write it: {e}")),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // `create_new`: the file is ours alone, so if writing it fails it can be removed
    // without harm; a half-written key file would otherwise stop every later start.
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    written
}

/// A key others can read is a key others can sign with. Warn rather than refuse: secret
/// mounts (Kubernetes) are often 0644 inside an otherwise private volume.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the local issuer's key is readable by other users; run chmod 600 on it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let pem = fs::read_to_string(issuer.key_path()).unwrap();
        assert!(pem.starts_with(PEM_BEGIN));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let again = LocalIssuer::from_pem(issuer.key_path(), &pem).unwrap();
        assert_eq!(again.kid(), issuer.kid());

        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(LocalIssuer::from_pem(Path::new("k"), sec1)
            .unwrap_err()
            .to_string()
            .contains("PKCS#8"));
        assert!(LocalIssuer::from_pem(Path::new("k"), "garbage").is_err());
        let not_a_key = format!("{PEM_BEGIN}\nAAAA\n{PEM_END}\n");
        assert!(LocalIssuer::from_pem(Path::new("k"), &not_a_key).is_err());
    }

    #[test]
    fn key_put_in_place_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCAL_KEY_FILE);
        let hard_link = |from: &Path, to: &Path| fs::hard_link(from, to);
        assert_eq!(
            put_in_place(dir.path(), &path, "first", hard_link),
            Ok(Placed::Ours)
        );
        assert_eq!(
            put_in_place(dir.path(), &path, "second", hard_link),
            Ok(Placed::Theirs)
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn key_created_directly_where_hard_links_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCAL_KEY_FILE);
        let no_links = |_: &Path, _: &Path| -> std::io::Result<()> {
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "no hard links here",
            ))
        };
        assert_eq!(
            put_in_place(dir.path(), &path, "first", no_links),
            Ok(Placed::Ours)
        );
        assert_eq!(
            put_in_place(dir.path(), &path, "second", no_links),
            Ok(Placed::Theirs)
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn request_checks() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let mut req = TokenRequest {
            subject: " ".into(),
            roles: vec![],
            groups: vec![],
            ttl: Duration::from_secs(60),
            audience: String::new(),
            name: None,
        };
        assert!(issuer.issue(&req).is_err());
        req.subject = "a".into();
        req.ttl = Duration::from_millis(10);
        assert!(issuer.issue(&req).is_err());
        req.ttl = Duration::from_secs(60);
        let token = issuer.issue(&req).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["aud"], "sluice");
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
    }
}
