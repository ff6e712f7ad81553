//! What the store keeps about an API key, shared by the identity crate (which checks keys)
//! and the store (which keeps them), so neither depends on the other.

use serde::{Deserialize, Serialize};

/// An API key as stored, for agents that have no OIDC provider.
///
/// Only a SHA-256 digest of the secret is kept. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public identifier, the lookup key when an agent presents its key. Unique.
    pub id: String,
    /// What the key is for, as given at creation ("ci-reporting"). Unique over all keys,
    /// revoked ones included, so the audit log never has two keys under one name.
    pub name: String,
    /// SHA-256 of the secret part, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// The principal's subject when authenticated with this key.
    pub subject: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub created_at: i64,
    /// Set when revoked; a revoked key is refused whatever the time.
    pub revoked_at: Option<i64>,
}
