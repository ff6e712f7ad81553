//! A Kubernetes API request's authorization attributes, read from its method, path and
//! query exactly as the API server's own `RequestInfoFactory` reads them (k8s.io/apiserver,
//! `pkg/endpoints/request/requestinfo.go`), so the gateway judges the request the server
//! will carry out:
//!
//! - `/api/v1/...` is the core group, `/apis/<group>/<version>/...` a named one; anything
//!   shorter or elsewhere (`/api`, `/apis/apps`, `/healthz`) is a non-resource path whose
//!   verb is the lower-case method;
//! - `namespaces/<ns>/<resource>/...` is namespaced; `namespaces/<ns>` alone (and its
//!   `status` and `finalize` subresources) is the namespace object itself;
//! - `resource/name/subresource` (`pods/web-0/exec`); `watch/` and `proxy/` before the
//!   resource are the old special verbs;
//! - a `GET` without a name is `list`, or `watch` with `?watch=true`; a `DELETE` without
//!   a name is `deletecollection`; `fieldSelector=metadata.name=x` names the object of
//!   a list or watch.
//!
//! Where the server would read a query two ways (a repeated `watch`, a value its boolean
//! parser does not take) the request is refused instead.

use sluice_policy::{KubeRequest, KubeTarget};

use crate::target::HttpTarget;

/// Why a request cannot be read as a Kubernetes request (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeRequestError {
    #[error("`{0}` needs a resource after it")]
    SpecialVerbWithoutResource(String),
    #[error("the query has `{0}` more than once")]
    RepeatedParameter(&'static str),
    #[error("the query is not valid percent-encoding")]
    Query,
    #[error(
        "the query holds `;`, which the API server drops pairs over; send `&` between parameters"
    )]
    Semicolon,
}

/// Reads `target` (already checked by [`HttpTarget::parse`]) as the API server would.
pub fn request_info(target: &HttpTarget) -> Result<KubeRequest, KubeRequestError> {
    let query = Query::parse(target.query.as_deref())?;
    let dry_run = query.all("dryRun").any(|v| v == "All");
    let non_resource = || KubeRequest {
        verb: target.method.to_ascii_lowercase(),
        target: KubeTarget::NonResource {
            path: target.path.clone(),
        },
        dry_run,
    };
    let parts: Vec<&str> = target
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if parts.len() < 3 {
        return Ok(non_resource());
    }
    let (api_group, rest) = match parts[0] {
        "api" => ("", &parts[1..]),
        "apis" if parts.len() >= 4 => (parts[1], &parts[2..]),
        _ => return Ok(non_resource()),
    };
    let api_version = rest[0];
    let mut rest = &rest[1..];

    let mut verb = match target.method.as_str() {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
    .to_string();
    if matches!(rest[0], "watch" | "proxy") {
        if rest.len() < 2 {
            return Err(KubeRequestError::SpecialVerbWithoutResource(
                rest[0].to_string(),
            ));
        }
        verb = rest[0].to_string();
        rest = &rest[1..];
    }

    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }

    let resource = rest[0].to_string();
    let mut name = rest.get(1).map(|n| n.to_string());
    let subresource = (rest.len() >= 3 && verb != "proxy").then(|| rest[2].to_string());

    // exec, attach and port-forward run something whatever the method (kubectl's
    // WebSocket exec is a GET): judged as `create`, as Kubernetes 1.31+ checks them.
    if verb == "get" && subresource.as_deref().is_some_and(is_streaming_subresource) {
        verb = "create".into();
    }
    if name.is_none() && verb == "get" {
        verb = if query.watch()? { "watch" } else { "list" }.to_string();
        name = query.field_selector_name()?;
    }
    if name.is_none() && verb == "delete" {
        verb = "deletecollection".into();
    }

    Ok(KubeRequest {
        verb,
        target: KubeTarget::Resource {
            api_group: api_group.to_string(),
            api_version: api_version.to_string(),
            resource,
            subresource,
            namespace,
            name,
        },
        dry_run,
    })
}

/// Subresources that open a stream into a running container.
pub fn is_streaming_subresource(subresource: &str) -> bool {
    matches!(subresource, "exec" | "attach" | "portforward")
}

