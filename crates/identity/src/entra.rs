//! Microsoft Entra ID specifics: which providers are Entra, the v1/v2 issuer pair of a
//! tenant, and the rules for Entra access tokens (DESIGN.md §2) that generic OIDC
//! validation does not cover.
//!
//! Whether a provider is Entra is decided from its configuration, never from the token
//! (a token chooses nothing about how it is read): the provider is Entra when its issuer is
//! a tenant-specific Entra issuer (see [`is_entra_issuer`]), or when its settings say
//! `entra: true`. The tenant a provider's tokens must belong to is the one its issuer
//! names. Then:
//!
//! - Only access tokens are accepted. A token carrying `nonce` is an ID token (the proof of
//!   a sign-in handed to a client app, whose `aud` is that app's client id, the same value
//!   a v2 access token for the API has), and is refused. So is a token without `azp` (v2)
//!   or `appid` (v1): every Entra access token names the client app it was issued to, and
//!   ID tokens never do.
//! - `tid` is required and must be the provider's tenant, when its issuer names one.
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

use crate::error::{shown, AuthError};
use crate::principal::{claim_str, string_list, ProviderRules};

/// The public cloud's v2 issuer host, the one with a v1 alias at `sts.windows.net`.
const PUBLIC_V2_HOST: &str = "login.microsoftonline.com";
/// Hosts of v2 issuers `https://<host>/<tid>/v2.0`: the public cloud, Azure US Government,
/// and Azure China (21Vianet, under both of its names).
const V2_HOSTS: [&str; 4] = [
    PUBLIC_V2_HOST,
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
];
/// Hosts of v1 issuers `https://<host>/<tid>/`: the public cloud and Azure China.
const V1_HOSTS: [&str; 2] = ["sts.windows.net", "sts.chinacloudapi.cn"];

/// The v1 issuer (`https://sts.windows.net/<tid>/`) of the tenant whose v2 issuer
/// (`https://login.microsoftonline.com/<tid>/v2.0`) is given, or `None` when the issuer is
/// not a tenant-specific Entra v2 issuer of the public cloud.
///
/// Which token version an app receives depends on the API's app registration
/// (`accessTokenAcceptedVersion`), not on the caller, so a provider configured with the v2
/// issuer must accept the same tenant's v1 tokens too. Keys are the same for both.
/// Sovereign clouds get no v1 alias here: configure their APIs for v2 tokens.
pub fn entra_v1_issuer(v2_issuer: &str) -> Option<String> {
    let tenant = v2_issuer
        .strip_prefix("https://")?
        .strip_prefix(PUBLIC_V2_HOST)?
        .strip_prefix('/')?
        .strip_suffix("/v2.0")?;
    is_tenant_id(tenant).then(|| format!("https://sts.windows.net/{tenant}/"))
}

/// Whether `issuer` is a tenant-specific Entra issuer: `https://<host>/<tid>/v2.0` with a v2
/// host (`login.microsoftonline.com`, `login.microsoftonline.us`, `login.chinacloudapi.cn`,
/// `login.partner.microsoftonline.cn`), or `https://<host>/<tid>/` with a v1 host
/// (`sts.windows.net`, `sts.chinacloudapi.cn`), `<tid>` a tenant GUID. A provider with such
/// an issuer follows the Entra rules without being told to.
pub fn is_entra_issuer(issuer: &str) -> bool {
    issuer_tenant(issuer).is_some()
}

/// The tenant id in a tenant-specific Entra issuer (v2 or v1, any cloud above), if it is one.
pub(crate) fn issuer_tenant(issuer: &str) -> Option<&str> {
    let (host, path) = issuer.strip_prefix("https://")?.split_once('/')?;
    let tenant = if V2_HOSTS.contains(&host) {
        path.strip_suffix("/v2.0")?
    } else if V1_HOSTS.contains(&host) {
        path.strip_suffix('/')?
    } else {
        return None;
    };
    is_tenant_id(tenant).then_some(tenant)
}

