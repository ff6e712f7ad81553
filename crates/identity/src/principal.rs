//! From the claims of a validated token to a [`Principal`].
//!
//! Tokens of an Entra provider follow [`crate::entra`]. Which providers are Entra is
//! settled by their configuration when the [`crate::Authenticator`] is built, never by
//! what a token carries: a token from another provider that happens to have a `tid` is
//! not read the Entra way, and one from an Entra provider that lacks `tid` is refused.
//! All others (the local issuer's, and any other OIDC provider's) follow one simple
//! mapping:
//!
//! - subject: `sub` (required); `tid` and `oid` mean nothing here and are ignored;
//! - roles: `roles`, groups: `groups` (each a JSON array of strings, or a single string);
//! - display name: `name`, else `preferred_username`, else `azp`, else the subject;
//! - kind: app when `idtyp` is `app`, user otherwise. The local issuer writes `idtyp`
//!   (`app` unless asked for a user token); other providers' tokens are taken as users
//!   unless they say `idtyp: app`. Only an Entra token gets the app-without-roles rule,
//!   because only there the design knows what an app token looks like;
//! - token id: `jti`.
//!
//! Claim types are checked strictly: a `roles` that is a number, or an array holding
//! anything but strings, is refused rather than ignored, since ignoring it would silently
//! change what the principal may do.

use serde_json::{Map, Value};
use sluice_core::{Principal, PrincipalKind};

use crate::error::AuthError;

/// What a provider's configuration says about turning claims into a principal.
#[derive(Debug, Clone)]
pub(crate) struct ProviderRules {
    pub name: String,
    pub allow_app_without_roles: bool,
    /// The provider is Entra: its tokens follow [`crate::entra`].
    pub entra: bool,
    /// Entra: the tenant the provider's issuer names, which every token's `tid` must be.
    pub tenant: Option<String>,
}

/// Builds the principal of a token whose signature, issuer, audience and times are checked.
pub(crate) fn from_claims(
    rules: &ProviderRules,
    claims: &Map<String, Value>,
    expires_at: i64,
) -> Result<Principal, AuthError> {
    if rules.entra {
        return crate::entra::principal(rules, claims, expires_at);
    }

    let subject = claim_str(claims, "sub")?.ok_or(AuthError::MissingClaim("sub"))?;
    if subject.is_empty() {
        return Err(AuthError::InvalidClaim {
            claim: "sub",
            reason: "it is empty".into(),
        });
    }
    let kind = match claim_str(claims, "idtyp")? {
        Some("app") => PrincipalKind::App,
        _ => PrincipalKind::User,
    };
    let display_name = ["name", "preferred_username", "azp"]
        .into_iter()
        .find_map(|c| {
            claims
                .get(c)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(subject)
        .to_string();
    Ok(Principal {
        provider: rules.name.clone(),
        subject: subject.to_string(),
        tenant_id: None,
        display_name,
        kind,
        roles: string_list(claims, "roles")?,
        groups: string_list(claims, "groups")?,
        token_id: claim_str(claims, "jti")?.map(str::to_string),
        expires_at: Some(expires_at),
    })
}

/// A claim that must be a string when present.
pub(crate) fn claim_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name,
            reason: "it is not a string".into(),
        }),
    }
}

/// A claim that is a list of strings: an array of strings, or one string (one item).
pub(crate) fn string_list(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(AuthError::InvalidClaim {
                    claim: name,
                    reason: "it holds something other than strings".into(),
                }),
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidClaim {
            claim: name,
            reason: "it is neither a string nor an array of strings".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ProviderRules {
        ProviderRules {
            name: "local".into(),
            allow_app_without_roles: false,
            entra: false,
            tenant: None,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn generic_token() {
        let c = claims(
            json!({"sub": "agent-1", "roles": "Reader", "groups": ["g1", "g2"],
            "idtyp": "app", "jti": "t1"}),
        );
        let p = from_claims(&rules(), &c, 42).unwrap();
        assert_eq!(p.provider, "local");
        assert_eq!(p.subject, "agent-1");
        assert_eq!(p.display_name, "agent-1");
        assert_eq!(p.kind, PrincipalKind::App);
        assert_eq!(p.roles, vec!["Reader"]);
        assert_eq!(p.groups, vec!["g1", "g2"]);
        assert_eq!(p.token_id.as_deref(), Some("t1"));
        assert_eq!(p.tenant_id, None);
        assert_eq!(p.expires_at, Some(42));
    }

    #[test]
    fn generic_display_name_and_kind() {
        let c = claims(json!({"sub": "s", "preferred_username": "ada@example.com", "azp": "cli"}));
        let p = from_claims(&rules(), &c, 1).unwrap();
        assert_eq!(p.display_name, "ada@example.com");
        assert_eq!(p.kind, PrincipalKind::User);
        // No roles on a generic app token is not refused: the rule is Entra's.
        let c = claims(json!({"sub": "s", "idtyp": "app"}));
        assert!(from_claims(&rules(), &c, 1).unwrap().roles.is_empty());
    }

    #[test]
    fn generic_refusals() {
        assert_eq!(
            from_claims(&rules(), &claims(json!({})), 1).unwrap_err(),
            AuthError::MissingClaim("sub")
        );
        for bad in [
            json!({"sub": 1}),
            json!({"sub": "s", "roles": 5}),
            json!({"sub": "s", "groups": [1]}),
        ] {
            assert_eq!(
                from_claims(&rules(), &claims(bad), 1).unwrap_err().code(),
                "invalid_claim"
            );
        }
    }

    #[test]
    fn the_provider_not_the_token_selects_entra_rules() {
        let c =
            claims(json!({"tid": "t", "oid": "o", "sub": "pairwise", "azp": "c", "roles": ["R"]}));
        // A `tid` in a token of a non-Entra provider changes nothing: the subject is `sub`.
        let p = from_claims(&rules(), &c, 1).unwrap();
        assert_eq!(p.subject, "pairwise");
        assert_eq!(p.tenant_id, None);

        let entra = ProviderRules {
            entra: true,
            ..rules()
        };
        let p = from_claims(&entra, &c, 1).unwrap();
        assert_eq!(p.subject, "t/o");
        assert_eq!(p.tenant_id.as_deref(), Some("t"));
        // An Entra provider's token without `tid` cannot be placed, `sub` or not.
        let c = claims(json!({"oid": "o", "sub": "s", "azp": "c", "roles": ["R"]}));
        assert_eq!(
            from_claims(&entra, &c, 1).unwrap_err(),
            AuthError::MissingClaim("tid")
        );
    }
}
