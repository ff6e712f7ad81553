//! Validated tokens, remembered so a busy agent's token is verified once, not per
//! connection (an RS256 check costs ~27 µs, ES256 ~72 µs).
//!
//! Keyed by SHA-256 of the token (the cache never holds a token itself). An entry lives
//! until `min(exp, validated_at + ttl)` (ttl 5 minutes by default), so it never outlives the
//! token's `exp` (the leeway applies to fresh validation only), and a key the provider
//! withdraws stops being honoured within the ttl. Bounded: least recently used entries go
//! first. Each [`crate::Authenticator`] has its own cache, so a principal validated under
//! one set of providers is never served under another.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use sluice_core::Principal;

pub(crate) type TokenHash = [u8; 32];

struct Entry {
    principal: Principal,
    valid_until: i64,
}

pub(crate) struct TokenCache {
    entries: Mutex<LruCache<TokenHash, Entry>>,
    ttl_secs: i64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize, ttl_secs: i64) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        TokenCache {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl_secs,
        }
    }

    /// The cached principal, if the entry is still valid at `now` (Unix seconds).
    pub(crate) fn get(&self, key: &TokenHash, now: i64) -> Option<Principal> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(entry) if now < entry.valid_until => Some(entry.principal.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a principal whose token expires at `exp`.
    pub(crate) fn insert(&self, key: TokenHash, principal: Principal, exp: i64, now: i64) {
        if self.ttl_secs <= 0 {
            return;
        }
        let valid_until = exp.min(now.saturating_add(self.ttl_secs));
        if valid_until <= now {
            // Accepted only thanks to the leeway: not worth remembering.
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.put(
            key,
            Entry {
                principal,
                valid_until,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::PrincipalKind;

    fn principal() -> Principal {
        Principal {
            provider: "p".into(),
            subject: "s".into(),
            tenant_id: None,
            display_name: "s".into(),
            kind: PrincipalKind::App,
            roles: vec![],
            groups: vec![],
            token_id: None,
            expires_at: Some(1_000),
        }
    }

    #[test]
    fn never_outlives_exp() {
        let cache = TokenCache::new(10, 300);
        cache.insert([1; 32], principal(), 1_000, 900);
        assert!(cache.get(&[1; 32], 999).is_some());
        assert!(cache.get(&[1; 32], 1_000).is_none());
        // The expired entry is gone, not just hidden.
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn capped_by_ttl() {
        let cache = TokenCache::new(10, 300);
        cache.insert([1; 32], principal(), 10_000, 1_000);
        assert!(cache.get(&[1; 32], 1_299).is_some());
        assert!(cache.get(&[1; 32], 1_300).is_none());
    }

    #[test]
    fn skips_tokens_only_valid_by_leeway_and_disabled_cache() {
        let cache = TokenCache::new(10, 300);
        cache.insert([1; 32], principal(), 1_000, 1_010);
        assert_eq!(cache.len(), 0);
        let off = TokenCache::new(10, 0);
        off.insert([1; 32], principal(), 10_000, 1_000);
        assert!(off.get(&[1; 32], 1_000).is_none());
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(2, 300);
        for i in 0..5u8 {
            cache.insert([i; 32], principal(), 10_000, 1_000);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&[4; 32], 1_000).is_some());
        assert!(cache.get(&[0; 32], 1_000).is_none());
    }
}
