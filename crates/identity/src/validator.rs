//! The [`Authenticator`]: one credential in, a [`Principal`] or a reason out.
//!
//! Order of checks for a token, cheapest and least trusting first (DESIGN.md §2):
//!
//! 1. size (16 KiB) before any parsing; then the token cache;
//! 2. structure and header (`token`): three parts, base64url, JSON, algorithm in
//!    {RS256, PS256, ES256}, `kid` present;
//! 3. the provider, chosen by the still unverified `iss` (exact match; an Entra v2 issuer
//!    of the public cloud also answers for its tenant's v1 issuer);
//! 4. the key by `kid` from that provider's JWKS (`oidc`) and the signature;
//! 5. `aud` against the provider's audiences, `exp` (required), `nbf` and `iat`, with the
//!    clock skew leeway (60 s);
//! 6. claims to principal (`principal`, [`crate::entra`]); for an Entra provider (decided
//!    from its configuration when the authenticator is built, see
//!    [`ProviderSettings::entra`]) that applies the Entra rules: access tokens only, `tid`
//!    of the provider's tenant, role-less app tokens, groups overage.
//!
//! Discovery and JWKS requests follow no redirects: both URLs are the provider's own, and
//! a redirect could only lead somewhere the configuration did not name, possibly from
//! https down to plain http.
//!
//! Credentials starting with `sk_sluice_` are API keys ([`crate::api_key`]) and never reach
//! the token path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sluice_core::Principal;

use crate::api_key::{self, ApiKeyDirectory, API_KEY_PREFIX, API_KEY_PROVIDER};
use crate::cache::TokenCache;
use crate::entra::{self, entra_v1_issuer};
use crate::error::{shown, AuthError, IdentityError};
use crate::local::LocalIssuer;
use crate::oidc::jwks::{KeySet, VerifyingKey};
use crate::oidc::{self, KeyPolicy, RemoteKeys};
use crate::principal::{self, ProviderRules};
use crate::token::{self, MAX_TOKEN_BYTES};

/// One trusted identity provider, as configured under `identity.providers`.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Appears as `Principal::provider` and in policy `match: { provider: ... }`.
    pub name: String,
    pub source: ProviderSource,
    /// Accepted `aud` values. Required for OIDC providers; for the local issuer, empty
    /// means [`LocalIssuer::default_audience`].
    pub audiences: Vec<String>,
    /// Entra: accept app-only tokens that carry no `roles` claim. Default false.
    pub allow_app_without_roles: bool,
    /// Treat this provider as Microsoft Entra ID (principal keyed on `tid`/`oid`, access
    /// tokens only, the tenant check, role-less app tokens and groups overage refused).
    /// Default false, and not needed for Entra itself: a provider whose issuer is
    /// `https://login.microsoftonline.com/<tid>/v2.0` or `https://sts.windows.net/<tid>/`
    /// (or a sovereign cloud's, see [`crate::entra::is_entra_issuer`]) is Entra anyway.
    /// Set it for an Entra-shaped issuer elsewhere, such as a test provider at
    /// `http://127.0.0.1:<port>/<tid>/v2.0`: its tokens must then be of the tenant named
    /// by the `<tid>` path segment (when the path has that shape). Only OIDC providers may
    /// set it.
    pub entra: bool,
}

impl ProviderSettings {
    /// The local issuer as a provider named `name`, accepting its default audience.
    pub fn local(name: impl Into<String>, issuer: LocalIssuer) -> Self {
        ProviderSettings {
            name: name.into(),
            source: ProviderSource::Local { issuer },
            audiences: Vec::new(),
            allow_app_without_roles: false,
            entra: false,
        }
    }
}

/// Where a provider's signing keys come from.
#[derive(Debug, Clone)]
pub enum ProviderSource {
    /// OIDC discovery at `<issuer>/.well-known/openid-configuration`, then its jwks_uri.
    Oidc { issuer: String },
    /// The gateway's own local issuer, keys from the data dir (same validation path).
    Local { issuer: LocalIssuer },
}