/// The decoded query parameters, in order (`+` is a space, as Go's `url.ParseQuery`).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Result<Self, KubeRequestError> {
        // Go's `url.ParseQuery` skips a pair holding `;` (the server would read
        // `fieldSelector=metadata.name=db;x` as no selector at all): refuse instead.
        if query.is_some_and(|q| q.contains(';')) {
            return Err(KubeRequestError::Semicolon);
        }
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(Query(pairs))
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn one(&self, key: &'static str) -> Result<Option<&str>, KubeRequestError> {
        let mut values = self.all(key);
        match (values.next(), values.next()) {
            (first, None) => Ok(first),
            _ => Err(KubeRequestError::RepeatedParameter(key)),
        }
    }

    /// `watch`, as the API server converts it (`Convert_Slice_string_To_bool`): `0` or
    /// `false` in any case is false, anything else (`f`, an empty value) true.
    fn watch(&self) -> Result<bool, KubeRequestError> {
        Ok(match self.one("watch")? {
            None => false,
            Some(value) => !(value == "0" || value.eq_ignore_ascii_case("false")),
        })
    }

    /// The object a list or watch is narrowed to by `fieldSelector=metadata.name=x`.
    /// Only the plain one-term form counts; any other selector names no object (which
    /// only a rule without `names` covers).
    fn field_selector_name(&self) -> Result<Option<String>, KubeRequestError> {
        let Some(selector) = self.one("fieldSelector")? else {
            return Ok(None);
        };
        let value = selector
            .strip_prefix("metadata.name==")
            .or_else(|| selector.strip_prefix("metadata.name="));
        Ok(value
            .filter(|v| is_path_segment_name(v) && !v.contains([',', '\\', '=', '!']))
            .map(str::to_string))
    }
}

/// `path.IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn is_path_segment_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
}

