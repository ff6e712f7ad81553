//! Token validation against a real OpenID Connect provider (panva/oidc-provider dressed as
//! an Entra tenant, tests-support/oidc-provider): Entra v2 and v1 app tokens accepted with
//! the right principal, and hostile or unacceptable tokens each refused with its own reason.

mod support;

use serde_json::json;
use sluice_core::PrincipalKind;
use sluice_identity::{
    AuthError, Authenticator, ProviderSettings, ProviderSource, MAX_TOKEN_BYTES,
};
use support::{
    b64, claims_of, compact, header_of, rsa_spki_pem, sign_rs256_with_fresh_key, OidcProvider,
};

fn entra(idp: &OidcProvider) -> ProviderSettings {
    ProviderSettings {
        name: "entra".into(),
        source: ProviderSource::Oidc {
            issuer: idp.issuer.clone(),
        },
        audiences: vec!["api://sluice".into()],
        allow_app_without_roles: false,
        // The test provider's issuer (http://127.0.0.1:<port>/<tid>/v2.0) has Entra's shape
        // but not Microsoft's host, so it is Entra only by this setting; its tenant is the
        // `<tid>` path segment.
        entra: true,
    }
}

fn authenticator(idp: &OidcProvider) -> Authenticator {
    Authenticator::new(vec![entra(idp)], None).unwrap()
}

#[tokio::test]
async fn accepts_v2_and_v1_app_tokens() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);

    let token = idp.token("reader-v2").await;
    assert_eq!(header_of(&token)["typ"], "JWT");
    let claims = claims_of(&token);
    assert_eq!(claims["ver"], "2.0");
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(p.provider, "entra");
    assert_eq!(
        p.subject,
        format!("{}/0a1b2c3d-0000-4000-8000-000000000001", idp.tenant)
    );
    assert_eq!(p.tenant_id.as_deref(), Some(idp.tenant.as_str()));
    assert_eq!(p.display_name, "reader-v2", "v2: display name from azp");
    assert_eq!(p.kind, PrincipalKind::App);
    assert_eq!(p.roles, vec!["Reports.Reader"]);
    assert!(p.groups.is_empty());
    assert_eq!(p.token_id.as_deref(), claims["uti"].as_str());
    assert_eq!(p.expires_at, claims["exp"].as_i64());

    let token = idp.token("writer-v1").await;
    let claims = claims_of(&token);
    assert_eq!(claims["ver"], "1.0");
    assert!(claims.get("azp").is_none());
    let p = auth.authenticate(&token).await.unwrap();
    assert_eq!(
        p.subject,
        format!("{}/0a1b2c3d-0000-4000-8000-000000000002", idp.tenant)
    );
    assert_eq!(p.display_name, "writer-v1", "v1: display name from appid");
    assert_eq!(p.kind, PrincipalKind::App);
    assert_eq!(p.roles, vec!["Orders.Writer", "Reports.Reader"]);
    assert_eq!(p.token_id.as_deref(), claims["uti"].as_str());

    // Both came from one discovery and one JWKS fetch.
    assert_eq!(auth.jwks_fetch_count("entra"), Some(1));
}

#[tokio::test]
async fn groups_and_user_tokens() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);

    let p = auth
        .authenticate(&idp.token("groups-v2").await)
        .await
        .unwrap();
    assert_eq!(
        p.groups,
        vec!["7d0b3a4e-1111-4000-8000-00000000000a", "dba-oncall"]
    );
    assert!(p.in_group("dba-oncall"));

    let p = auth
        .authenticate(&idp.token("user-v2").await)
        .await
        .unwrap();
    assert_eq!(
        p.kind,
        PrincipalKind::User,
        "scp and idtyp=user make a person"
    );
    assert_eq!(p.display_name, "Ada Lovelace");
}

