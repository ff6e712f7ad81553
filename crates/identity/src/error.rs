//! The two error types of this crate: [`IdentityError`] for setting identity up (provider
//! configuration, the local issuer's key file, signing), [`AuthError`] for refusing a
//! credential.
//!
//! An `AuthError`'s message reaches the agent verbatim (PostgreSQL 28P01, MySQL 1045, HTTP
//! 401), so each one names the reason and, where there is one, what to do about it. None of
//! them repeats a secret: no token, no key secret, no key material.
//!
//! Because the reader may be anyone who can open a connection:
//!
//! - Values taken from the presented token (`alg`, `crit`, `iss`, `kid`, `aud`, `tid`) are
//!   shown through `shown`: at most `MAX_SHOWN_CHARS` (128) characters, control characters
//!   escaped, so a token cannot inject lines into a client's or a log's output, nor make
//!   the message as large as the token.
//! - [`AuthError::ProviderUnavailable`] and [`AuthError::ApiKeyStore`] keep their detail
//!   (URLs of the provider, error chains, store errors) in the value for the gateway's own
//!   logs and audit, but their message says only what is unavailable: internal addresses
//!   and error texts are no business of an unauthenticated client. The detail is logged
//!   with `tracing::warn!` where the failure happens.

use std::path::PathBuf;

/// Most characters of an attacker-controlled value shown in a message.
pub(crate) const MAX_SHOWN_CHARS: usize = 128;

