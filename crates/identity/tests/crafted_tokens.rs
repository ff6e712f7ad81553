//! Claim-level and key-handling cases that a real provider will not produce on request:
//! tokens signed in the test with its own P-256 key, whose JWKS an axum server on loopback
//! publishes through a discovery document, validated through the same OIDC path.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_identity::{AuthError, AuthOptions, Authenticator, ProviderSettings, ProviderSource};
use support::{closed_port, now, EcKey, JwksServer};

fn provider(issuer: &str) -> ProviderSettings {
    ProviderSettings {
        name: "idp".into(),
        source: ProviderSource::Oidc {
            issuer: issuer.to_string(),
        },
        audiences: vec!["api://sluice".into(), "sluice-client-id".into()],
        allow_app_without_roles: false,
        entra: false,
    }
}

fn claims(issuer: &str) -> Value {
    let now = now();
    json!({"iss": issuer, "sub": "agent-7", "aud": "api://sluice", "iat": now, "nbf": now,
           "exp": now + 600, "roles": ["Reader"], "jti": "t-1"})
}

async fn setup() -> (EcKey, JwksServer, Authenticator) {
    let key = EcKey::generate("key-1");
    let server = JwksServer::start(json!({"keys": [key.jwk()]})).await;
    let auth = Authenticator::new(vec![provider(&server.issuer)], None).unwrap();
    (key, server, auth)
}

#[tokio::test]
async fn accepts_a_well_formed_token() {
    let (key, server, auth) = setup().await;
    let p = auth
        .authenticate(&key.sign(&claims(&server.issuer)))
        .await
        .unwrap();
    assert_eq!(p.provider, "idp");
    assert_eq!(p.subject, "agent-7");
    assert_eq!(p.roles, vec!["Reader"]);
    assert_eq!(p.token_id.as_deref(), Some("t-1"));
}

#[tokio::test]
async fn time_claims_with_60s_leeway() {
    let (key, server, auth) = setup().await;
    let now = now();
    let with = |patch: Value| {
        let mut c = claims(&server.issuer);
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        key.sign(&c)
    };

    let err = auth
        .authenticate(&with(json!({"exp": now - 120})))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired { .. }), "{err}");
    assert!(err.to_string().starts_with("token expired at 20"), "{err}");
    assert!(
        auth.authenticate(&with(json!({"exp": now - 20})))
            .await
            .is_ok(),
        "within the leeway"
    );

    let err = auth
        .authenticate(&with(json!({"nbf": now + 300})))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::NotYetValid { .. }), "{err}");
    assert!(
        auth.authenticate(&with(json!({"nbf": now + 20})))
            .await
            .is_ok(),
        "within the leeway"
    );

    let err = auth
        .authenticate(&with(json!({"iat": now + 300, "nbf": null})))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::IssuedInFuture { .. }), "{err}");

    let err = auth
        .authenticate(&with(json!({"exp": null})))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("exp"));

    let err = auth
        .authenticate(&with(json!({"exp": "tomorrow"})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidClaim { claim: "exp", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let (key, server, auth) = setup().await;

    let mut c = claims(&server.issuer);
    c["iss"] = json!(format!("{}/", server.issuer));
    let err = auth.authenticate(&key.sign(&c)).await.unwrap_err();
    assert!(
        matches!(err, AuthError::UntrustedIssuer(_)),
        "exact match only: {err}"
    );

    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        auth.authenticate(&key.sign(&c)).await.unwrap_err(),
        AuthError::MissingIssuer
    );

    let mut c = claims(&server.issuer);
    c["aud"] = json!("api://someone-else");
    let err = auth.authenticate(&key.sign(&c)).await.unwrap_err();
    assert!(matches!(err, AuthError::WrongAudience { .. }), "{err}");
    assert!(err.to_string().contains("`api://someone-else`"), "{err}");

    c["aud"] = json!(["api://someone-else", "sluice-client-id"]);
    assert!(
        auth.authenticate(&key.sign(&c)).await.is_ok(),
        "an array intersecting the set"
    );

    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        auth.authenticate(&key.sign(&c)).await.unwrap_err(),
        AuthError::MissingClaim("aud")
    );
}

