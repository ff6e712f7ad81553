//! The local issuer (key persistence, JWKS, issue → authenticate through the same
//! validation path), API keys through an in-memory directory, and the token cache's
//! respect for expiry.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::PrincipalKind;
use sluice_identity::{
    generate_api_key, ApiKeyDirectory, ApiKeyRecord, AuthError, AuthOptions, Authenticator,
    LocalIssuer, ProviderSettings, TokenRequest, LOCAL_KEY_FILE, MAX_CONCURRENT_LOOKUPS,
};

fn local_provider(issuer: &LocalIssuer) -> ProviderSettings {
    ProviderSettings::local("local", issuer.clone())
}

fn request(subject: &str) -> TokenRequest {
    TokenRequest {
        subject: subject.into(),
        roles: vec!["Reports.Reader".into()],
        groups: vec!["analysts".into()],
        ttl: Duration::from_secs(3600),
        audience: String::new(),
        name: Some("Reporting agent".into()),
    }
}

#[tokio::test]
async fn local_issue_and_authenticate_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    assert_eq!(issuer.issuer(), "sluice-local");
    assert_eq!(LocalIssuer::default_audience(), "sluice");
    let auth = Authenticator::new(vec![local_provider(&issuer)], None).unwrap();

    let token = issuer.issue(&request("agent-1")).unwrap();
    let header = support::header_of(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], issuer.kid());
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(p.provider, "local");
    assert_eq!(p.subject, "agent-1");
    assert_eq!(p.display_name, "Reporting agent");
    assert_eq!(p.kind, PrincipalKind::App, "agents are apps");
    assert_eq!(p.roles, vec!["Reports.Reader"]);
    assert_eq!(p.groups, vec!["analysts"]);
    assert_eq!(p.tenant_id, None);
    assert!(p.token_id.is_some());
    let exp = p.expires_at.unwrap();
    assert!((exp - support::now() - 3600).abs() <= 2);
    assert_eq!(
        auth.jwks_fetch_count("local"),
        None,
        "local keys are never fetched"
    );

    let person = issuer
        .issue_as(&request("alice"), PrincipalKind::User)
        .unwrap();
    assert_eq!(
        auth.authenticate(&person).await.unwrap().kind,
        PrincipalKind::User
    );

    // A token for another audience is refused; a provider configured for it accepts it.
    let mut other = request("agent-1");
    other.audience = "api://elsewhere".into();
    let token = issuer.issue(&other).unwrap();
    assert!(matches!(
        auth.authenticate(&token).await.unwrap_err(),
        AuthError::WrongAudience { .. }
    ));
    let custom = Authenticator::new(
        vec![ProviderSettings {
            audiences: vec!["api://elsewhere".into()],
            ..local_provider(&issuer)
        }],
        None,
    )
    .unwrap();
    assert!(custom.authenticate(&token).await.is_ok());
}

#[tokio::test]
async fn local_key_is_persisted_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sluice-data");
    let first = LocalIssuer::load_or_create(&data_dir).unwrap();
    let path = data_dir.join(LOCAL_KEY_FILE);
    assert_eq!(first.key_path(), path);
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8 PEM"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
        let dir_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "data dir mode {dir_mode:o}");
    }

    let second = LocalIssuer::load_or_create(&data_dir).unwrap();
    assert_eq!(second.kid(), first.kid());
    assert_eq!(second.jwks(), first.jwks());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        pem,
        "not rewritten"
    );

    // A token from the first instance validates against the second (a gateway restart).
    let token = first.issue(&request("agent-1")).unwrap();
    let auth = Authenticator::new(vec![local_provider(&second)], None).unwrap();
    assert!(auth.authenticate(&token).await.is_ok());

    // Another data dir, another key: its tokens are forgeries here.
    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalIssuer::load_or_create(other_dir.path()).unwrap();
    assert_ne!(other.kid(), first.kid());
    let err = auth
        .authenticate(&other.issue(&request("agent-1")).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
}

#[test]
fn local_jwks_shape() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    let jwks = issuer.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kid"], issuer.kid());
    for c in ["x", "y"] {
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            k[c].as_str().unwrap(),
        );
        assert_eq!(bytes.unwrap().len(), 32, "{c}");
    }
    assert!(k.get("d").is_none(), "no private part");
    assert_eq!(k.as_object().unwrap().len(), 7);
}

#[tokio::test]
async fn cached_token_is_refused_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    // No leeway, so expiry is observable in seconds rather than a minute.
    let options = AuthOptions {
        leeway: Duration::ZERO,
        ..AuthOptions::default()
    };
    let auth = Authenticator::with_options(vec![local_provider(&issuer)], None, options).unwrap();
    let token = issuer
        .issue(&TokenRequest {
            ttl: Duration::from_secs(2),
            ..request("short-lived")
        })
        .unwrap();
    let exp = support::claims_of(&token)["exp"].as_i64().unwrap();

    auth.authenticate(&token).await.unwrap();
    // Second call: served from the cache.
    auth.authenticate(&token).await.unwrap();

    while support::now() < exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = auth.authenticate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::Expired { .. }), "{err}");
}

/// The store's part, in memory.
#[derive(Default)]
struct MemoryDirectory {
    records: Mutex<HashMap<String, ApiKeyRecord>>,
    broken: Mutex<bool>,
}

impl ApiKeyDirectory for MemoryDirectory {
    fn find(&self, id: &str) -> Result<Option<ApiKeyRecord>, String> {
        if *self.broken.lock().unwrap() {
            return Err("database is locked".into());
        }
        Ok(self.records.lock().unwrap().get(id).cloned())
    }
}

