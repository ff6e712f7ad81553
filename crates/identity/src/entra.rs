//! Microsoft Entra ID specifics: the v1/v2 issuer pair of a tenant, and the rules for Entra
//! access tokens (DESIGN.md §2) that generic OIDC validation does not cover.
//!
//! A token is treated as an Entra token when it carries a `tid` (tenant id) claim. Then:
//!
//! - The principal is keyed on (`tid`, `oid`): subject `<tid>/<oid>`. `sub` is pairwise per
//!   app in Entra and `oid` alone is unique only within a tenant.
//! - Kind: app when `idtyp` is `app` or there is no `scp` (delegated scopes exist only in
//!   user tokens); user otherwise.
//! - An app-only token without `roles` is refused unless the provider allows it: any app
//!   registration in a tenant can get a token for any API in it, so a role-less app token
//!   proves only membership of the tenant.
//! - A groups overage (`_claim_names.groups`, or `hasgroups` in implicit-flow tokens) is
//!   refused: the groups are then not in the token, and treating the identity as being in
//!   no group could grant or deny the wrong things. A Graph lookup is not implemented.
//! - Display name: `name`, else `azp` (v2) / `appid` (v1), else the subject. Token id:
//!   `uti`, else `jti`.

use serde_json::{Map, Value};
use sluice_core::{Principal, PrincipalKind};

use crate::error::AuthError;
use crate::principal::{claim_str, string_list, ProviderRules};

const V2_PREFIX: &str = "https://login.microsoftonline.com/";
const V2_SUFFIX: &str = "/v2.0";

/// The v1 issuer (`https://sts.windows.net/<tid>/`) of the tenant whose v2 issuer
/// (`https://login.microsoftonline.com/<tid>/v2.0`) is given, or `None` when the issuer is
/// not a tenant-specific Entra v2 issuer of the public cloud.
///
/// Which token version an app receives depends on the API's app registration
/// (`accessTokenAcceptedVersion`), not on the caller, so a provider configured with the v2
/// issuer must accept the same tenant's v1 tokens too. Keys are the same for both.
pub fn entra_v1_issuer(v2_issuer: &str) -> Option<String> {
    issuer_tenant(v2_issuer).map(|tenant| format!("https://sts.windows.net/{tenant}/"))
}

/// The tenant id in a tenant-specific Entra v2 issuer, if it is one.
pub(crate) fn issuer_tenant(issuer: &str) -> Option<&str> {
    let tenant = issuer.strip_prefix(V2_PREFIX)?.strip_suffix(V2_SUFFIX)?;
    is_tenant_id(tenant).then_some(tenant)
}