#[tokio::test]
async fn same_kid_different_key_and_wrong_algorithm_for_key() {
    let (key, server, auth) = setup().await;
    let impostor = EcKey::generate("key-1");
    let err = auth
        .authenticate(&impostor.sign(&claims(&server.issuer)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::BadSignature {
            provider: "idp".into(),
            kid: "key-1".into()
        }
    );

    // An RS256 header naming the EC key.
    let token = key.sign_with_header(
        &json!({"alg": "RS256", "kid": "key-1"}),
        &claims(&server.issuer),
    );
    let err = auth.authenticate(&token).await.unwrap_err();
    assert!(
        matches!(err, AuthError::KeyAlgorithmMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn jwk_alg_must_match_header_alg() {
    let key = EcKey::generate("key-1");
    let mut jwk = key.jwk();
    // A JWK restricted to another algorithm must not verify ES256, even if the maths would.
    jwk["alg"] = json!("ES384");
    let server = JwksServer::start(json!({"keys": [jwk]})).await;
    let auth = Authenticator::new(vec![provider(&server.issuer)], None).unwrap();
    let err = auth
        .authenticate(&key.sign(&claims(&server.issuer)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::KeyAlgorithmMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn key_rotation_respects_the_refetch_interval() {
    let old = EcKey::generate("old");
    let new = EcKey::generate("new");
    let server = JwksServer::start(json!({"keys": [old.jwk()]})).await;
    let c = claims(&server.issuer);

    // Default interval (5 minutes): the rotated key is not fetched right after the first
    // fetch, so a token with the new kid is refused, and only one JWKS request was made.
    let strict = Authenticator::new(vec![provider(&server.issuer)], None).unwrap();
    strict.authenticate(&old.sign(&c)).await.unwrap();
    server.set_jwks(json!({"keys": [old.jwk(), new.jwk()]}));
    for _ in 0..3 {
        let err = strict.authenticate(&new.sign(&c)).await.unwrap_err();
        assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
    }
    assert_eq!(strict.jwks_fetch_count("idp"), Some(1));

    // A short interval: once it has passed, the unknown kid triggers one refetch.
    let interval = Duration::from_millis(300);
    let options = AuthOptions {
        jwks_refetch_interval: interval,
        ..AuthOptions::default()
    };
    server.set_jwks(json!({"keys": [old.jwk()]}));
    let quick = Authenticator::with_options(vec![provider(&server.issuer)], None, options).unwrap();
    quick.authenticate(&old.sign(&c)).await.unwrap();
    server.set_jwks(json!({"keys": [old.jwk(), new.jwk()]}));
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let p = quick.authenticate(&new.sign(&c)).await.unwrap();
    assert_eq!(p.subject, "agent-7");
    assert_eq!(quick.jwks_fetch_count("idp"), Some(2));
    // Known kids need no fetch.
    quick.authenticate(&old.sign(&c)).await.unwrap();
    assert_eq!(quick.jwks_fetch_count("idp"), Some(2));
}

/// Many requests for a provider with no keys yet: one JWKS fetch serves them all. The
/// rate limits are off (zero), so only the coalescing of concurrent fetches keeps it at
/// one: each request that waited for the running fetch must see that it brought keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_cause_one_fetch() {
    const REQUESTS: usize = 50;
    let key = EcKey::generate("key-1");
    let server = JwksServer::start(json!({"keys": [key.jwk()]})).await;
    // A slow JWKS, so the requests pile up while the fetch runs.
    server.set_jwks_delay(Duration::from_millis(300));
    let options = AuthOptions {
        jwks_refetch_interval: Duration::ZERO,
        jwks_retry_after_failure: Duration::ZERO,
        ..AuthOptions::default()
    };
    let auth = Authenticator::with_options(vec![provider(&server.issuer)], None, options).unwrap();
    assert_eq!(
        auth.jwks_fetch_count("idp"),
        Some(0),
        "no keys cached at start"
    );

    // Distinct tokens, so the token cache answers none of them.
    let tokens: Vec<String> = (0..REQUESTS)
        .map(|i| {
            let mut c = claims(&server.issuer);
            c["jti"] = json!(format!("t-{i}"));
            key.sign(&c)
        })
        .collect();
    let start = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let auth = auth.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                auth.authenticate(&token).await
            })
        })
        .collect();
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        assert_eq!(p.subject, "agent-7");
    }
    assert_eq!(auth.jwks_fetch_count("idp"), Some(1));
    assert_eq!(server.jwks_request_count(), 1);
}

/// Keys older than max_age are refreshed in the background: requests whose key is cached
/// go on at once while the (slow) refresh runs, and start no second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_keys_are_refreshed_without_waiting() {
    let old = EcKey::generate("old");
    let new = EcKey::generate("new");
    let server = JwksServer::start(json!({"keys": [old.jwk()]})).await;
    let max_age = Duration::from_millis(200);
    let options = AuthOptions {
        jwks_max_age: max_age,
        jwks_refetch_interval: Duration::ZERO,
        token_cache_ttl: Duration::ZERO,
        ..AuthOptions::default()
    };
    let auth = Authenticator::with_options(vec![provider(&server.issuer)], None, options).unwrap();
    let c = claims(&server.issuer);
    auth.authenticate(&old.sign(&c)).await.unwrap();
    assert_eq!(server.jwks_request_count(), 1);

    // The keys grow old; the provider rotates to `new`, and answers slowly.
    tokio::time::sleep(max_age + Duration::from_millis(50)).await;
    server.set_jwks(json!({"keys": [new.jwk()]}));
    let delay = Duration::from_secs(3);
    server.set_jwks_delay(delay);

    let started = Instant::now();
    for _ in 0..5 {
        auth.authenticate(&old.sign(&c)).await.unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < delay / 2,
        "requests with a cached key waited for the refresh: {took:?}"
    );

    // A kid the cache lacks does wait, for the refresh already running, not a new one.
    let p = auth.authenticate(&new.sign(&c)).await.unwrap();
    assert_eq!(p.subject, "agent-7");
    assert_eq!(server.jwks_request_count(), 2, "one background refresh");

    // The withdrawn key no longer validates.
    server.set_jwks_delay(Duration::ZERO);
    let err = auth.authenticate(&old.sign(&c)).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownKey { .. }), "{err}");
}

