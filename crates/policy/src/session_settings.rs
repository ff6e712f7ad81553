//! Run-time parameters any session may set or show without a rule.
//!
//! Drivers set these on their own when they connect (pgjdbc sends `SET extra_float_digits
//! = 3` and `SET application_name = ...`), and each only changes how values are formatted
//! or how the session is labelled: none reaches data, identity or limits. The list is kept
//! short on purpose: `statement_timeout` is absent because a policy may limit it, the role
//! and authorization because they change who the session is, `search_path` because it
//! changes which tables names mean, `standard_conforming_strings` and `backslash_quote`
//! because the gateway's parser reads string literals as PostgreSQL does with their
//! defaults, and `client_encoding` because the gateway reads SQL as
//! UTF-8 and an encoding whose multi-byte characters can contain ASCII bytes would let the
//! resource read a statement differently.

/// Lower-cased names, as the classifier reports settings.
pub const FORMAT_SETTINGS: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "datestyle",
    "intervalstyle",
    "timezone",
    "bytea_output",
    "transaction_isolation",
    "server_version",
    "server_version_num",
    "server_encoding",
    "integer_datetimes",
];

/// Whether `name` is on the list.
pub fn is_format_setting(name: &str) -> bool {
    FORMAT_SETTINGS.contains(&name)
}
