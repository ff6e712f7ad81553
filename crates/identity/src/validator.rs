//! The [`Authenticator`]: one credential in, a [`Principal`] or a reason out.
//!
//! Order of checks for a token, cheapest and least trusting first (DESIGN.md §2):
//!
//! 1. size (16 KiB) before any parsing; then the token cache;
//! 2. structure and header (`token`): three parts, base64url, JSON, algorithm in
//!    {RS256, PS256, ES256}, `kid` present;
//! 3. the provider, chosen by the still unverified `iss` (exact match; an Entra v2 issuer
//!    also answers for its tenant's v1 issuer);
//! 4. the key by `kid` from that provider's JWKS (`oidc`) and the signature;
//! 5. `aud` against the provider's audiences, `exp` (required), `nbf` and `iat`, with the
//!    clock skew leeway (60 s);
//! 6. claims to principal (`principal`, [`crate::entra`]), which applies the Entra
//!    rules (role-less app tokens, groups overage).
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
use crate::error::{AuthError, IdentityError};
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
    Remote(Box<RemoteKeys>),
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
            .redirect(reqwest::redirect::Policy::limited(3))
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

            let (issuer, audiences, keys) = match &settings.source {
                ProviderSource::Oidc { issuer } => {
                    oidc::check_issuer_url(issuer).map_err(&invalid)?;
                    if settings.audiences.is_empty() {
                        return Err(invalid(
                            "no audiences are configured; without them a token issued for any application of the provider would be accepted".into(),
                        ));
                    }
                    let keys = Keys::Remote(Box::new(RemoteKeys::new(
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
            built.push(Provider {
                rules: ProviderRules {
                    name: settings.name.clone(),
                    allow_app_without_roles: settings.allow_app_without_roles,
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
                Some(directory) => api_key::authenticate(directory, credential).await,
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
                found: quote_list(&audiences),
                expected: quote_list(&provider.audiences),
            });
        }

        // An Entra provider's tokens must be of its tenant: the subject is keyed on `tid`,
        // so a token without it (or of another tenant) cannot be placed.
        if let Some(tenant) = entra::issuer_tenant(&provider.issuer) {
            match principal::claim_str(claims, "tid")? {
                Some(tid) if tid.eq_ignore_ascii_case(tenant) => {}
                Some(tid) => {
                    return Err(AuthError::InvalidClaim {
                        claim: "tid",
                        reason: format!(
                            "tenant `{tid}` is not the tenant `{tenant}` of provider `{}`",
                            provider.rules.name
                        ),
                    })
                }
                None => return Err(AuthError::MissingClaim("tid")),
            }
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

fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
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
}
