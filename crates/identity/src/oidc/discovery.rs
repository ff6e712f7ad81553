//! OpenID Connect discovery: from an issuer to its `jwks_uri`, and the bounded HTTP GET both
//! discovery and JWKS fetches use.
//!
//! Only `jwks_uri` is taken from the discovery document; Sluice validates access tokens and
//! needs nothing else from it. The document's `issuer` must equal the configured issuer
//! (OpenID Connect Discovery §4.3), so a misconfigured or hijacked path cannot hand us
//! another tenant's keys.

use reqwest::Url;
use serde_json::Value;

/// Discovery documents and JWKS are a few KiB; anything far larger is not one.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// `<issuer>/.well-known/openid-configuration`.
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetches the discovery document and returns the JWKS URL it names.
pub(crate) async fn fetch_jwks_uri(http: &reqwest::Client, issuer: &str) -> Result<String, String> {
    let url = discovery_url(issuer);
    let doc = get_json(http, &url).await?;
    let doc_issuer = doc.get("issuer").and_then(Value::as_str);
    if doc_issuer != Some(issuer) {
        return Err(format!(
            "discovery document at {url} names issuer {}, not the configured {issuer}",
            doc_issuer.map_or_else(|| "(none)".to_string(), |i| format!("`{i}`"))
        ));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("discovery document at {url} has no jwks_uri"))?;
    check_jwks_uri(issuer, jwks_uri)?;
    Ok(jwks_uri.to_string())
}

/// The JWKS must come over TLS, except from a provider that is itself plain HTTP on
/// loopback (tests, local development), which the configuration check already limited.
fn check_jwks_uri(issuer: &str, jwks_uri: &str) -> Result<(), String> {
    let url =
        Url::parse(jwks_uri).map_err(|e| format!("jwks_uri `{jwks_uri}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if issuer.starts_with("http://") && super::is_loopback(&url) => Ok(()),
        _ => Err(format!(
            "jwks_uri `{jwks_uri}` is not https; signing keys must not travel unprotected"
        )),
    }
}

/// GETs a JSON document with the client's timeouts, refusing non-200 answers and bodies
/// over [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let mut response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url} failed: {}", error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!(
            "GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: reading the body failed: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// reqwest's top-level message ("error sending request") hides the cause (connection
/// refused, timeout, certificate); operators need the cause.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_appends_well_known() {
        assert_eq!(
            discovery_url("https://login.microsoftonline.com/t/v2.0"),
            "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp/"),
            "https://idp/.well-known/openid-configuration"
        );
    }

    #[test]
    fn jwks_uri_must_be_https_unless_loopback_http_provider() {
        assert!(check_jwks_uri("https://idp", "https://idp/keys").is_ok());
        assert!(check_jwks_uri("https://idp", "http://idp/keys").is_err());
        assert!(check_jwks_uri("http://127.0.0.1:1/x", "http://127.0.0.1:1/x/jwks").is_ok());
        assert!(check_jwks_uri("http://127.0.0.1:1/x", "http://evil.example/jwks").is_err());
        assert!(check_jwks_uri("https://idp", "not a url").is_err());
    }
}