/// The tenant of a provider set to `entra: true` whose issuer is not Microsoft's, such as
/// the test provider at `http://127.0.0.1:<port>/<tid>/v2.0`: the `<tid>` path segment when
/// the issuer's path has Entra's shape (`/<tid>/v2.0`, `/<tid>/` or `/<tid>`). Otherwise
/// `None`, and tokens of any tenant are accepted from that issuer.
pub(crate) fn path_tenant(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    let mut segments: Vec<&str> = url.path_segments()?.collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    match segments.as_slice() {
        [tenant] | [tenant, "v2.0"] if is_tenant_id(tenant) => Some(tenant.to_string()),
        _ => None,
    }
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

/// Builds the principal of a token from an Entra provider. Signature, issuer, audience and
/// times are already checked.
pub(crate) fn principal(
    rules: &ProviderRules,
    claims: &Map<String, Value>,
    expires_at: i64,
) -> Result<Principal, AuthError> {
    // Access token or ID token first: an ID token would otherwise be refused for a reason
    // that sends its holder the wrong way (no roles, as it has no `scp`).
    if claims.contains_key("nonce") {
        return Err(AuthError::IdTokenNonce);
    }
    let client = ["azp", "appid"]
        .into_iter()
        .map(|c| claim_str(claims, c))
        .collect::<Result<Vec<_>, _>>()?;
    if !client.iter().flatten().any(|c| !c.is_empty()) {
        return Err(AuthError::NoClientApp);
    }

    let tid = claim_str(claims, "tid")?.ok_or(AuthError::MissingClaim("tid"))?;
    if tid.is_empty() {
        return Err(AuthError::InvalidClaim {
            claim: "tid",
            reason: "it is empty".into(),
        });
    }
    // The subject is keyed on `tid`, so a token of another tenant must not pass for one of
    // the provider's (an issuer that is not Microsoft's could sign for any tenant).
    if let Some(tenant) = &rules.tenant {
        if !tid.eq_ignore_ascii_case(tenant) {
            return Err(AuthError::InvalidClaim {
                claim: "tid",
                reason: format!(
                    "tenant `{}` is not the tenant `{tenant}` of identity provider `{}`",
                    shown(tid),
                    rules.name
                ),
            });
        }
    }

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
    const OTHER_TID: &str = "9a8b7c6d-1111-4222-8333-944455556666";

    fn rules(allow: bool) -> ProviderRules {
        ProviderRules {
            name: "entra".into(),
            allow_app_without_roles: allow,
            entra: true,
            tenant: Some(TID.into()),
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
            // Sovereign clouds have no v1 alias here.
            &format!("https://login.microsoftonline.us/{TID}/v2.0"),
            "https://accounts.google.com",
        ] {
            assert_eq!(entra_v1_issuer(not_tenant), None, "{not_tenant}");
        }
    }

    #[test]
    fn tenant_of_issuer() {
        for issuer in [
            format!("https://login.microsoftonline.com/{TID}/v2.0"),
            format!("https://login.microsoftonline.us/{TID}/v2.0"),
            format!("https://login.chinacloudapi.cn/{TID}/v2.0"),
            format!("https://login.partner.microsoftonline.cn/{TID}/v2.0"),
            format!("https://sts.windows.net/{TID}/"),
            format!("https://sts.chinacloudapi.cn/{TID}/"),
        ] {
            assert_eq!(issuer_tenant(&issuer), Some(TID), "{issuer}");
            assert!(is_entra_issuer(&issuer), "{issuer}");
        }
        for issuer in [
            "https://login.microsoftonline.com/common/v2.0".to_string(),
            format!("https://login.microsoftonline.com/{TID}/v2.0/"),
            format!("https://login.microsoftonline.com/{TID}/"),
            format!("https://sts.windows.net/{TID}/v2.0"),
            format!("https://sts.windows.net/{TID}"),
            format!("http://sts.windows.net/{TID}/"),
            format!("https://sts.windows.net.evil.example/{TID}/"),
            format!("https://evil.example/{TID}/v2.0"),
            format!("http://127.0.0.1:1/{TID}/v2.0"),
            "http://127.0.0.1:1/x/v2.0".to_string(),
        ] {
            assert_eq!(issuer_tenant(&issuer), None, "{issuer}");
            assert!(!is_entra_issuer(&issuer), "{issuer}");
        }
    }

    #[test]
    fn tenant_of_an_entra_shaped_path() {
        for issuer in [
            format!("http://127.0.0.1:8080/{TID}/v2.0"),
            format!("http://127.0.0.1:8080/{TID}/"),
            format!("https://idp.example/{TID}"),
        ] {
            assert_eq!(path_tenant(&issuer).as_deref(), Some(TID), "{issuer}");
        }
        for issuer in [
            "http://127.0.0.1:8080/idp".to_string(),
            format!("http://127.0.0.1:8080/x/{TID}/v2.0"),
            format!("http://127.0.0.1:8080/{TID}/v1.0"),
            "https://idp.example".to_string(),
            "not a url".to_string(),
        ] {
            assert_eq!(path_tenant(&issuer), None, "{issuer}");
        }
    }

    #[test]
    fn app_token_v2() {
        let c = claims(
            json!({"tid": TID, "oid": "o1", "azp": "client-1", "idtyp": "app",
            "roles": ["Reports.Reader"], "uti": "u1", "jti": "j1"}),
        );
        let p = principal(&rules(false), &c, 100).unwrap();
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
        let p = principal(&rules(false), &c, 100).unwrap();
        assert_eq!(p.display_name, "client-1");
        assert_eq!(p.token_id.as_deref(), Some("j1"));
        // No scp and no idtyp: an app.
        assert_eq!(p.kind, PrincipalKind::App);
    }

    #[test]
    fn user_token_has_scp() {
        let c =
            claims(json!({"tid": TID, "oid": "o1", "scp": "Data.Read", "name": "Ada", "azp": "c"}));
        let p = principal(&rules(false), &c, 100).unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.display_name, "Ada");
        assert!(p.roles.is_empty());
        // idtyp=app wins over a stray scp.
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": "c", "scp": "x", "idtyp": "app"}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err().code(),
            "app_without_roles"
        );
    }

    #[test]
    fn roleless_app_refused_unless_allowed() {
        let c = claims(json!({"tid": TID, "oid": "o1", "appid": "", "azp": "c", "idtyp": "app"}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err().code(),
            "app_without_roles"
        );
        let c2 = claims(json!({"tid": TID, "oid": "o1", "azp": "c", "idtyp": "app", "roles": []}));
        assert_eq!(
            principal(&rules(false), &c2, 1).unwrap_err().code(),
            "app_without_roles"
        );
        let c = claims(json!({"tid": TID, "oid": "o1", "idtyp": "app", "appid": "c"}));
        let p = principal(&rules(true), &c, 1).unwrap();
        assert_eq!(p.display_name, "c");
    }

    #[test]
    fn overage_refused() {
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": "c", "roles": ["R"],
            "_claim_names": {"groups": "src1"}}));
        assert_eq!(
            principal(&rules(true), &c, 1).unwrap_err().code(),
            "groups_overage"
        );
        let c =
            claims(json!({"tid": TID, "oid": "o1", "azp": "c", "roles": ["R"], "hasgroups": true}));
        assert_eq!(
            principal(&rules(true), &c, 1).unwrap_err().code(),
            "groups_overage"
        );
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": "c", "roles": ["R"],
            "_claim_names": {"other": "src1"}}));
        assert!(principal(&rules(true), &c, 1).is_ok());
    }

    #[test]
    fn oid_required() {
        let c = claims(json!({"tid": TID, "azp": "c", "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err(),
            AuthError::MissingClaim("oid")
        );
        let c = claims(json!({"tid": TID, "azp": "c", "oid": 5, "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err().code(),
            "invalid_claim"
        );
    }

    #[test]
    fn id_tokens_refused() {
        // An ID token of a v2 app: `aud` is the client id, no `azp`, a `nonce`.
        let id_token = json!({"tid": TID, "oid": "o1", "sub": "s", "name": "Ada",
            "preferred_username": "ada@contoso.com", "nonce": "n-0S6_WzA2Mj", "ver": "2.0"});
        let err = principal(&rules(true), &claims(id_token.clone()), 1).unwrap_err();
        assert_eq!(err, AuthError::IdTokenNonce);
        assert_eq!(err.code(), "id_token");
        assert!(err.to_string().contains("it is an ID token"), "{err}");

        // The nonce alone is enough, whatever else the token carries.
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": "c", "roles": ["R"], "nonce": ""}));
        assert_eq!(
            principal(&rules(true), &c, 1).unwrap_err(),
            AuthError::IdTokenNonce
        );

        // Without the nonce (ID tokens of some flows have none): no client app named.
        let mut c = claims(id_token);
        c.remove("nonce");
        let err = principal(&rules(true), &c, 1).unwrap_err();
        assert_eq!(err, AuthError::NoClientApp);
        assert_eq!(err.code(), "no_client_app");
        assert!(
            err.to_string().contains("neither `azp` nor `appid`"),
            "{err}"
        );

        // Empty client ids do not count; a non-string one is an invalid claim.
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": "", "appid": "", "roles": ["R"]}));
        assert_eq!(
            principal(&rules(true), &c, 1).unwrap_err(),
            AuthError::NoClientApp
        );
        let c = claims(json!({"tid": TID, "oid": "o1", "azp": 7, "roles": ["R"]}));
        assert!(matches!(
            principal(&rules(true), &c, 1).unwrap_err(),
            AuthError::InvalidClaim { claim: "azp", .. }
        ));
    }

    #[test]
    fn tenant_checked() {
        let c = claims(json!({"tid": OTHER_TID, "oid": "o1", "azp": "c", "roles": ["R"]}));
        let err = principal(&rules(false), &c, 1).unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidClaim { claim: "tid", reason }
                if reason.contains(OTHER_TID) && reason.contains(TID)),
            "{err}"
        );
        // Tenant ids compare without regard to case.
        let c = claims(json!({"tid": TID.to_uppercase(), "oid": "o1", "azp": "c", "roles": ["R"]}));
        assert!(principal(&rules(false), &c, 1).is_ok());

        let c = claims(json!({"oid": "o1", "azp": "c", "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err(),
            AuthError::MissingClaim("tid")
        );
        let c = claims(json!({"tid": "", "oid": "o1", "azp": "c", "roles": ["R"]}));
        assert_eq!(
            principal(&rules(false), &c, 1).unwrap_err().code(),
            "invalid_claim"
        );

        // A provider whose issuer names no tenant takes any tenant, but still needs `tid`.
        let any = ProviderRules {
            tenant: None,
            ..rules(false)
        };
        let c = claims(json!({"tid": OTHER_TID, "oid": "o1", "azp": "c", "roles": ["R"]}));
        assert_eq!(
            principal(&any, &c, 1).unwrap().subject,
            format!("{OTHER_TID}/o1")
        );
    }
}