/// Tuning of an [`Authenticator`]. The defaults are the contract of DESIGN.md §2; tests
/// shorten them to observe expiry and refetching without waiting minutes.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// Clock skew allowed on `exp`, `nbf` and `iat`. Default 60 s.
    pub leeway: Duration,
    /// Least time between two JWKS fetches of one provider caused by unknown `kid`s or old
    /// keys. Default 5 minutes.
    pub jwks_refetch_interval: Duration,
    /// While a provider has never delivered keys, least time between two attempts.
    /// Default 10 s.
    pub jwks_retry_after_failure: Duration,
    /// Keys older than this are refreshed on use (same rate limit). Default 1 hour.
    pub jwks_max_age: Duration,
    /// Timeout of each discovery or JWKS request. Default 5 s.
    pub http_timeout: Duration,
    /// Longest a validated token is remembered (never past its `exp`). Default 5 minutes;
    /// zero disables the cache.
    pub token_cache_ttl: Duration,
    /// Most validated tokens remembered. Default 10,000.
    pub token_cache_capacity: usize,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            leeway: Duration::from_secs(60),
            jwks_refetch_interval: Duration::from_secs(300),
            jwks_retry_after_failure: Duration::from_secs(10),
            jwks_max_age: Duration::from_secs(3600),
            http_timeout: Duration::from_secs(5),
            token_cache_ttl: Duration::from_secs(300),
            token_cache_capacity: 10_000,
        }
    }
}

enum Keys {
    /// In an `Arc` so a refresh of old keys can run in a task of its own while requests
    /// go on with the cached ones.
    Remote(Arc<RemoteKeys>),
    Local(KeySet),
}

struct Provider {
    rules: ProviderRules,
    /// The configured issuer (the one `iss` must equal, or its v1 alias).
    issuer: String,
    audiences: Vec<String>,
    keys: Keys,
}

impl Provider {
    async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        match &self.keys {
            Keys::Remote(remote) => remote.key(kid).await,
            Keys::Local(set) => set.get(kid).ok_or_else(|| AuthError::UnknownKey {
                provider: self.rules.name.clone(),
                kid: kid.to_string(),
            }),
        }
    }
}

struct Inner {
    providers: Vec<Provider>,
    /// `iss` value → index into `providers`.
    by_issuer: HashMap<String, usize>,
    api_keys: Option<Arc<dyn ApiKeyDirectory>>,
    /// Permits for API key lookups in flight ([`api_key::MAX_CONCURRENT_LOOKUPS`]).
    api_key_lookups: Arc<tokio::sync::Semaphore>,
    cache: TokenCache,
    leeway: i64,
}

