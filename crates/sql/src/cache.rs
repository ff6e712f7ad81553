//! The classification cache: parsing is the gateway's hot path, and agents repeat
//! themselves.
//!
//! Two levels, both bounded LRUs keyed together with the search path the names were
//! resolved with:
//!
//! 1. **Exact text.** Compared in full (a hash only picks the bucket): two texts that differ
//!    in any byte are different keys. No normalisation of case, quoting, whitespace or
//!    comments is done here, because `"Secrets"` and `secrets` are different tables and a
//!    hand-written normaliser that forgot one such rule would let one text borrow another's
//!    verdict.
//! 2. **Shape: the text with its constants replaced by parameters**, as PostgreSQL's own
//!    parser and lexer produce it (`pg_query::normalize`, the `pg_stat_statements` form:
//!    `WHERE aid = 42` becomes `WHERE aid = $1`; every other byte is kept). Clients that
//!    inline literals (`pgbench -M simple`, psql, many ORMs' unprepared paths) send a new
//!    text for every value, and would otherwise be parsed anew every time.
//!
//! Why the second level is sound. Two texts with the same shape have the same bytes
//! outside their constants, so the same keywords, identifiers, operators and comments in
//! the same order; they differ only in the value and kind of single constant tokens. The
//! classification of a plain query or DML statement reads identifiers and structure only,
//! never a constant's value (neither the walker in [`walk`](crate::walk) nor the value-flow
//! analysis in [`flow`](crate::flow) has a code path that looks inside an `A_Const`). A shape entry is therefore only made from such statements:
//! exactly one `SELECT`/`INSERT`/`UPDATE`/`DELETE`/`MERGE` spanning the whole string.
//! Utility statements (`SET`, `COPY`, `EXPLAIN`, `PREPARE`, ...) can depend on a
//! constant's value (`SET search_path TO 'x'`, `EXPLAIN (ANALYZE false)`) and are cached by
//! exact text only. A text that does not parse fails `normalize` too, so it is never given
//! a borrowed answer: it goes to the full parse and is refused there.
//!
//! `normalize` runs PostgreSQL's raw parser, most of what a new literal costs. A shape
//! entry therefore also remembers the constant kinds under which the
//! [literal scanner](crate::literals) found that same shape for a text `normalize` read:
//! a later text whose scanned shape and kinds match is answered without `normalize`. The
//! [`literals`](crate::literals) module says why that gives the shape `normalize` would.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::classification::{Classification, StatementClass};
use crate::classify::classify;
use crate::error::ClassifyError;
use crate::literals::{literal_shape, LiteralShape};
use crate::search_path::SearchPath;

/// Texts longer than this are classified every time rather than cached, so a few huge
/// statements cannot pin a lot of memory.
pub const MAX_CACHED_TEXT: usize = 16 * 1024;

/// Statement types whose classification never reads a constant's value (see the module
/// documentation): the only ones cached by shape.
const SHAPE_CACHEABLE_KINDS: &[&str] = &[
    "SelectStmt",
    "InsertStmt",
    "UpdateStmt",
    "DeleteStmt",
    "MergeStmt",
];

/// A shape level entry.
struct ShapeEntry {
    /// A one-statement template whose `text` is left empty; the caller's text is put in.
    template: Arc<StatementClass>,
    /// The constant kinds with which the literal scanner found this shape for a text
    /// `normalize` gave it to; texts the scanner reads the same way share the entry.
    scanned_kinds: Option<Box<[u8]>>,
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    sql: Box<str>,
    search_path: SearchPath,
}

/// How the cache answered, for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub exact_hits: u64,
    /// Shape hits, those found by the literal scanner included.
    pub shape_hits: u64,
    /// Shape hits found by the literal scanner, without `normalize`.
    pub literal_hits: u64,
    pub misses: u64,
}

/// A thread-safe, bounded two-level LRU cache in front of [`classify`].
pub struct Classifier {
    exact: Mutex<LruCache<Key, Arc<Classification>>>,
    shapes: Mutex<LruCache<Key, ShapeEntry>>,
    exact_hits: AtomicU64,
    shape_hits: AtomicU64,
    literal_hits: AtomicU64,
    misses: AtomicU64,
}

