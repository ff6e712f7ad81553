//! The classification cache: parsing is the gateway's hot path, and agents repeat
//! themselves.
//!
//! The key is the exact statement text together with the search path it was resolved
//! with, compared in full (a hash only picks the bucket). Two texts that differ in any
//! byte are different keys, so no two texts that classify differently can share an
//! entry; normalisation (folding literals, whitespace or case) is deliberately not done,
//! because `"Secrets"` and `secrets` are different tables and a normaliser that forgot
//! one such rule would let one text borrow another's verdict.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::classification::Classification;
use crate::classify::classify;
use crate::error::ClassifyError;
use crate::search_path::SearchPath;

/// Texts longer than this are classified every time rather than cached, so a few huge
/// statements cannot pin a lot of memory.
pub const MAX_CACHED_TEXT: usize = 16 * 1024;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    sql: Box<str>,
    search_path: SearchPath,
}

/// A thread-safe, bounded LRU cache in front of [`classify`].
pub struct Classifier {
    cache: Mutex<LruCache<Key, Arc<Classification>>>,
}

impl Classifier {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least one entry");
        Classifier {
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Classifies `sql`, from the cache when the same text was classified before with the
    /// same search path. Errors are not cached: they are rare and cheap to redo.
    pub fn classify(
        &self,
        sql: &str,
        search_path: &SearchPath,
    ) -> Result<Arc<Classification>, ClassifyError> {
        if sql.len() > MAX_CACHED_TEXT {
            return classify(sql, search_path).map(Arc::new);
        }
        let key = Key {
            sql: sql.into(),
            search_path: search_path.clone(),
        };
        if let Some(hit) = self.cache.lock().get(&key) {
            return Ok(hit.clone());
        }
        // Parse outside the lock: other sessions keep hitting the cache meanwhile.
        let fresh = Arc::new(classify(sql, search_path)?);
        self.cache.lock().put(key, fresh.clone());
        Ok(fresh)
    }

    pub fn len(&self) -> usize {
        self.cache.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(10_000)
    }
}
