//! Who is asking: the identity a validated token or API key resolves to.

use serde::{Deserialize, Serialize};

/// Whether the identity is a person or a workload.
///
/// Approvals depend on it: only human principals may approve (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A user signed in interactively (Entra: `idtyp` absent or `user`, with `scp`).
    User,
    /// An application or service account (Entra: `idtyp` = `app`, or no `scp`); API keys.
    App,
}

impl std::fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrincipalKind::User => "user",
            PrincipalKind::App => "app",
        })
    }
}

/// A validated identity, the input of every policy decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Name of the configured identity provider that vouched for it (`entra`, `local`,
    /// `apikey`).
    pub provider: String,
    /// Stable subject. For Entra this is `<tid>/<oid>`: the object id alone is only unique
    /// within a tenant. For other providers it is the `sub` claim; for API keys the key's
    /// subject.
    pub subject: String,
    /// Entra tenant id (`tid`), when the token carries one.
    pub tenant_id: Option<String>,
    /// Human-readable name for logs and the console (`name`, `azp`/`appid`, or the subject).
    pub display_name: String,
    pub kind: PrincipalKind,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Token identifier (`uti` for Entra, else `jti`); the API key id for API keys.
    pub token_id: Option<String>,
    /// When the credential stops being valid, in seconds since the Unix epoch. The session
    /// ends then (DESIGN.md §2). `None` for API keys, which live until revoked.
    pub expires_at: Option<i64>,
}

impl Principal {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