#[tokio::test]
async fn unreachable_provider_and_wrong_discovery_issuer() {
    let issuer = format!("http://127.0.0.1:{}/idp", closed_port());
    let auth = Authenticator::new(vec![provider(&issuer)], None).unwrap();
    let key = EcKey::generate("k");
    let err = auth
        .authenticate(&key.sign(&claims(&issuer)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::ProviderUnavailable { reason, .. } if reason.contains(&issuer)),
        "{err:?}"
    );
    // The client hears that the provider is unavailable, not where it lives or why.
    let msg = err.to_string();
    assert!(
        msg.contains("identity provider `idp` is unavailable"),
        "{msg}"
    );
    assert!(!msg.contains("127.0.0.1"), "{msg}");
    assert!(err.is_transient());

    // Discovery that names another issuer is not believed.
    let server = JwksServer::start_with_discovery_issuer(
        json!({"keys": [key.jwk()]}),
        Some("https://elsewhere"),
    )
    .await;
    let auth = Authenticator::new(vec![provider(&server.issuer)], None).unwrap();
    let err = auth
        .authenticate(&key.sign(&claims(&server.issuer)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AuthError::ProviderUnavailable { reason, .. } if reason.contains("names issuer `https://elsewhere`")),
        "{err}"
    );
    assert_eq!(
        server
            .jwks_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn prefetch_reports_per_provider() {
    let (_key, server, auth) = setup().await;
    let report = auth.prefetch().await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].0, "idp");
    assert_eq!(report[0].1, Ok(1));
    assert_eq!(auth.jwks_fetch_count("idp"), Some(1));
    drop(server);
}