/// An attacker-controlled value made fit for a message: cut to `MAX_SHOWN_CHARS`
/// characters (marked with `…`), with control and other unprintable characters (line
/// breaks, escape sequences, bidirectional overrides) and backslashes escaped as Rust's
/// `escape_debug` does. Quotes are left alone: they cannot break a line, and escaping them
/// would garble ordinary values.
pub(crate) fn shown(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars().take(MAX_SHOWN_CHARS) {
        if c == '"' || c == '\'' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    if value.chars().nth(MAX_SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Why identity could not be set up, or a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A provider in the configuration cannot be used as written.
    #[error("identity provider `{provider}`: {reason}")]
    InvalidProvider { provider: String, reason: String },

    /// The local issuer's key file could not be read, parsed or written.
    #[error("local issuer key {}: {reason}", path.display())]
    LocalKey { path: PathBuf, reason: String },

    /// A token request for the local issuer is not acceptable.
    #[error("cannot issue token: {0}")]
    InvalidTokenRequest(String),

    /// Signing failed inside the crypto library (should not happen with a key that loaded).
    #[error("cannot sign token: {0}")]
    Signing(String),

    /// The HTTP client for discovery and JWKS could not be built.
    #[error("cannot set up the HTTP client for identity providers: {0}")]
    HttpClient(String),
}

/// Why a credential was refused. Every variant is a distinct reason, so tests, metrics and
/// the audit trail can tell them apart ([`AuthError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential was presented: send an OIDC access token or a Sluice API key as the password")]
    Empty,

    #[error("token is {len} bytes, over the limit of {max} bytes; it cannot be a legitimate access token")]
    TooLarge { len: usize, max: usize },

    #[error("token is malformed: {0}")]
    Malformed(String),

    #[error(
        "token is not signed (alg `none`); only RS256, PS256 and ES256 signatures are accepted"
    )]
    AlgNone,

    #[error("token is signed with the shared-secret algorithm {}; only RS256, PS256 and ES256 are accepted, because a shared-secret signature can be forged by anyone who has the provider's public key", shown(.0))]
    SymmetricAlgorithm(String),

    #[error("token signature algorithm `{}` is not accepted; only RS256, PS256 and ES256 are", shown(.0))]
    UnsupportedAlgorithm(String),

    #[error("token header has no `kid`, so its signing key cannot be identified; request an access token from the identity provider")]
    MissingKeyId,

    #[error("token has critical header extensions ({}) that this gateway does not understand", shown(.0))]
    UnsupportedCritical(String),

    #[error("token has no `iss` claim, so its issuer cannot be trusted")]
    MissingIssuer,

    #[error("token issuer `{}` is not trusted by this gateway; configure it under identity.providers or use a token from a configured provider", shown(.0))]
    UntrustedIssuer(String),

    #[error("identity provider `{provider}` has no signing key `{}` (its key set was refreshed recently); the token was not signed by that provider, or was signed with a key it has retired", shown(kid))]
    UnknownKey { provider: String, kid: String },

    #[error("signing key `{}` of identity provider `{provider}` is a {key} key, which cannot verify an {alg} signature", shown(kid))]
    KeyAlgorithmMismatch {
        provider: String,
        kid: String,
        key: String,
        alg: String,
    },

    #[error("token signature does not verify with identity provider `{provider}`'s key `{}`; the token was forged or altered", shown(kid))]
    BadSignature { provider: String, kid: String },

    /// `reason` is for the gateway's logs and audit only; the message does not show it.
    #[error("identity provider `{provider}` is unavailable: its signing keys cannot be fetched and none are cached; try again later")]
    ProviderUnavailable { provider: String, reason: String },

    #[error(
        "token expired at {exp} (now {now}, allowed clock skew {leeway} s); request a new token"
    )]
    Expired {
        exp: String,
        now: String,
        leeway: u64,
    },

    #[error("token is not valid before {nbf} (now {now}, allowed clock skew {leeway} s); check the clocks of this host and the identity provider")]
    NotYetValid {
        nbf: String,
        now: String,
        leeway: u64,
    },

    #[error("token claims to be issued at {iat}, in the future (now {now}, allowed clock skew {leeway} s); check the clocks of this host and the identity provider")]
    IssuedInFuture {
        iat: String,
        now: String,
        leeway: u64,
    },

    #[error("token has no `{0}` claim, which is required")]
    MissingClaim(&'static str),

    #[error("token claim `{claim}` is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },

    /// `found` is built with `shown` applied to each audience.
    #[error("token audience {found} is not accepted by identity provider `{provider}`, which accepts {expected}; request the token for one of those audiences (Entra: the scope `<audience>/.default`)")]
    WrongAudience {
        provider: String,
        found: String,
        expected: String,
    },

    #[error("app-only token carries no roles claim; any app in the tenant can obtain such a token, so it is refused. Assign an app role to the calling app (Entra: API permissions, application permission), or set allow_app_without_roles on identity provider `{provider}`")]
    AppWithoutRoles { provider: String },

    #[error("token carries a `nonce` claim, so it is an ID token (the proof of a sign-in, meant for the client app), not an access token; request an access token for this API (Entra: the scope `<audience>/.default`)")]
    IdTokenNonce,

    #[error("token names no client app (neither `azp` nor `appid`); every Entra access token does and ID tokens do not, so this is not an access token; request an access token for this API (Entra: the scope `<audience>/.default`)")]
    NoClientApp,

    #[error("token's groups claim overflowed (the identity provider sent a pointer to Microsoft Graph instead of the groups) and a Graph lookup is not configured; use app roles instead of groups, or assign fewer groups to the identity")]
    GroupsOverage,

    #[error("API key is malformed: {0}; expected sk_sluice_<id>_<secret> exactly as it was shown when created")]
    ApiKeyMalformed(String),

    #[error("API keys are not enabled on this gateway")]
    ApiKeysDisabled,

    #[error("API key `{0}` does not exist")]
    ApiKeyUnknown(String),

    #[error("API key `{0}` does not match its stored hash; the secret part is wrong")]
    ApiKeyWrongSecret(String),

    #[error("API key `{0}` has been revoked; ask an administrator for a new one")]
    ApiKeyRevoked(String),

    /// The store's error is for the gateway's logs and audit only; the message does not
    /// show it.
    #[error("API key store unavailable: the key cannot be checked right now and is refused until the store is reachable; try again later")]
    ApiKeyStore(String),
}

