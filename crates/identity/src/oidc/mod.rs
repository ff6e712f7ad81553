//! Signing keys of a remote OpenID Connect provider: discovery, the JWKS, and when to fetch
//! them again.
//!
//! [`RemoteKeys`] is the only place that talks to a provider. Its rules (DESIGN.md §2):
//!
//! - Discovery is fetched lazily, on the first token from the provider, and kept; it is
//!   fetched again only after a failure (of discovery, or of the JWKS it pointed to).
//! - Keys are cached. A token naming an unknown `kid` triggers a refetch, but at most one
//!   per [`KeyPolicy::refetch_interval`] (5 minutes by default) per provider: otherwise a
//!   stream of tokens with made-up `kid`s would make the gateway hammer the provider.
//! - While no key has ever been fetched, a failed fetch is retried after the shorter
//!   [`KeyPolicy::retry_after_failure`], so a provider that was down at start-up is picked
//!   up soon after it comes back.
//! - Keys older than [`KeyPolicy::max_age`] are refreshed on use (same rate limit), so a key
//!   the provider withdrew stops validating even if no new `kid` ever shows up. The
//!   refresh runs in a task of its own: the request that noticed the age, and every other
//!   one, goes on with the cached key.
//! - A provider that cannot be reached keeps being served from the keys already cached.
//!
//! One fetch runs at a time per provider (an async mutex). Requests for keys already in the
//! cache never wait for it, old keys or not: they only `try_lock` it, to start a background
//! refresh when none is running. Only a request that has no usable key (none fetched yet,
//! or an unknown `kid`) waits for a fetch.

pub(crate) mod discovery;
pub(crate) mod jwks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::error::AuthError;
use jwks::{KeySet, VerifyingKey};

/// When keys are fetched again. Part of [`crate::AuthOptions`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPolicy {
    pub refetch_interval: Duration,
    pub retry_after_failure: Duration,
    pub max_age: Duration,
}

#[derive(Default)]
struct Cached {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    /// Bumped on every successful fetch, so a task that waited for the fetch lock can see
    /// that someone else already fetched while it waited.
    generation: u64,
}

#[derive(Default)]
struct FetchState {
    jwks_uri: Option<String>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// Keys of one remote provider.
pub(crate) struct RemoteKeys {
    provider: String,
    issuer: String,
    http: reqwest::Client,
    policy: KeyPolicy,
    cached: RwLock<Cached>,
    /// In an `Arc` so a background refresh can own the guard for as long as it runs.
    fetch: Arc<tokio::sync::Mutex<FetchState>>,
    jwks_fetches: AtomicU64,
}

impl RemoteKeys {
    pub(crate) fn new(
        provider: &str,
        issuer: &str,
        http: reqwest::Client,
        policy: KeyPolicy,
    ) -> Self {
        RemoteKeys {
            provider: provider.to_string(),
            issuer: issuer.to_string(),
            http,
            policy,
            cached: RwLock::new(Cached::default()),
            fetch: Arc::new(tokio::sync::Mutex::new(FetchState::default())),
            jwks_fetches: AtomicU64::new(0),
        }
    }

    /// How many JWKS requests were sent so far.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.jwks_fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> (Option<Arc<KeySet>>, Option<Instant>, u64) {
        let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
        (c.keys.clone(), c.fetched_at, c.generation)
    }

    /// The key named `kid`, fetching the JWKS when the rules above allow it.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        let (keys, fetched_at, generation) = self.snapshot();
        if let Some(key) = keys.as_ref().and_then(|k| k.get(kid)) {
            if fetched_at.is_none_or(|t| t.elapsed() >= self.policy.max_age) {
                self.refresh_in_background(generation);
            }
            return Ok(key);
        }

        self.refresh(generation).await;

