//! Credentials as the gateway receives them (a PostgreSQL password, an HTTP bearer token),
//! through the whole `Authenticator::authenticate` path: size limit, token cache, the
//! compact-JWS parser (`token::parse`: parts, base64url, JSON, the algorithm allow-list,
//! `kid`, `crit`), the issuer lookup, the signature, the claims (`aud`, `exp`, `nbf`,
//! `iat`) and claims-to-principal; and the API-key path (`sk_sluice_...`) with a directory
//! that holds one key.
//!
//! The authenticator trusts one provider, a local issuer whose P-256 key is made afresh
//! in each fuzzing process, and one API key, also made afresh: no input can hold a valid
//! signature or secret. The first byte picks the mode:
//! - even: the rest is the credential as sent. Invariant: it is refused, never accepted
//!   (and nothing panics).
//! - odd: the rest is a JWS header and payload (JSON text, split at the first NUL, `$kid`
//!   in the header replaced by the issuer's key id), which the harness signs with the
//!   issuer's real key, so the claim checks after the signature are reached. Invariant:
//!   nothing panics, and a token accepted has what the validator promises: header `alg`
//!   ES256 with the issuer's `kid` and no `crit`; `iss` the local issuer; `aud` naming
//!   the default audience; a numeric `exp` not past (60 s leeway); `nbf` and `iat` not in
//!   the future; a non-empty string `sub` that is the principal's subject.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sluice_identity::{
    generate_api_key, ApiKeyDirectory, ApiKeyRecord, Authenticator, LocalIssuer, ProviderSettings,
    LOCAL_ISSUER,
};

/// The directory of one API key.
struct OneKey(ApiKeyRecord);

impl ApiKeyDirectory for OneKey {
    fn find(&self, id: &str) -> Result<Option<ApiKeyRecord>, String> {
        Ok((id == self.0.id).then(|| self.0.clone()))
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    authenticator: Authenticator,
    /// The local issuer's signing key, for the signed mode.
    key: EcdsaKeyPair,
    kid: String,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    // The key file only lives while it is read: the issuer keeps the key in memory.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let issuer = LocalIssuer::load_or_create(dir.path()).expect("the local issuer");
    let pem = std::fs::read_to_string(issuer.key_path()).expect("the key file");
    drop(dir);
    let b64: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).expect("PEM base64");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).expect("PKCS#8");
    let kid = issuer.kid().to_string();
    let api_key = generate_api_key("fuzz", "agent", vec![], vec![], 0);
    let authenticator = Authenticator::new(
        vec![ProviderSettings::local("local", issuer)],
        Some(Arc::new(OneKey(api_key.record))),
    )
    .expect("the authenticator");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    Setup {
        runtime,
        authenticator,
        key,
        kid,
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let setup = &*SETUP;
    if mode % 2 == 0 {
        let result = setup
            .runtime
            .block_on(setup.authenticator.authenticate(text));
        assert!(
            result.is_err(),
            "accepted a credential no one issued: {result:?}"
        );
        return;
    }

    let (header, payload) = text.split_once('\0').unwrap_or((text, "{}"));
    let header = header.replace("$kid", &setup.kid);
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = setup
        .key
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .expect("signing");
    let token = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    let Ok(principal) = setup
        .runtime
        .block_on(setup.authenticator.authenticate(&token))
    else {
        return;
    };

    let object = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        other => panic!("accepted a token whose part is not a JSON object: {other:?}"),
    };
    let header = object(&header);
    let claims = object(payload);
    assert_eq!(header.get("alg"), Some(&Value::from("ES256")));
    assert_eq!(header.get("kid"), Some(&Value::from(setup.kid.as_str())));
    assert!(
        !header.contains_key("crit"),
        "accepted a critical extension"
    );
    assert_eq!(claims.get("iss"), Some(&Value::from(LOCAL_ISSUER)));
    let audiences = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        other => panic!("accepted `aud` {other:?}"),
    };
    assert!(
        audiences.contains(&LocalIssuer::default_audience()),
        "accepted audiences {audiences:?}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as f64;
    let time = |claims: &Map<String, Value>, name: &str| {
        claims.get(name).filter(|v| !v.is_null()).map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("accepted a non-numeric `{name}`: {v}"))
        })
    };
    let exp = time(&claims, "exp").expect("accepted a token without `exp`");
    // A second of slack: the validator read the clock a moment before the harness did.
    assert!(now < exp.floor() + 60.0 + 1.0, "accepted an expired token");
    if let Some(nbf) = time(&claims, "nbf") {
        assert!(nbf.floor() <= now + 60.0, "accepted a token not yet valid");
    }
    if let Some(iat) = time(&claims, "iat") {
        assert!(
            iat.floor() <= now + 60.0,
            "accepted a token issued in the future"
        );
    }
    assert_eq!(
        claims.get("sub").and_then(Value::as_str),
        Some(principal.subject.as_str())
    );
    assert!(!principal.subject.is_empty());
    assert_eq!(principal.provider, "local");
});