#[tokio::test]
async fn api_keys() {
    let directory = Arc::new(MemoryDirectory::default());
    let key = generate_api_key(
        "ci-reporting",
        "agent-ci",
        vec!["Reports.Reader".into()],
        vec!["ci".into()],
        1_700_000_000,
    );
    assert!(key.plaintext.starts_with("sk_sluice_"));
    assert!(!key.record.secret_sha256.is_empty());
    assert!(!key.plaintext.contains(&key.record.secret_sha256));
    directory
        .records
        .lock()
        .unwrap()
        .insert(key.record.id.clone(), key.record.clone());
    let auth =
        Authenticator::new(vec![], Some(directory.clone() as Arc<dyn ApiKeyDirectory>)).unwrap();

    let p = auth.authenticate(&key.plaintext).await.unwrap();
    assert_eq!(p.provider, "apikey");
    assert_eq!(p.subject, "agent-ci");
    assert_eq!(p.kind, PrincipalKind::App);
    assert_eq!(p.roles, vec!["Reports.Reader"]);
    assert_eq!(p.groups, vec!["ci"]);
    assert_eq!(p.token_id.as_deref(), Some(key.record.id.as_str()));
    assert_eq!(p.expires_at, None);

    // Wrong secret: same id, another key's secret.
    let other = generate_api_key("x", "y", vec![], vec![], 0);
    let other_secret = other
        .plaintext
        .split_once(&format!("{}_", other.record.id))
        .unwrap()
        .1;
    let wrong = format!("sk_sluice_{}_{other_secret}", key.record.id);
    assert_eq!(
        auth.authenticate(&wrong).await.unwrap_err(),
        AuthError::ApiKeyWrongSecret(key.record.id.clone())
    );

    // Unknown id.
    assert_eq!(
        auth.authenticate(&other.plaintext).await.unwrap_err(),
        AuthError::ApiKeyUnknown(other.record.id.clone())
    );

    // Malformed.
    for bad in [
        "sk_sluice_",
        "sk_sluice_abc_def",
        "sk_sluice_abcdefghijklmnop",
    ] {
        assert!(
            matches!(
                auth.authenticate(bad).await.unwrap_err(),
                AuthError::ApiKeyMalformed(_)
            ),
            "{bad}"
        );
    }

    // Directory failure: fail closed.
    *directory.broken.lock().unwrap() = true;
    let err = auth.authenticate(&key.plaintext).await.unwrap_err();
    assert_eq!(err, AuthError::ApiKeyStore("database is locked".into()));
    assert!(err.is_transient());
    // The store's own error stays in the gateway's logs.
    assert!(!err.to_string().contains("database"), "{err}");
    *directory.broken.lock().unwrap() = false;

    // Revoked: refused at once, though it just worked (no caching of keys).
    assert!(auth.authenticate(&key.plaintext).await.is_ok());
    directory
        .records
        .lock()
        .unwrap()
        .get_mut(&key.record.id)
        .unwrap()
        .revoked_at = Some(1_700_000_100);
    let err = auth.authenticate(&key.plaintext).await.unwrap_err();
    assert_eq!(err, AuthError::ApiKeyRevoked(key.record.id.clone()));
    assert!(err.to_string().contains("revoked"), "{err}");

    // Without a directory, keys are not accepted at all.
    let no_keys = Authenticator::new(vec![], None).unwrap();
    assert_eq!(
        no_keys.authenticate(&key.plaintext).await.unwrap_err(),
        AuthError::ApiKeysDisabled
    );
}

/// A directory whose lookups block until the test opens the gate.
#[derive(Default)]
struct GatedDirectory {
    record: Mutex<Option<ApiKeyRecord>>,
    open: Mutex<bool>,
    opened: std::sync::Condvar,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl ApiKeyDirectory for GatedDirectory {
    fn find(&self, _id: &str) -> Result<Option<ApiKeyRecord>, String> {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        Ok(self.record.lock().unwrap().clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_lookups_are_capped() {
    let key = generate_api_key("ci", "agent-ci", vec![], vec![], 0);
    let directory = Arc::new(GatedDirectory::default());
    *directory.record.lock().unwrap() = Some(key.record.clone());
    let auth = Authenticator::new(vec![], Some(directory.clone())).unwrap();

    // Fill every permit with a lookup the store does not answer.
    let stuck: Vec<_> = (0..MAX_CONCURRENT_LOOKUPS)
        .map(|_| {
            let auth = auth.clone();
            let key = key.plaintext.clone();
            tokio::spawn(async move { auth.authenticate(&key).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while directory
        .in_flight
        .load(std::sync::atomic::Ordering::SeqCst)
        < MAX_CONCURRENT_LOOKUPS
    {
        assert!(
            std::time::Instant::now() < deadline,
            "lookups never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // One more is refused at once, as a store that cannot answer, and never reaches it.
    let err = tokio::time::timeout(Duration::from_secs(2), auth.authenticate(&key.plaintext))
        .await
        .expect("refused without waiting")
        .unwrap_err();
    assert!(matches!(err, AuthError::ApiKeyStore(_)), "{err}");
    assert!(err.is_transient());
    assert_eq!(
        directory
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        MAX_CONCURRENT_LOOKUPS
    );

    *directory.open.lock().unwrap() = true;
    directory.opened.notify_all();
    for t in stuck {
        assert_eq!(t.await.unwrap().unwrap().subject, "agent-ci");
    }
    // Permits come back: keys are checked again.
    assert!(auth.authenticate(&key.plaintext).await.is_ok());
}