impl Classifier {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("at least one entry");
        Classifier {
            exact: Mutex::new(LruCache::new(capacity)),
            shapes: Mutex::new(LruCache::new(capacity)),
            exact_hits: AtomicU64::new(0),
            shape_hits: AtomicU64::new(0),
            literal_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Classifies `sql`, from the cache when the same text, or a text of the same shape
    /// (see the module documentation), was classified before with the same search path.
    /// Errors are not cached: they are rare and cheap to redo.
    pub fn classify(
        &self,
        sql: &str,
        search_path: &SearchPath,
    ) -> Result<Arc<Classification>, ClassifyError> {
        if sql.len() > MAX_CACHED_TEXT {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return classify(sql, search_path).map(Arc::new);
        }
        let key = Key {
            sql: sql.into(),
            search_path: search_path.clone(),
        };
        if let Some(hit) = self.exact.lock().get(&key) {
            self.exact_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit.clone());
        }

        // The scanned shape, as a key of the shape level, and its constants' kinds.
        let scanned = literal_shape(sql).map(|LiteralShape { shape, kinds }| {
            let key = Key {
                sql: shape.into_boxed_str(),
                search_path: search_path.clone(),
            };
            (key, kinds)
        });
        if let Some((key, kinds)) = &scanned {
            let template = self
                .shapes
                .lock()
                .get(key)
                .filter(|entry| entry.scanned_kinds.as_deref() == Some(&kinds[..]))
                .map(|entry| entry.template.clone());
            if let Some(template) = template {
                self.shape_hits.fetch_add(1, Ordering::Relaxed);
                self.literal_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(from_template(sql, &template));
            }
        }

        // `normalize` runs PostgreSQL's parser too: a text that fails it is not valid SQL
        // and goes on to the full parse, which reports the error.
        let shape_key = pg_query::normalize(sql).ok().map(|shape| Key {
            sql: shape.into_boxed_str(),
            search_path: search_path.clone(),
        });
        // The scanner read this text as the parser did: texts it reads the same way may
        // skip `normalize` from now on.
        let confirmed = |shape_key: &Key| {
            scanned
                .as_ref()
                .filter(|(key, _)| key.sql == shape_key.sql)
                .map(|(_, kinds)| kinds.clone().into_boxed_slice())
        };
        if let Some(shape_key) = &shape_key {
            let template = self.shapes.lock().get_mut(shape_key).map(|entry| {
                if entry.scanned_kinds.is_none() {
                    entry.scanned_kinds = confirmed(shape_key);
                }
                entry.template.clone()
            });
            if let Some(template) = template {
                self.shape_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(from_template(sql, &template));
            }
        }

        // Parse outside the locks: other sessions keep hitting the cache meanwhile.
        self.misses.fetch_add(1, Ordering::Relaxed);
        let fresh = Arc::new(classify(sql, search_path)?);
        if let (Some(shape_key), Some(template)) = (shape_key, shape_template(sql, &fresh)) {
            let entry = ShapeEntry {
                template: Arc::new(template),
                scanned_kinds: confirmed(&shape_key),
            };
            self.shapes.lock().put(shape_key, entry);
        }
        self.exact.lock().put(key, fresh.clone());
        Ok(fresh)
    }

    /// Entries in the exact-text level.
    pub fn len(&self) -> usize {
        self.exact.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in the shape level.
    pub fn shapes_len(&self) -> usize {
        self.shapes.lock().len()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            exact_hits: self.exact_hits.load(Ordering::Relaxed),
            shape_hits: self.shape_hits.load(Ordering::Relaxed),
            literal_hits: self.literal_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(10_000)
    }
}

/// The template a shape entry holds, when `classification` of `sql` may be shared with
/// texts of the same shape: one plain query or DML statement that spans the whole string.
fn shape_template(sql: &str, classification: &Classification) -> Option<StatementClass> {
    let [statement] = classification.statements.as_slice() else {
        return None;
    };
    let plain = SHAPE_CACHEABLE_KINDS.contains(&statement.kind.as_str())
        && statement.prepares.is_none()
        && statement.executes.is_none()
        && statement.search_path_change.is_none();
    // The same text a shape hit will give: if the parser cut the statement differently
    // (a trailing comment after the semicolon, say), the shape is not shared.
    if !plain || statement.text != whole_statement_text(sql) {
        return None;
    }
    Some(StatementClass {
        text: String::new(),
        ..statement.clone()
    })
}

/// The classification of `sql` from the template of its shape.
fn from_template(sql: &str, template: &StatementClass) -> Arc<Classification> {
    let statement = StatementClass {
        text: whole_statement_text(sql).to_string(),
        ..template.clone()
    };
    Arc::new(Classification {
        statements: vec![statement],
    })
}

/// A one-statement string's statement text: trimmed, without one trailing semicolon.
fn whole_statement_text(sql: &str) -> &str {
    let trimmed = sql.trim();
    trimmed.strip_suffix(';').unwrap_or(trimmed).trim_end()
}