/// Validates tokens and API keys. Cheap to clone; all clones share keys and cache.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "providers",
                &self
                    .inner
                    .providers
                    .iter()
                    .map(|p| &p.rules.name)
                    .collect::<Vec<_>>(),
            )
            .field("api_keys", &self.inner.api_keys.is_some())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator with the default [`AuthOptions`].
    pub fn new(
        providers: Vec<ProviderSettings>,
        api_keys: Option<Arc<dyn ApiKeyDirectory>>,
    ) -> Result<Self, IdentityError> {
        Self::with_options(providers, api_keys, AuthOptions::default())
    }

    /// Checks the provider settings and builds the authenticator. No network access
    /// happens here: keys are fetched on first use (or by [`Authenticator::prefetch`]).
    pub fn with_options(
        providers: Vec<ProviderSettings>,
        api_keys: Option<Arc<dyn ApiKeyDirectory>>,
        options: AuthOptions,
    ) -> Result<Self, IdentityError> {
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .connect_timeout(options.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdentityError::HttpClient(e.to_string()))?;
        let policy = KeyPolicy {
            refetch_interval: options.jwks_refetch_interval,
            retry_after_failure: options.jwks_retry_after_failure,
            max_age: options.jwks_max_age,
        };

        let mut built = Vec::with_capacity(providers.len());
        let mut by_issuer: HashMap<String, usize> = HashMap::new();
        for settings in providers {
            let invalid = |reason: String| IdentityError::InvalidProvider {
                provider: settings.name.clone(),
                reason,
            };
            if settings.name.trim().is_empty() {
                return Err(invalid("the provider name is empty".into()));
            }
            // `apikey` principals come from the key store only; an OIDC provider by that
            // name would let its tokens pass for API-key principals in policies.
            if settings.name == API_KEY_PROVIDER {
                return Err(invalid(format!(
                    "`{API_KEY_PROVIDER}` is reserved for API-key principals"
                )));
            }
            if built
                .iter()
                .any(|p: &Provider| p.rules.name == settings.name)
            {
                return Err(invalid("two providers have this name".into()));
            }
            if settings.audiences.iter().any(|a| a.is_empty()) {
                return Err(invalid("an audience is empty".into()));
            }
            if settings.entra && matches!(settings.source, ProviderSource::Local { .. }) {
                return Err(invalid(
                    "`entra` applies to OIDC providers only, not to the local issuer".into(),
                ));
            }

            let (issuer, audiences, keys) = match &settings.source {
                ProviderSource::Oidc { issuer } => {
                    oidc::check_issuer_url(issuer).map_err(&invalid)?;
                    if settings.audiences.is_empty() {
                        return Err(invalid(
                            "no audiences are configured; without them a token issued for any application of the provider would be accepted".into(),
                        ));
                    }
                    let keys = Keys::Remote(Arc::new(RemoteKeys::new(
                        &settings.name,
                        issuer,
                        http.clone(),
                        policy,
                    )));
                    (issuer.clone(), settings.audiences.clone(), keys)
                }
                ProviderSource::Local { issuer } => {
                    let set =
                        KeySet::from_jwks(&settings.name, &issuer.jwks()).map_err(&invalid)?;
                    let audiences = if settings.audiences.is_empty() {
                        vec![LocalIssuer::default_audience().to_string()]
                    } else {
                        settings.audiences.clone()
                    };
                    (issuer.issuer().to_string(), audiences, Keys::Local(set))
                }
            };

            let index = built.len();
            let mut issuers = vec![issuer.clone()];
            issuers.extend(entra_v1_issuer(&issuer));
            for iss in issuers {
                if let Some(other) = by_issuer.insert(iss.clone(), index) {
                    return Err(invalid(format!(
                        "issuer `{iss}` is also the issuer of provider `{}`",
                        built[other].rules.name
                    )));
                }
            }
            // Entra by issuer, or by the explicit setting; the tenant from the issuer.
            let (entra, tenant) = match entra::issuer_tenant(&issuer) {
                Some(tenant) => (true, Some(tenant.to_string())),
                None if settings.entra => (true, entra::path_tenant(&issuer)),
                None => (false, None),
            };
            built.push(Provider {
                rules: ProviderRules {
                    name: settings.name.clone(),
                    allow_app_without_roles: settings.allow_app_without_roles,
                    entra,
                    tenant,
                },
                issuer,
                audiences,
                keys,
            });
        }

        Ok(Authenticator {
            inner: Arc::new(Inner {
                providers: built,
                by_issuer,
                api_keys,
                api_key_lookups: Arc::new(tokio::sync::Semaphore::new(
                    api_key::MAX_CONCURRENT_LOOKUPS,
                )),
                cache: TokenCache::new(
                    options.token_cache_capacity,
                    i64::try_from(options.token_cache_ttl.as_secs()).unwrap_or(i64::MAX),
                ),
                leeway: i64::try_from(options.leeway.as_secs()).unwrap_or(i64::MAX),
            }),
        })
    }

    /// Validates a bearer token OR an API key (API keys are recognised by their prefix
    /// `sk_sluice_`).
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthError> {
        if credential.is_empty() {
            return Err(AuthError::Empty);
        }
        if credential.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge {
                len: credential.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if credential.starts_with(API_KEY_PREFIX) {
            return match &self.inner.api_keys {
                Some(directory) => {
                    api_key::authenticate(directory, &self.inner.api_key_lookups, credential).await
                }
                None => Err(AuthError::ApiKeysDisabled),
            };
        }

        let hash: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        if let Some(principal) = self.inner.cache.get(&hash, unix_now()) {
            return Ok(principal);
        }

        let token = token::parse(credential)?;
        let iss = match token.claims.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            Some(_) => {
                return Err(AuthError::InvalidClaim {
                    claim: "iss",
                    reason: "it is not a string".into(),
                })
            }
            None => return Err(AuthError::MissingIssuer),
        };
        let provider = self
            .inner
            .by_issuer
            .get(iss)
            .map(|&i| &self.inner.providers[i])
            .ok_or_else(|| AuthError::UntrustedIssuer(iss.to_string()))?;

        let key = provider.key(&token.kid).await?;
        key.verify(
            &provider.rules.name,
            token.alg,
            token.signing_input,
            token.signature,
        )?;

        let now = unix_now();
        let exp = self.check_claims(provider, &token.claims, now)?;
        let principal = principal::from_claims(&provider.rules, &token.claims, exp)?;
        self.inner.cache.insert(hash, principal.clone(), exp, now);
        Ok(principal)
    }

    /// Audience and times; returns `exp`.
    fn check_claims(
        &self,
        provider: &Provider,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<i64, AuthError> {
        let leeway = self.inner.leeway;
        let leeway_secs = leeway as u64;

        let audiences = principal::string_list(claims, "aud")?;
        if audiences.is_empty() {
            return Err(AuthError::MissingClaim("aud"));
        }
        if !audiences.iter().any(|a| provider.audiences.contains(a)) {
            return Err(AuthError::WrongAudience {
                provider: provider.rules.name.clone(),
                found: quote_list(&audiences, true),
                expected: quote_list(&provider.audiences, false),
            });
        }

        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired {
                exp: rfc3339(exp),
                now: rfc3339(now),
                leeway: leeway_secs,
            });
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if now.saturating_add(leeway) < nbf {
                return Err(AuthError::NotYetValid {
                    nbf: rfc3339(nbf),
                    now: rfc3339(now),
                    leeway: leeway_secs,
                });
            }
        }
        if let Some(iat) = numeric_date(claims, "iat")? {
            if iat > now.saturating_add(leeway) {
                return Err(AuthError::IssuedInFuture {
                    iat: rfc3339(iat),
                    now: rfc3339(now),
                    leeway: leeway_secs,
                });
            }
        }
        Ok(exp)
    }

    /// How many JWKS requests provider `name` has sent, or `None` for an unknown name or
    /// the local issuer (whose keys need no fetching).
    pub fn jwks_fetch_count(&self, provider: &str) -> Option<u64> {
        self.inner
            .providers
            .iter()
            .find(|p| p.rules.name == provider)
            .and_then(|p| match &p.keys {
                Keys::Remote(remote) => Some(remote.fetch_count()),
                Keys::Local(_) => None,
            })
    }

    /// Names and issuers of the configured providers, in configuration order.
    pub fn providers(&self) -> Vec<(String, String)> {
        self.inner
            .providers
            .iter()
            .map(|p| (p.rules.name.clone(), p.issuer.clone()))
            .collect()
    }

    /// Fetches every remote provider's keys that are not cached yet, for a start-up check.
    /// Returns, per provider, the number of keys or why they could not be fetched. A
    /// failure is not fatal: keys are fetched again on use.
    pub async fn prefetch(&self) -> Vec<(String, Result<usize, String>)> {
        let mut out = Vec::new();
        for p in &self.inner.providers {
            let result = match &p.keys {
                Keys::Remote(remote) => remote.prefetch().await,
                Keys::Local(set) => Ok(set.len()),
            };
            out.push((p.rules.name.clone(), result));
        }
        out
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds, possibly fractional.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15) {
                Ok(Some(f.floor() as i64))
            } else {
                Err(AuthError::InvalidClaim {
                    claim: name,
                    reason: "it is not a valid time".into(),
                })
            }
        }
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name,
            reason: "it is not a number of seconds".into(),
        }),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Most audiences of a refused token named in the message; a token can carry hundreds.