        let (keys, _, _) = self.snapshot();
        match keys {
            Some(keys) => keys.get(kid).ok_or_else(|| AuthError::UnknownKey {
                provider: self.provider.clone(),
                kid: kid.to_string(),
            }),
            None => {
                let reason = self.fetch.lock().await.last_error.clone();
                Err(AuthError::ProviderUnavailable {
                    provider: self.provider.clone(),
                    reason: reason.unwrap_or_else(|| "no key fetch has succeeded yet".into()),
                })
            }
        }
    }

    /// Starts a refresh of old keys in a task of its own, unless a fetch is already running
    /// (it will bring fresh keys), the rate limit forbids one, or there is no runtime to run
    /// it on. Never waits.
    fn refresh_in_background(self: &Arc<Self>, seen_generation: u64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(mut state) = Arc::clone(&self.fetch).try_lock_owned() else {
            return;
        };
        // Checked here too, so the many requests that see old keys between two allowed
        // fetches do not each spawn a task that would find nothing to do.
        if !self.fetch_due(&state, seen_generation) {
            return;
        }
        let this = Arc::clone(self);
        // The task owns the guard: no second fetch starts until it is done.
        handle.spawn(async move { this.refresh_locked(&mut state, seen_generation).await });
    }

    /// Fetches discovery (if needed) and the JWKS, unless the rate limit forbids it or
    /// another task fetched since `seen_generation`. Waits for a fetch already running.
    pub(crate) async fn refresh(&self, seen_generation: u64) {
        let mut state = self.fetch.lock().await;
        self.refresh_locked(&mut state, seen_generation).await;
    }

    /// Whether a fetch may start now: nobody fetched since `seen_generation`, and the last
    /// attempt is long enough ago.
    fn fetch_due(&self, state: &FetchState, seen_generation: u64) -> bool {
        let (keys, _, generation) = self.snapshot();
        if generation != seen_generation {
            return false;
        }
        let wait = if keys.is_some() {
            self.policy.refetch_interval
        } else {
            self.policy.retry_after_failure
        };
        state.last_attempt.is_none_or(|t| t.elapsed() >= wait)
    }

    /// [`RemoteKeys::refresh`] with the fetch lock held.
    async fn refresh_locked(&self, state: &mut FetchState, seen_generation: u64) {
        if !self.fetch_due(state, seen_generation) {
            return;
        }
        state.last_attempt = Some(Instant::now());
        let had_keys = self.snapshot().0.is_some();

        match self.fetch_keys(state).await {
            Ok(set) => {
                tracing::info!(provider = %self.provider, keys = set.len(), "fetched identity provider signing keys");
                state.last_error = None;
                let mut c = self.cached.write().unwrap_or_else(|e| e.into_inner());
                c.keys = Some(Arc::new(set));
                c.fetched_at = Some(Instant::now());
                c.generation += 1;
            }
            Err(reason) => {
                if had_keys {
                    tracing::warn!(provider = %self.provider, %reason, "could not refresh signing keys; still using the cached ones");
                } else {
                    tracing::warn!(provider = %self.provider, %reason, "could not fetch signing keys");
                }
                state.last_error = Some(reason);
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let jwks_uri = match &state.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = discovery::fetch_jwks_uri(&self.http, &self.issuer).await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        let result = discovery::get_json(&self.http, &jwks_uri)
            .await
            .and_then(|doc| KeySet::from_jwks(&self.provider, &doc));
        if result.is_err() {
            // The provider may have moved its keys; discover again next time.
            state.jwks_uri = None;
        }
        result
    }

    /// Fetches the keys now if none are cached (start-up warm-up); reports the outcome.
    pub(crate) async fn prefetch(&self) -> Result<usize, String> {
        let (keys, _, generation) = self.snapshot();
        if keys.is_none() {
            self.refresh(generation).await;
        }
        match self.snapshot().0 {
            Some(keys) => Ok(keys.len()),
            None => Err(self
                .fetch
                .lock()
                .await
                .last_error
                .clone()
                .unwrap_or_else(|| "no key fetch has succeeded yet".into())),
        }
    }
}

/// Checks an OIDC issuer from the configuration: an absolute https URL, or plain http only
/// on loopback, because keys fetched over plain HTTP from elsewhere could be swapped by
/// anyone on the path.
pub(crate) fn check_issuer_url(issuer: &str) -> Result<(), String> {
    let url = Url::parse(issuer).map_err(|e| format!("issuer `{issuer}` is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "issuer `{issuer}` must not have a query or fragment"
        ));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "issuer `{issuer}` is plain http; signing keys must be fetched over https (plain http is allowed on loopback only)"
        )),
        other => Err(format!("issuer `{issuer}` has scheme `{other}`; expected https")),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls() {
        assert!(check_issuer_url("https://login.microsoftonline.com/t/v2.0").is_ok());
        assert!(check_issuer_url("http://127.0.0.1:8080/t/v2.0").is_ok());
        assert!(check_issuer_url("http://localhost:8080").is_ok());
        assert!(check_issuer_url("http://[::1]:8080").is_ok());
        assert!(check_issuer_url("http://idp.example.com").is_err());
        assert!(check_issuer_url("ftp://idp.example.com").is_err());
        assert!(check_issuer_url("https://idp?x=1").is_err());
        assert!(check_issuer_url("idp.example.com").is_err());
    }
}
