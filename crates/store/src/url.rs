//! Store URLs, as written in the config's `store:` key, and [`open_store`] which turns one
//! into a running [`Store`].
//!
//! Accepted forms:
//! - `sqlite://./path/to.db` or `sqlite://path/to.db`: relative to the process's working
//!   directory (resolving against the config file's directory, if wanted, is the caller's job);
//! - `sqlite:///abs/path.db`: absolute;
//! - `sqlite::memory:`: a private in-memory database, empty at every open (tests, demos);
//! - `postgres://USER:PASSWORD@HOST:PORT/DATABASE` / `postgresql://...`: a PostgreSQL
//!   database ([`PostgresStore`]), with libpq's URL parameters as far as the client knows
//!   them (`connect_timeout`, `application_name`, `options`, `host=/socket/dir`, ...).
//!   `sslmode=require`, `verify-ca` and `verify-full` are refused as not supported yet
//!   (the store does not speak TLS); see `postgres.rs`.
//!
//! In sqlite URLs, query strings (`?mode=ro` and the like) are refused rather than silently
//! becoming part of a file name. Errors never echo a password from the URL, and neither does
//! a [`StoreUrl`]'s `Debug`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::StoreError;
use crate::postgres::{self, PostgresStore};
use crate::sqlite::SqliteStore;
use crate::Store;

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
    /// A PostgreSQL database: the URL as given, password included (checked when parsed, so
    /// opening fails only on what a connection finds). Shown redacted by `Debug`.
    Postgres(String),
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreUrl::SqliteMemory => f.write_str("SqliteMemory"),
            StoreUrl::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

impl StoreUrl {
    /// Parses a store URL (forms in the module docs).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| invalid("expected sqlite://PATH, sqlite::memory: or postgres://..."))?;
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                if rest == ":memory:" {
                    return Ok(StoreUrl::SqliteMemory);
                }
                let path = rest.strip_prefix("//").ok_or_else(|| {
                    invalid("expected sqlite://PATH (sqlite://./rel.db, sqlite:///abs.db) or sqlite::memory:")
                })?;
                if path.is_empty() {
                    return Err(invalid("no database path after sqlite://"));
                }
                if path.contains('?') || path.contains('#') {
                    return Err(invalid(
                        "query strings and fragments are not supported in sqlite URLs",
                    ));
                }
                if path.ends_with('/') {
                    return Err(invalid("the path names a directory, not a database file"));
                }
                Ok(StoreUrl::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => {
                if !rest.starts_with("//") {
                    return Err(invalid(
                        "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    ));
                }
                postgres::parse_url(url)?;
                Ok(StoreUrl::Postgres(url.to_owned()))
            }
            _ => Err(invalid(
                "unknown scheme; expected sqlite://PATH, sqlite::memory: or postgres://...",
            )),
        }
    }
}

/// Opens the store a URL names, applying pending migrations.
pub fn open_store(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match StoreUrl::parse(url)? {
        StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        StoreUrl::SqliteMemory => Ok(Arc::new(SqliteStore::open_in_memory()?)),
        StoreUrl::Postgres(url) => Ok(Arc::new(PostgresStore::open(&url)?)),
    }
}

/// The URL with any password in its authority replaced by `***`, for error messages.
///
/// Also masks `password=...` (libpq keyword strings, query parameters), since a mistyped
/// `store:` value may be one of those rather than a URL.
pub fn redact(url: &str) -> String {
    let url = &mask_password_params(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // Take the last '@' anywhere, not only within the authority: a raw (unencoded) password
    // may contain '/', '?' or '#'. Over-redacting an odd URL is harmless; leaking is not.
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{scheme}://{}:***{}", &userinfo[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

fn mask_password_params(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("password=") {
        let value_start = pos + found + "password=".len();
        let value_end = s[value_start..]
            .find(|c: char| c.is_whitespace() || c == '&')
            .map_or(s.len(), |i| value_start + i);
        out.push_str(&s[pos..value_start]);
        out.push_str("***");
        pos = value_end;
    }
    out.push_str(&s[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_forms() {
        assert_eq!(
            StoreUrl::parse("sqlite://./sluice-data/sluice.db").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("./sluice-data/sluice.db"))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/sluice/s.db").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("/var/lib/sluice/s.db"))
        );
        assert_eq!(
            StoreUrl::parse("sqlite://rel.db").unwrap(),
            StoreUrl::Sqlite(PathBuf::from("rel.db"))
        );
        assert_eq!(
            StoreUrl::parse("sqlite::memory:").unwrap(),
            StoreUrl::SqliteMemory
        );
        assert_eq!(
            StoreUrl::parse("SQLite::memory:").unwrap(),
            StoreUrl::SqliteMemory
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sluice.db",
            "sqlite:",
            "sqlite://",
            "sqlite:rel.db",
            "sqlite://x.db?mode=ro",
            "sqlite://dir/",
            "mysql://h/db",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidUrl { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn parses_postgres_forms_and_hides_the_password() {
        for url in [
            "postgres://sluice:hunter2@db:5432/sluice",
            "postgresql://sluice:hunter2@db/sluice",
            "PostgreSQL://sluice:hunter2@db/sluice?connect_timeout=2",
        ] {
            let parsed = StoreUrl::parse(url).unwrap();
            assert_eq!(parsed, StoreUrl::Postgres(url.to_owned()));
            let shown = format!("{parsed:?}");
            assert!(
                !shown.contains("hunter2") && shown.contains(":***@db"),
                "{shown}"
            );
        }
    }

    #[test]
    fn postgres_tls_is_not_supported_yet_and_password_is_hidden() {
        for url in [
            "postgres://sluice:hunter2@db:5432/sluice?sslmode=require",
            "postgresql://sluice:hunter2@db/sluice?sslmode=verify-full",
        ] {
            let err = open_store(url).unwrap_err();
            assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("not supported yet"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("sluice:***@db"), "{msg}");
        }
    }

    #[test]
    fn malformed_postgres_urls_are_invalid() {
        for bad in [
            "postgres:db",
            "postgres://:hunter2@db/sluice",
            "postgres://sluice:hunter2@db:notaport/sluice",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidUrl { .. }),
                "{bad:?} gave {err:?}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn redact_leaves_password_less_urls_alone() {
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:///a@b:c.db"), "sqlite:///a@b:c.db");
        assert_eq!(
            redact("postgres://u:p@ss@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(redact("postgres://u:p/s?s@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("host=db Password=hunter2 user=u"),
            "host=db Password=*** user=u"
        );
        assert_eq!(
            redact("postgres://h/db?password=x&sslmode=require"),
            "postgres://h/db?password=***&sslmode=require"
        );
        let err = StoreUrl::parse("host=db password=hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