/// A tenant GUID, as opposed to `common`, `organizations`, `consumers` or a domain name,
/// which do not name one tenant and so cannot be an issuer.
fn is_tenant_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Builds the principal of an Entra token (the claims carry `tid`). Signature, issuer,
/// audience and times are already checked.
pub(crate) fn principal(
    rules: &ProviderRules,
    claims: &Map<String, Value>,
    tid: &str,
    expires_at: i64,
) -> Result<Principal, AuthError> {
    let oid = claim_str(claims, "oid")?.ok_or(AuthError::MissingClaim("oid"))?;
    if oid.is_empty() {
        return Err(AuthError::InvalidClaim {
            claim: "oid",
            reason: "it is empty".into(),
        });
    }
    if groups_overflowed(claims) {
        return Err(AuthError::GroupsOverage);
    }

    let idtyp = claim_str(claims, "idtyp")?;
    let kind = if idtyp == Some("app") || !claims.contains_key("scp") {
        PrincipalKind::App
    } else {
        PrincipalKind::User
    };
    let roles = string_list(claims, "roles")?;
    if kind == PrincipalKind::App && roles.is_empty() && !rules.allow_app_without_roles {
        return Err(AuthError::AppWithoutRoles {
            provider: rules.name.clone(),
        });
    }
    let groups = string_list(claims, "groups")?;

    let subject = format!("{tid}/{oid}");
    let display_name = ["name", "azp", "appid"]
        .into_iter()
        .find_map(|c| {
            claims
                .get(c)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map_or_else(|| subject.clone(), str::to_string);
    let token_id = ["uti", "jti"]
        .into_iter()
        .find_map(|c| {
            claims
                .get(c)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string);

    Ok(Principal {
        provider: rules.name.clone(),
        subject,
        tenant_id: Some(tid.to_string()),
        display_name,
        kind,
        roles,
        groups,
        token_id,
        expires_at: Some(expires_at),
    })
}

fn groups_overflowed(claims: &Map<String, Value>) -> bool {
    let pointer = claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key("groups"));
    let hasgroups = match claims.get("hasgroups") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    pointer || hasgroups
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TID: &str = "3f1b6a52-7c0e-4d7a-9b1e-5a2c8d4e6f70";

    fn rules(allow: bool) -> ProviderRules {
        ProviderRules {
            name: "entra".into(),
            allow_app_without_roles: allow,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn maps_v2_issuer_to_v1() {
        assert_eq!(
            entra_v1_issuer(&format!("https://login.microsoftonline.com/{TID}/v2.0")).as_deref(),
            Some(format!("https://sts.windows.net/{TID}/").as_str())
        );
        for not_tenant in [
            "https://login.microsoftonline.com/common/v2.0",
            "https://login.microsoftonline.com/organizations/v2.0",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
            &format!("https://login.microsoftonline.com/{TID}/v2.0/"),
            &format!("https://login.microsoftonline.com/{TID}"),
            &format!("https://sts.windows.net/{TID}/"),
            &format!("http://login.microsoftonline.com/{TID}/v2.0"),
            &format!("https://login.microsoftonline.com.evil.example/{TID}/v2.0"),
            "https://accounts.google.com",
        ] {
            assert_eq!(entra_v1_issuer(not_tenant), None, "{not_tenant}");
        }
    }

    #[test]
    fn tenant_of_issuer() {
        assert_eq!(
            issuer_tenant(&format!("https://login.microsoftonline.com/{TID}/v2.0")),
            Some(TID)
        );
        assert_eq!(
            issuer_tenant("https://login.microsoftonline.com/common/v2.0"),
            None
        );
        assert_eq!(issuer_tenant("http://127.0.0.1:1/x/v2.0"), None);
    }

    #[test]
    fn app_token_v2() {
        let c = claims(
            json!({"tid": TID, "oid": "o1", "azp": "client-1", "idtyp": "app",
            "roles": ["Reports.Reader"], "uti": "u1", "jti": "j1"}),
        );
        let p = principal(&rules(false), &c, TID, 100).unwrap();
        assert_eq!(p.subject, format!("{TID}/o1"));
        assert_eq!(p.tenant_id.as_deref(), Some(TID));
        assert_eq!(p.display_name, "client-1");
        assert_eq!(p.kind, PrincipalKind::App);
        assert_eq!(p.roles, vec!["Reports.Reader"]);
        assert_eq!(p.token_id.as_deref(), Some("u1"));
        assert_eq!(p.expires_at, Some(100));
    }

    #[test]
    fn app_token_v1_uses_appid_and_jti_fallback() {
        let c = claims(
            json!({"tid": TID, "oid": "o1", "appid": "client-1", "roles": ["R"], "jti": "j1"}),
        );
        let p = principal(&rules(false), &c, TID, 100).unwrap();
        assert_eq!(p.display_name, "client-1");
        assert_eq!(p.token_id.as_deref(), Some("j1"));
        // No scp and no idtyp: an app.
        assert_eq!(p.kind, PrincipalKind::App);
    }

    #[test]
    fn user_token_has_scp() {
        let c =
            claims(json!({"tid": TID, "oid": "o1", "scp": "Data.Read", "name": "Ada", "azp": "c"}));
        let p = principal(&rules(false), &c, TID, 100).unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.display_name, "Ada");
        assert!(p.roles.is_empty());
        // idtyp=app wins over a stray scp.
        let c = claims(json!({"tid": TID, "oid": "o1", "scp": "x", "idtyp": "app"}));
        assert_eq!(
            principal(&rules(false), &c, TID, 1).unwrap_err().code(),
            "app_without_roles"
        );
    }

    #[test]
    fn roleless_app_refused_unless_allowed() {
        let c = claims(json!({"tid": TID, "oid": "o1", "idtyp": "app"}));
        assert_eq!(
            principal(&rules(false), &c, TID, 1).unwrap_err().code(),
            "app_without_roles"
        );
        let c2 = claims(json!({"tid": TID, "oid": "o1", "idtyp": "app", "roles": []}));
        assert_eq!(
            principal(&rules(false), &c2, TID, 1).unwrap_err().code(),
            "app_without_roles"
        );
        let p = principal(&rules(true), &c, TID, 1).unwrap();
        assert_eq!(p.display_name, format!("{TID}/o1"));
    }

    #[test]
    fn overage_refused() {
        let c = claims(
            json!({"tid": TID, "oid": "o1", "roles": ["R"], "_claim_names": {"groups": "src1"}}),
        );
        assert_eq!(
            principal(&rules(true), &c, TID, 1).unwrap_err().code(),
            "groups_overage"
        );
        let c = claims(json!({"tid": TID, "oid": "o1", "roles": ["R"], "hasgroups": true}));
        assert_eq!(
            principal(&rules(true), &c, TID, 1).unwrap_err().code(),
            "groups_overage"
        );
        let c = claims(
            json!({"tid": TID, "oid": "o1", "roles": ["R"], "_claim_names": {"other": "src1"}}),
        );
        assert!(principal(&rules(true), &c, TID, 1).is_ok());
    }

    #[test]
    fn oid_required() {
        let c = claims(json!({"tid": TID, "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, TID, 1).unwrap_err(),
            AuthError::MissingClaim("oid")
        );
        let c = claims(json!({"tid": TID, "oid": 5, "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, TID, 1).unwrap_err().code(),
            "invalid_claim"
        );
    }
}