impl AuthError {
    /// A short, stable identifier of the reason, for metrics labels and audit records.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Empty => "empty",
            AuthError::TooLarge { .. } => "too_large",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgNone => "alg_none",
            AuthError::SymmetricAlgorithm(_) => "alg_symmetric",
            AuthError::UnsupportedAlgorithm(_) => "alg_unsupported",
            AuthError::MissingKeyId => "missing_kid",
            AuthError::UnsupportedCritical(_) => "unsupported_crit",
            AuthError::MissingIssuer => "missing_iss",
            AuthError::UntrustedIssuer(_) => "untrusted_iss",
            AuthError::UnknownKey { .. } => "unknown_kid",
            AuthError::KeyAlgorithmMismatch { .. } => "key_alg_mismatch",
            AuthError::BadSignature { .. } => "bad_signature",
            AuthError::ProviderUnavailable { .. } => "provider_unavailable",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::IssuedInFuture { .. } => "iat_future",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim { .. } => "invalid_claim",
            AuthError::WrongAudience { .. } => "wrong_aud",
            AuthError::AppWithoutRoles { .. } => "app_without_roles",
            AuthError::IdTokenNonce => "id_token",
            AuthError::NoClientApp => "no_client_app",
            AuthError::GroupsOverage => "groups_overage",
            AuthError::ApiKeyMalformed(_) => "apikey_malformed",
            AuthError::ApiKeysDisabled => "apikey_disabled",
            AuthError::ApiKeyUnknown(_) => "apikey_unknown",
            AuthError::ApiKeyWrongSecret(_) => "apikey_wrong_secret",
            AuthError::ApiKeyRevoked(_) => "apikey_revoked",
            AuthError::ApiKeyStore(_) => "apikey_store",
        }
    }

    /// Whether the refusal is caused by something outside the credential (an unreachable
    /// provider or key store), so the same credential may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthError::ProviderUnavailable { .. } | AuthError::ApiKeyStore(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_bounds_and_escapes() {
        assert_eq!(shown("RS512"), "RS512");
        assert_eq!(shown("a\nb\u{1b}[31m\\\"'"), "a\\nb\\u{1b}[31m\\\\\"'");
        assert_eq!(shown("\u{202e}x"), "\\u{202e}x");
        let long = "é".repeat(1000);
        let out = shown(&long);
        assert_eq!(out.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(out.ends_with('…'));
        assert_eq!(
            shown(&"x".repeat(MAX_SHOWN_CHARS)),
            "x".repeat(MAX_SHOWN_CHARS)
        );
    }

    #[test]
    fn messages_show_attacker_values_bounded() {
        let hostile = format!("evil\r\nX-Injected: 1{}", "A".repeat(10_000));
        for err in [
            AuthError::SymmetricAlgorithm(hostile.clone()),
            AuthError::UnsupportedAlgorithm(hostile.clone()),
            AuthError::UnsupportedCritical(hostile.clone()),
            AuthError::UntrustedIssuer(hostile.clone()),
            AuthError::UnknownKey {
                provider: "p".into(),
                kid: hostile.clone(),
            },
            AuthError::KeyAlgorithmMismatch {
                provider: "p".into(),
                kid: hostile.clone(),
                key: "RSA".into(),
                alg: "ES256".into(),
            },
            AuthError::BadSignature {
                provider: "p".into(),
                kid: hostile.clone(),
            },
        ] {
            let msg = err.to_string();
            assert!(msg.len() < 600, "{} bytes: {msg}", msg.len());
            assert!(!msg.contains(['\r', '\n']), "{msg}");
            assert!(msg.contains("evil\\r\\nX-Injected"), "{msg}");
        }
    }

    #[test]
    fn unavailable_messages_hide_the_detail() {
        let err = AuthError::ProviderUnavailable {
            provider: "entra".into(),
            reason: "GET http://10.0.0.7/keys failed: connection refused".into(),
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("identity provider `entra` is unavailable"),
            "{msg}"
        );
        assert!(!msg.contains("10.0.0.7"), "{msg}");
        let err = AuthError::ApiKeyStore("postgres://admin@db.internal: timeout".into());
        let msg = err.to_string();
        assert!(msg.starts_with("API key store unavailable"), "{msg}");
        assert!(!msg.contains("db.internal"), "{msg}");
    }
}