#[tokio::test]
async fn refuses_roleless_app_token_unless_allowed() {
    let idp = OidcProvider::start().await;
    let token = idp.token("noroles-v2").await;

    let err = authenticator(&idp).authenticate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::AppWithoutRoles { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("app-only token carries no roles claim"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("any app in the tenant can obtain such a token"),
        "{err}"
    );

    let lenient = Authenticator::new(
        vec![ProviderSettings {
            allow_app_without_roles: true,
            ..entra(&idp)
        }],
        None,
    )
    .unwrap();
    let p = lenient.authenticate(&token).await.unwrap();
    assert!(p.roles.is_empty());
    assert_eq!(p.kind, PrincipalKind::App);
}

#[tokio::test]
async fn refuses_groups_overage() {
    let idp = OidcProvider::start().await;
    let token = idp.token("overage-v2").await;
    assert!(claims_of(&token)["_claim_names"]["groups"].is_string());
    let err = authenticator(&idp).authenticate(&token).await.unwrap_err();
    assert_eq!(err, AuthError::GroupsOverage);
    assert!(err.to_string().contains("groups claim overflowed"), "{err}");
    assert!(
        err.to_string().contains("Graph lookup is not configured"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_token_for_another_audience() {
    let idp = OidcProvider::start().await;
    let token = idp.token_for("reader-v2", "api://other").await;
    let err = authenticator(&idp).authenticate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::WrongAudience { .. }), "{err}");
    assert!(err.to_string().contains("api://other"), "{err}");
}

#[tokio::test]
async fn refuses_untrusted_issuer() {
    let idp = OidcProvider::start().await;
    let other = OidcProvider::start().await;
    let token = other.token("reader-v2").await;
    let err = authenticator(&idp).authenticate(&token).await.unwrap_err();
    assert_eq!(err, AuthError::UntrustedIssuer(other.issuer.clone()));
    assert!(err.to_string().contains("is not trusted"), "{err}");
}

#[tokio::test]
async fn refuses_alg_none_and_hmac_with_the_public_key() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);
    let real = idp.token("reader-v2").await;
    let kid = header_of(&real)["kid"].as_str().unwrap().to_string();
    let claims = claims_of(&real);

    // alg none: header and claims of a real token, no signature.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": kid}).to_string()),
        real.split('.').nth(1).unwrap()
    );
    let err = auth.authenticate(&none).await.unwrap_err();
    assert_eq!(err, AuthError::AlgNone);
    assert!(err.to_string().contains("alg `none`"), "{err}");

    // HS256 keyed with the provider's RSA public key (PEM): the classic key confusion.
    let jwks = idp.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    let pem = rsa_spki_pem(jwk);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let hs = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let err = auth.authenticate(&hs).await.unwrap_err();
    assert_eq!(err, AuthError::SymmetricAlgorithm("HS256".into()));
    assert!(
        err.to_string().contains("shared-secret algorithm HS256"),
        "{err}"
    );

    // Refused before any key was fetched.
    assert_eq!(auth.jwks_fetch_count("entra"), Some(0));
    // The genuine token still works.
    assert!(auth.authenticate(&real).await.is_ok());
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);
    let real = idp.token("reader-v2").await;
    auth.authenticate(&real).await.unwrap();
    assert_eq!(auth.jwks_fetch_count("entra"), Some(1));

    let claims = claims_of(&real);
    let mut counts = Vec::new();
    for kid in ["made-up-1", "made-up-2"] {
        let token = compact(
            &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            &claims,
            sign_rs256_with_fresh_key,
        );
        let err = auth.authenticate(&token).await.unwrap_err();
        assert_eq!(
            err,
            AuthError::UnknownKey {
                provider: "entra".into(),
                kid: kid.into()
            },
            "{err}"
        );
        assert!(
            err.to_string().contains("has no signing key `made-up"),
            "{err}"
        );
        counts.push(auth.jwks_fetch_count("entra").unwrap());
    }
    // At most one fetch per 5 minutes: the first token's fetch was just now, so neither
    // unknown kid causes another.
    assert_eq!(counts, vec![1, 1], "JWKS fetches after each unknown kid");
}