fn decode(text: &str) -> Result<String, KubeRequestError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(KubeRequestError::Query)?;
                // Two hex digits exactly, as Go requires (`from_str_radix` takes `+1`).
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(KubeRequestError::Query);
                }
                let hex = std::str::from_utf8(hex).map_err(|_| KubeRequestError::Query)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| KubeRequestError::Query)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8(out).map_err(|_| KubeRequestError::Query)?;
    if text.chars().any(char::is_control) {
        return Err(KubeRequestError::Query);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, target: &str) -> KubeRequest {
        request_info(&HttpTarget::parse(method, target).expect("target")).expect("request")
    }

    fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        sub: Option<&str>,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        (
            verb.into(),
            group.into(),
            resource.into(),
            sub.map(Into::into),
            ns.map(Into::into),
            name.map(Into::into),
        )
    }

    fn attrs(
        r: &KubeRequest,
    ) -> (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        match &r.target {
            KubeTarget::Resource {
                api_group,
                resource,
                subresource,
                namespace,
                name,
                ..
            } => (
                r.verb.clone(),
                api_group.clone(),
                resource.clone(),
                subresource.clone(),
                namespace.clone(),
                name.clone(),
            ),
            KubeTarget::NonResource { path } => panic!("non-resource {path}"),
        }
    }

    #[test]
    fn reads_requests_as_the_api_server_does() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/staging/pods",
                resource("list", "", "pods", None, Some("staging"), None),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/pods?watch=true&resourceVersion=5",
                resource("watch", "", "pods", None, Some("staging"), None),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/staging/pods",
                resource("watch", "", "pods", None, Some("staging"), None),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/staging/pods/web",
                resource("watch", "", "pods", None, Some("staging"), Some("web")),
            ),
            (
                "GET",
                "/api/v1/pods",
                resource("list", "", "pods", None, None, None),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/pods/web",
                resource("get", "", "pods", None, Some("staging"), Some("web")),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/staging/pods/web",
                resource("get", "", "pods", None, Some("staging"), Some("web")),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/pods/web/log?container=app",
                resource("get", "", "pods", Some("log"), Some("staging"), Some("web")),
            ),
            (
                "POST",
                "/api/v1/namespaces/staging/pods/web/exec?command=sh",
                resource(
                    "create",
                    "",
                    "pods",
                    Some("exec"),
                    Some("staging"),
                    Some("web"),
                ),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/pods/web/exec?command=sh",
                resource(
                    "create",
                    "",
                    "pods",
                    Some("exec"),
                    Some("staging"),
                    Some("web"),
                ),
            ),
            (
                "POST",
                "/api/v1/namespaces/staging/pods/web/portforward",
                resource(
                    "create",
                    "",
                    "pods",
                    Some("portforward"),
                    Some("staging"),
                    Some("web"),
                ),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/staging/pods/web",
                resource("delete", "", "pods", None, Some("staging"), Some("web")),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/staging/pods",
                resource("deletecollection", "", "pods", None, Some("staging"), None),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/staging/deployments/api/scale",
                resource(
                    "patch",
                    "apps",
                    "deployments",
                    Some("scale"),
                    Some("staging"),
                    Some("api"),
                ),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/staging/deployments/api",
                resource(
                    "update",
                    "apps",
                    "deployments",
                    None,
                    Some("staging"),
                    Some("api"),
                ),
            ),
            (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                resource(
                    "create",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    None,
                    None,
                    None,
                ),
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                resource("get", "", "nodes", None, None, Some("n1")),
            ),
            // The namespace object itself is in its own namespace.
            (
                "GET",
                "/api/v1/namespaces/staging",
                resource(
                    "get",
                    "",
                    "namespaces",
                    None,
                    Some("staging"),
                    Some("staging"),
                ),
            ),
            (
                "PUT",
                "/api/v1/namespaces/staging/finalize",
                resource(
                    "update",
                    "",
                    "namespaces",
                    Some("finalize"),
                    Some("staging"),
                    Some("staging"),
                ),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/status",
                resource(
                    "get",
                    "",
                    "namespaces",
                    Some("status"),
                    Some("staging"),
                    Some("staging"),
                ),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                resource("list", "", "namespaces", None, None, None),
            ),
            // A list narrowed to one object names it.
            (
                "GET",
                "/api/v1/namespaces/staging/secrets?fieldSelector=metadata.name%3Ddb",
                resource("list", "", "secrets", None, Some("staging"), Some("db")),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/secrets?fieldSelector=metadata.name%3Ddb%2Ctype%3Dx",
                resource("list", "", "secrets", None, Some("staging"), None),
            ),
            // The old proxy verb takes no subresource: the rest is the proxied path.
            (
                "GET",
                "/api/v1/proxy/namespaces/staging/services/web/admin",
                resource("proxy", "", "services", None, Some("staging"), Some("web")),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/services/web/proxy/admin",
                resource(
                    "get",
                    "",
                    "services",
                    Some("proxy"),
                    Some("staging"),
                    Some("web"),
                ),
            ),
            (
                "GET",
                "/api/v1/namespaces/staging/pods/",
                resource("list", "", "pods", None, Some("staging"), None),
            ),
        ];
        for (method, target, want) in cases {
            assert_eq!(attrs(&info(method, target)), want, "{method} {target}");
        }
    }

    #[test]
    fn short_and_foreign_paths_are_non_resource() {
        for (method, target, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/version", "get"),
            ("GET", "/healthz/etcd", "get"),
            ("POST", "/logs/x/y", "post"),
        ] {
            let r = info(method, target);
            assert_eq!(r.verb, verb);
            assert_eq!(
                r.target,
                KubeTarget::NonResource {
                    path: target.to_string()
                }
            );
        }
        assert!(info("GET", "/apis/apps/v1").is_discovery());
        assert!(info("GET", "/openapi/v2").is_discovery());
        assert!(!info("GET", "/healthz").is_discovery());
        assert!(!info("POST", "/api").is_discovery());
    }

    #[test]
    fn ambiguous_queries_are_refused() {
        let parse = |t: &str| request_info(&HttpTarget::parse("GET", t).expect("target"));
        assert_eq!(
            parse("/api/v1/pods?watch=true&watch=false"),
            Err(KubeRequestError::RepeatedParameter("watch"))
        );
        // `watch` as the server converts it: only `0` and `false` (any case) are false.
        for (value, verb) in [
            ("f", "watch"),
            ("", "watch"),
            ("yes", "watch"),
            ("FALSE", "list"),
            ("0", "list"),
        ] {
            assert_eq!(
                parse(&format!("/api/v1/pods?watch={value}")).unwrap().verb,
                verb,
                "{value:?}"
            );
        }
        assert_eq!(parse("/api/v1/pods?watch").unwrap().verb, "watch");
        // Go drops a pair with a bad escape; `from_str_radix` alone would take `%+0`.
        assert_eq!(
            parse("/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dapp-x%+0"),
            Err(KubeRequestError::Query)
        );
        assert_eq!(
            parse("/api/v1/pods?watch=%zz"),
            Err(KubeRequestError::Query)
        );
        assert_eq!(
            parse("/api/v1/namespaces/a/secrets?fieldSelector=metadata.name%3Ddb;x"),
            Err(KubeRequestError::Semicolon)
        );
        assert_eq!(
            parse("/api/v1/watch"),
            Err(KubeRequestError::SpecialVerbWithoutResource("watch".into()))
        );
        // Named requests ignore `watch`, as the server does.
        assert_eq!(
            parse("/api/v1/namespaces/a/pods/b?watch=1").unwrap().verb,
            "get"
        );
    }

    #[test]
    fn dry_run_is_read() {
        assert!(info("DELETE", "/api/v1/namespaces/a/pods/b?dryRun=All").dry_run);
        assert!(!info("DELETE", "/api/v1/namespaces/a/pods/b").dry_run);
    }
}
