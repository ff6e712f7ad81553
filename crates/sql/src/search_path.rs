//! Resolving unqualified names as PostgreSQL does.
//!
//! PostgreSQL looks up an unqualified relation in `pg_temp`, then `pg_catalog`, then each
//! schema of `search_path` in turn, taking the first that has it. Without the catalog the
//! gateway cannot know which schema holds a name, so an unqualified name yields one
//! candidate per schema of the path: policy must allow every candidate and deny if any
//! candidate is denied. With the usual one-schema path that is exactly one name.

use std::sync::Arc;

/// The schemas unqualified names resolve through, in order (`"$user"` already replaced by
/// the session user's name, or dropped when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchPath(Arc<[String]>);

impl SearchPath {
    /// A path of the given schemas. Names are taken as PostgreSQL stores them (already
    /// folded); `pg_catalog` is dropped because it is always searched first anyway.
    pub fn new<I, S>(schemas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let schemas: Vec<String> = schemas
            .into_iter()
            .map(Into::into)
            .filter(|s| s != "pg_catalog" && s != "$user")
            .collect();
        SearchPath(schemas.into())
    }

    pub fn schemas(&self) -> &[String] {
        &self.0
    }

    /// Every schema of either path, `newer` first: for a session that cannot know which
    /// of the two will be in force (a `SET LOCAL`, a `SET` a rollback may undo), names
    /// then resolve to candidates in both, and all of them must be allowed.
    pub fn union(&self, newer: &SearchPath) -> SearchPath {
        let mut schemas: Vec<String> = newer.0.to_vec();
        for s in self.0.iter() {
            if !schemas.contains(s) {
                schemas.push(s.clone());
            }
        }
        SearchPath(schemas.into())
    }
}

impl Default for SearchPath {
    /// PostgreSQL's default `"$user", public`, with no `$user` schema.
    fn default() -> Self {
        SearchPath::new(["public"])
    }
}