#[tokio::test]
async fn refuses_same_kid_signed_by_another_key_and_tampered_claims() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);
    let real = idp.token("reader-v2").await;
    let header = header_of(&real);

    // Valid-looking: the provider's kid and claims, signed by a key the attacker made.
    let forged = compact(&header, &claims_of(&real), sign_rs256_with_fresh_key);
    let err = auth.authenticate(&forged).await.unwrap_err();
    assert!(matches!(err, AuthError::BadSignature { .. }), "{err}");

    // Genuine signature, claims changed (a role added).
    let mut claims = claims_of(&real);
    claims["roles"] = json!(["Reports.Reader", "Orders.Admin"]);
    let parts: Vec<&str> = real.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(claims.to_string()), parts[2]);
    let err = auth.authenticate(&tampered).await.unwrap_err();
    assert!(matches!(err, AuthError::BadSignature { .. }), "{err}");

    // The header switched to PS256 over the genuine RS256 signature.
    let mut ps_header = header.clone();
    ps_header["alg"] = json!("PS256");
    let ps = format!("{}.{}.{}", b64(ps_header.to_string()), parts[1], parts[2]);
    let err = auth.authenticate(&ps).await.unwrap_err();
    // The provider's JWK says alg RS256, so that key may not verify PS256 at all.
    assert!(
        matches!(err, AuthError::KeyAlgorithmMismatch { .. }),
        "{err}"
    );

    assert!(auth.authenticate(&real).await.is_ok());
}

#[tokio::test]
async fn refuses_malformed_and_oversized_tokens() {
    let idp = OidcProvider::start().await;
    let auth = authenticator(&idp);
    let real = idp.token("reader-v2").await;
    let parts: Vec<&str> = real.split('.').collect();

    let bad_base64 = format!("{}.{}!!.{}", parts[0], parts[1], parts[2]);
    let err = auth.authenticate(&bad_base64).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed(m) if m.contains("base64")),
        "{err}"
    );

    let bad_json = format!("{}.{}.{}", parts[0], b64("{\"iss\": "), parts[2]);
    let err = auth.authenticate(&bad_json).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Malformed(m) if m.contains("JSON")),
        "{err}"
    );

    let two_parts = format!("{}.{}", parts[0], parts[1]);
    assert!(matches!(
        auth.authenticate(&two_parts).await.unwrap_err(),
        AuthError::Malformed(_)
    ));

    let mut claims = claims_of(&real);
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let huge = compact(&header_of(&real), &claims, |_| vec![0; 256]);
    let err = auth.authenticate(&huge).await.unwrap_err();
    assert!(matches!(err, AuthError::TooLarge { .. }), "{err}");

    assert_eq!(auth.authenticate("").await.unwrap_err(), AuthError::Empty);
    assert_eq!(
        auth.jwks_fetch_count("entra"),
        Some(0),
        "nothing malformed reaches the key fetch"
    );
}

#[tokio::test]
async fn keeps_validating_with_cached_keys_when_provider_is_down() {
    let mut idp = OidcProvider::start().await;
    let auth = authenticator(&idp);
    let first = idp.token("reader-v2").await;
    let second = idp.token("writer-v1").await;
    auth.authenticate(&first).await.unwrap();

    idp.stop();
    // `second` is not in the token cache: this is a full validation with cached keys.
    let p = auth.authenticate(&second).await.unwrap();
    assert_eq!(p.display_name, "writer-v1");

    // A fresh authenticator, with no keys cached, says the provider is unreachable.
    let cold = authenticator(&idp);
    let err = cold.authenticate(&second).await.unwrap_err();
    assert!(
        matches!(err, AuthError::ProviderUnavailable { .. }),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn without_the_entra_setting_tokens_are_read_generically() {
    // The same provider, not declared Entra: whether the Entra rules apply is the
    // configuration's call, not the token's, so its `tid` and `oid` mean nothing.
    let idp = OidcProvider::start().await;
    let generic = Authenticator::new(
        vec![ProviderSettings {
            entra: false,
            ..entra(&idp)
        }],
        None,
    )
    .unwrap();
    let p = generic
        .authenticate(&idp.token("reader-v2").await)
        .await
        .unwrap();
    assert_eq!(
        p.subject, "0a1b2c3d-0000-4000-8000-000000000001",
        "from sub"
    );
    assert_eq!(p.tenant_id, None);
    assert_eq!(p.display_name, "reader-v2");
    // Nor do Entra's refusals apply: a role-less app token passes.
    let p = generic
        .authenticate(&idp.token("noroles-v2").await)
        .await
        .unwrap();
    assert!(p.roles.is_empty());
}