const MAX_SHOWN_AUDIENCES: usize = 5;

/// `a`, `b`, … for a message. The token's own values (`untrusted`) go through `shown` and
/// are capped at [`MAX_SHOWN_AUDIENCES`]; the configured ones are shown as they are.
fn quote_list(items: &[String], untrusted: bool) -> String {
    let limit = if untrusted {
        MAX_SHOWN_AUDIENCES
    } else {
        usize::MAX
    };
    let mut quoted: Vec<String> = items
        .iter()
        .take(limit)
        .map(|i| {
            if untrusted {
                format!("`{}`", shown(i))
            } else {
                format!("`{i}`")
            }
        })
        .collect();
    if items.len() > limit {
        quoted.push(format!("and {} more", items.len() - limit));
    }
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shareable_across_tasks() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<Authenticator>();
        assert_shareable::<LocalIssuer>();
    }

    #[test]
    fn numeric_dates() {
        let c = json!({"a": 5, "b": 5.9, "c": "5", "d": 1e300})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(numeric_date(&c, "a").unwrap(), Some(5));
        assert_eq!(numeric_date(&c, "b").unwrap(), Some(5));
        assert!(numeric_date(&c, "c").is_err());
        assert!(numeric_date(&c, "d").is_err());
        assert_eq!(numeric_date(&c, "missing").unwrap(), None);
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    fn oidc(name: &str, issuer: &str, aud: &[&str]) -> ProviderSettings {
        ProviderSettings {
            name: name.into(),
            source: ProviderSource::Oidc {
                issuer: issuer.into(),
            },
            audiences: aud.iter().map(|a| a.to_string()).collect(),
            allow_app_without_roles: false,
            entra: false,
        }
    }

    #[test]
    fn configuration_checks() {
        let tid = "3f1b6a52-7c0e-4d7a-9b1e-5a2c8d4e6f70";
        let entra = format!("https://login.microsoftonline.com/{tid}/v2.0");
        let ok = Authenticator::new(vec![oidc("entra", &entra, &["api://sluice"])], None).unwrap();
        // The v1 issuer of the same tenant routes to the same provider.
        assert!(ok
            .inner
            .by_issuer
            .contains_key(&format!("https://sts.windows.net/{tid}/")));

        let cases = [
            vec![oidc("entra", &entra, &[])],
            vec![oidc("apikey", &entra, &["a"])],
            vec![oidc("", &entra, &["a"])],
            vec![
                oidc("a", &entra, &["x"]),
                oidc("a", "https://other", &["x"]),
            ],
            vec![oidc("a", &entra, &["x"]), oidc("b", &entra, &["x"])],
            vec![oidc("a", "http://idp.example.com", &["x"])],
            vec![oidc("a", "https://idp", &[""])],
        ];
        for providers in cases {
            let names: Vec<_> = providers.iter().map(|p| p.name.clone()).collect();
            assert!(Authenticator::new(providers, None).is_err(), "{names:?}");
        }
    }

    #[test]
    fn entra_is_decided_by_configuration() {
        let tid = "3f1b6a52-7c0e-4d7a-9b1e-5a2c8d4e6f70";
        let rules = |settings: ProviderSettings| {
            let auth = Authenticator::new(vec![settings], None).unwrap();
            let p = &auth.inner.providers[0];
            (p.rules.entra, p.rules.tenant.clone())
        };
        for issuer in [
            format!("https://login.microsoftonline.com/{tid}/v2.0"),
            format!("https://login.microsoftonline.us/{tid}/v2.0"),
            format!("https://login.chinacloudapi.cn/{tid}/v2.0"),
            format!("https://login.partner.microsoftonline.cn/{tid}/v2.0"),
            format!("https://sts.windows.net/{tid}/"),
        ] {
            assert_eq!(
                rules(oidc("e", &issuer, &["a"])),
                (true, Some(tid.to_string())),
                "{issuer}"
            );
        }
        let test_provider = format!("http://127.0.0.1:1/{tid}/v2.0");
        assert_eq!(rules(oidc("e", &test_provider, &["a"])), (false, None));
        let explicit = |issuer: &str| ProviderSettings {
            entra: true,
            ..oidc("e", issuer, &["a"])
        };
        assert_eq!(
            rules(explicit(&test_provider)),
            (true, Some(tid.to_string()))
        );
        assert_eq!(rules(explicit("https://idp.example.com")), (true, None));
        assert_eq!(
            rules(oidc("g", "https://idp.example.com", &["a"])),
            (false, None)
        );

        // Only the public cloud's v2 issuer gets the v1 alias.
        let gov = format!("https://login.microsoftonline.us/{tid}/v2.0");
        let auth = Authenticator::new(vec![oidc("gov", &gov, &["a"])], None).unwrap();
        assert_eq!(auth.inner.by_issuer.len(), 1);

        // `entra` on the local issuer makes no sense and is refused.
        let dir = tempfile::tempdir().unwrap();
        let local = ProviderSettings {
            name: "local".into(),
            source: ProviderSource::Local {
                issuer: LocalIssuer::load_or_create(dir.path()).unwrap(),
            },
            audiences: vec![],
            allow_app_without_roles: false,
            entra: true,
        };
        let err = Authenticator::new(vec![local], None).unwrap_err();
        assert!(err.to_string().contains("OIDC providers only"), "{err}");
    }

    /// Tokens of a provider with the given issuer, verified with a key made here: the
    /// provider is configured like a remote one (its rules come from its issuer and
    /// settings), then its keys are swapped for local ones, so no network is needed.
    mod with_local_keys {
        use super::*;
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        pub(super) const TID: &str = "3f1b6a52-7c0e-4d7a-9b1e-5a2c8d4e6f70";
        pub(super) const OTHER_TID: &str = "9a8b7c6d-1111-4222-8333-944455556666";
        const KID: &str = "test-key";

        pub(super) struct Signer {
            pub auth: Authenticator,
            key: jsonwebtoken::EncodingKey,
        }

        impl Signer {
            pub(super) fn new(settings: ProviderSettings) -> Signer {
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .unwrap();
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                        .unwrap();
                let point = pair.public_key().as_ref();
                let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": KID,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65])}]});
                let mut auth = Authenticator::new(vec![settings], None).unwrap();
                let inner = Arc::get_mut(&mut auth.inner).expect("not shared yet");
                inner.providers[0].keys = Keys::Local(KeySet::from_jwks("test", &jwks).unwrap());
                Signer {
                    auth,
                    key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
                }
            }

            pub(super) fn sign(&self, claims: &Value) -> String {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                header.kid = Some(KID.into());
                jsonwebtoken::encode(&header, claims, &self.key).unwrap()
            }

            pub(super) async fn check(&self, claims: Value) -> Result<Principal, AuthError> {
                self.auth.authenticate(&self.sign(&claims)).await
            }
        }

        /// An Entra v2 app token of `TID` for `iss`, with `patch` applied (null removes).
        pub(super) fn token(iss: &str, patch: Value) -> Value {
            let now = unix_now();
            let mut c = json!({"iss": iss, "aud": "api://sluice", "iat": now, "nbf": now,
                "exp": now + 600, "tid": TID, "oid": "o-1", "sub": "pairwise-sub",
                "azp": "client-1", "idtyp": "app", "roles": ["Reader"], "ver": "2.0",
                "uti": rand_id()});
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            c
        }

        fn rand_id() -> String {
            let mut b = [0u8; 8];
            rand::fill(&mut b);
            hex::encode(b)
        }
    }

    use with_local_keys::{token, Signer, OTHER_TID, TID};

    fn v2_issuer() -> String {
        format!("https://login.microsoftonline.com/{TID}/v2.0")
    }

    #[tokio::test]
    async fn entra_tenant_is_checked() {
        let entra = Signer::new(oidc("entra", &v2_issuer(), &["api://sluice"]));
        let v2 = v2_issuer();

        let p = entra.check(token(&v2, json!({}))).await.unwrap();
        assert_eq!(p.provider, "entra");
        assert_eq!(p.subject, format!("{TID}/o-1"));
        assert_eq!(p.tenant_id.as_deref(), Some(TID));

        // Another tenant's token under this tenant's issuer.
        let err = entra
            .check(token(&v2, json!({"tid": OTHER_TID})))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidClaim { claim: "tid", reason }
                if reason.contains(OTHER_TID) && reason.contains("`entra`")),
            "{err}"
        );
        // No tenant at all: the subject could not be placed.
        let err = entra
            .check(token(&v2, json!({"tid": null})))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::MissingClaim("tid"));
    }

    #[tokio::test]
    async fn entra_v1_token_routes_to_the_v2_provider() {
        let entra = Signer::new(oidc("entra", &v2_issuer(), &["api://sluice"]));
        let v1 = format!("https://sts.windows.net/{TID}/");
        let v1_claims = json!({"ver": "1.0", "azp": null, "appid": "client-v1"});

        let p = entra.check(token(&v1, v1_claims.clone())).await.unwrap();
        assert_eq!(p.provider, "entra");
        assert_eq!(p.subject, format!("{TID}/o-1"));
        assert_eq!(p.display_name, "client-v1");

        // The v1 alias is held to the same tenant.
        let mut other = v1_claims;
        other["tid"] = json!(OTHER_TID);
        let err = entra.check(token(&v1, other)).await.unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidClaim { claim: "tid", .. }),
            "{err}"
        );
        // Another tenant's v1 issuer is not an alias of this provider.
        let err = entra
            .check(token(
                &format!("https://sts.windows.net/{OTHER_TID}/"),
                json!({"tid": OTHER_TID}),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::UntrustedIssuer(_)), "{err}");
    }

    #[tokio::test]
    async fn entra_refuses_id_tokens() {
        let entra = Signer::new(oidc("entra", &v2_issuer(), &["api://sluice"]));
        let v2 = v2_issuer();
        // An ID token's `aud` is the client id, which is what a v2 access token for the
        // API carries too when the API is configured by client id.
        let id_token = json!({"aud": "api://sluice", "azp": null, "idtyp": null,
            "roles": null, "nonce": "n-0S6_WzA2Mj", "name": "Ada"});
        assert_eq!(
            entra.check(token(&v2, id_token.clone())).await.unwrap_err(),
            AuthError::IdTokenNonce
        );
        let mut no_nonce = id_token;
        no_nonce["nonce"] = Value::Null;
        assert_eq!(
            entra.check(token(&v2, no_nonce)).await.unwrap_err(),
            AuthError::NoClientApp
        );
    }

    #[tokio::test]
    async fn explicit_entra_takes_the_tenant_from_the_path() {
        let issuer = format!("http://127.0.0.1:1/{TID}/v2.0");
        let entra = Signer::new(ProviderSettings {
            entra: true,
            ..oidc("test-entra", &issuer, &["api://sluice"])
        });
        let p = entra.check(token(&issuer, json!({}))).await.unwrap();
        assert_eq!(p.subject, format!("{TID}/o-1"));
        let err = entra
            .check(token(&issuer, json!({"tid": OTHER_TID})))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidClaim { claim: "tid", .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn other_providers_ignore_tid_and_oid() {
        // The same Entra-shaped issuer without `entra: true`, and an ordinary one: `tid`
        // and `oid` in the token change nothing, the subject is `sub`.
        for issuer in [
            format!("http://127.0.0.1:1/{TID}/v2.0"),
            "https://idp.example.com".to_string(),
        ] {
            let generic = Signer::new(oidc("generic", &issuer, &["api://sluice"]));
            let p = generic
                .check(token(&issuer, json!({"tid": OTHER_TID, "azp": null})))
                .await
                .unwrap();
            assert_eq!(p.subject, "pairwise-sub");
            assert_eq!(p.tenant_id, None);
            // Nor do the Entra-only refusals apply.
            let p = generic
                .check(token(&issuer, json!({"roles": null, "nonce": "n"})))
                .await
                .unwrap();
            assert_eq!(p.kind, sluice_core::PrincipalKind::App);
        }
    }

    #[tokio::test]
    async fn wrong_audience_message_is_bounded() {
        let generic = Signer::new(oidc("g", "https://idp.example.com", &["api://sluice"]));
        // Within the token size limit, a token can still carry a few dozen long audiences.
        let many: Vec<String> = (0..40)
            .map(|i| format!("aud-{i}\n{}", "x".repeat(150)))
            .collect();
        let err = generic
            .check(token("https://idp.example.com", json!({"aud": many})))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AuthError::WrongAudience { .. }), "{msg}");
        assert!(msg.contains("and 35 more"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.len() < 1_200, "{} bytes", msg.len());
        assert!(msg.contains("`api://sluice`"), "{msg}");
    }
}
