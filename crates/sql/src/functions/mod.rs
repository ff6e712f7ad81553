//! Which functions a statement may call under which rule.
//!
//! Three kinds, each reviewed by hand and kept in its own file with its reasons:
//!
//! - [`safe`]: built-in functions that cannot write, reach outside the database, run SQL
//!   given as text, or name a table as text. A read rule covers them: calling one adds no
//!   access to the statement.
//! - [`dangerous`]: built-ins that read server files, touch large objects, open remote
//!   connections, control backends, change settings or sequences, or run query text. They
//!   need a rule that names them literally (`functions: [pg_catalog.pg_read_file]`); a
//!   glob such as `pg_catalog.*` does not cover them.
//! - everything else, user-defined functions above all: a `function` access on the
//!   schema-qualified name, which needs a `functions: [...]` rule (globs allowed).
//!
//! Unqualified names resolve to `pg_catalog` when PostgreSQL has a built-in of that name
//! (`pg_catalog_functions.txt`, regenerated with `scripts/pg-catalog-functions.sh`), because
//! PostgreSQL searches `pg_catalog` before the search path.

pub mod dangerous;
pub mod safe;

use std::collections::HashSet;
use std::sync::OnceLock;

/// How a built-in function is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Covered by any rule that allows the statement's reads.
    Safe,
    /// Needs a rule naming it literally; the string says why.
    Dangerous(&'static str),
    /// A built-in that is neither: needs a `functions:` rule like any other function.
    Other,
}

/// Classifies a function of `pg_catalog` by name.
pub fn builtin(name: &str) -> Builtin {
    if let Some(reason) = dangerous::reason(name) {
        return Builtin::Dangerous(reason);
    }
    if safe::is_safe(name) {
        return Builtin::Safe;
    }
    Builtin::Other
}

/// Whether PostgreSQL has a built-in function of this name in `pg_catalog`. Names on the
/// safe list count too, so that a safe built-in newer than the generated file still
/// resolves to `pg_catalog`. The dangerous list does not: some of its names live in
/// extensions (`dblink`), wherever those were installed.
pub fn is_pg_catalog_function(name: &str) -> bool {
    static NAMES: OnceLock<HashSet<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            include_str!("pg_catalog_functions.txt")
                .lines()
                .map(str::trim)
                .collect()
        })
        .contains(name)
        || safe::is_safe(name)
}
