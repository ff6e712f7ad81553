//! Taking a compact JWS apart before anything trusts it: size limit, the three parts,
//! base64url, JSON, and the header rules (algorithm allow-list, `kid`, `crit`).
//!
//! Nothing here verifies a signature; [`crate::validator`] does that with the key the
//! header names. Everything the header says is attacker-controlled at this point, which is
//! why the algorithm is checked against a fixed allow-list here, before a key is even
//! looked up: an `HS256` header must never reach a code path that could treat a public key
//! as an HMAC secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::AuthError;

/// Tokens above this size are refused before any parsing. Real access tokens are a few
/// KiB; the limit bounds the work an unauthenticated client can cause.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The signature algorithms Sluice accepts (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigAlg {
    Rs256,
    Ps256,
    Es256,
}

impl SigAlg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SigAlg::Rs256 => "RS256",
            SigAlg::Ps256 => "PS256",
            SigAlg::Es256 => "ES256",
        }
    }

    pub(crate) fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            SigAlg::Ps256 => jsonwebtoken::Algorithm::PS256,
            SigAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    /// Maps a header `alg` to an accepted algorithm, or to the reason it is refused.
    fn from_header(alg: &str) -> Result<SigAlg, AuthError> {
        match alg {
            "RS256" => Ok(SigAlg::Rs256),
            "PS256" => Ok(SigAlg::Ps256),
            "ES256" => Ok(SigAlg::Es256),
            // Case-insensitive: some libraries have accepted "None" or "NONE".
            a if a.eq_ignore_ascii_case("none") => Err(AuthError::AlgNone),
            a if a.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) => {
                Err(AuthError::SymmetricAlgorithm(a.to_string()))
            }
            a => Err(AuthError::UnsupportedAlgorithm(a.to_string())),
        }
    }
}

/// A token whose structure and header passed; its signature is not yet checked.
#[derive(Debug)]
pub(crate) struct UnverifiedToken<'a> {
    pub alg: SigAlg,
    pub kid: String,
    pub claims: Map<String, Value>,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third part, still base64url (the verifier decodes it).
    pub signature: &'a str,
}

/// Parses a compact JWS. The caller has already enforced [`MAX_TOKEN_BYTES`].
pub(crate) fn parse(token: &str) -> Result<UnverifiedToken<'_>, AuthError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 5 {
        return Err(AuthError::Malformed(
            "it is an encrypted token (JWE), which is not supported; request a signed access token"
                .into(),
        ));
    }
    if parts.len() != 3 {
        return Err(AuthError::Malformed(format!(
            "a signed token has 3 dot-separated parts, this one has {}",
            parts.len()
        )));
    }

    let header = decode_json_object(parts[0], "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => SigAlg::from_header(alg)?,
        Some(_) => return Err(AuthError::Malformed("header `alg` is not a string".into())),
        None => return Err(AuthError::Malformed("header has no `alg`".into())),
    };
    // RFC 7515 §4.1.11: a recipient that does not understand a critical extension must
    // refuse the token. We understand none.
    if let Some(crit) = header.get("crit") {
        return Err(AuthError::UnsupportedCritical(crit.to_string()));
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        Some(Value::String(_)) | None => return Err(AuthError::MissingKeyId),
        Some(_) => return Err(AuthError::Malformed("header `kid` is not a string".into())),
    };

    let claims = decode_json_object(parts[1], "payload")?;

    if parts[2].is_empty() {
        return Err(AuthError::Malformed("the signature part is empty".into()));
    }
    if URL_SAFE_NO_PAD.decode(parts[2]).is_err() {
        return Err(AuthError::Malformed(
            "the signature part is not valid base64url".into(),
        ));
    }

    let signing_input_len = parts[0].len() + 1 + parts[1].len();
    Ok(UnverifiedToken {
        alg,
        kid,
        claims,
        signing_input: &token[..signing_input_len],
        signature: parts[2],
    })
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(format!("the {what} is not valid base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(_) => Err(AuthError::Malformed(format!(
            "the {what} is not valid JSON"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    #[test]
    fn accepts_a_well_formed_token() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            r#"{"iss":"x"}"#,
        );
        let parsed = parse(&t).unwrap();
        assert_eq!(parsed.alg, SigAlg::Rs256);
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.claims["iss"], "x");
        assert_eq!(parsed.signing_input, t.rsplit_once('.').unwrap().0);
    }

    #[test]
    fn refuses_each_bad_header() {
        let cases = [
            (r#"{"alg":"none","kid":"k"}"#, "alg_none"),
            (r#"{"alg":"nOnE","kid":"k"}"#, "alg_none"),
            (r#"{"alg":"HS256","kid":"k"}"#, "alg_symmetric"),
            (r#"{"alg":"HS512","kid":"k"}"#, "alg_symmetric"),
            (r#"{"alg":"RS512","kid":"k"}"#, "alg_unsupported"),
            (r#"{"alg":"EdDSA","kid":"k"}"#, "alg_unsupported"),
            (r#"{"alg":"RS256"}"#, "missing_kid"),
            (r#"{"alg":"RS256","kid":""}"#, "missing_kid"),
            (
                r#"{"alg":"RS256","kid":"k","crit":["b64"]}"#,
                "unsupported_crit",
            ),
            (r#"{"kid":"k"}"#, "malformed"),
            (r#"["alg"]"#, "malformed"),
            (r#"{"alg":"RS256","kid":"k""#, "malformed"),
        ];
        for (header, code) in cases {
            let err = parse(&token(header, "{}")).unwrap_err();
            assert_eq!(err.code(), code, "header {header}: {err}");
        }
    }

    #[test]
    fn refuses_bad_structure() {
        for t in ["", "a.b", "a.b.c.d", "!!!.e30.c2ln", "e30.!!!.c2ln"] {
            assert_eq!(parse(t).unwrap_err().code(), "malformed", "{t}");
        }
        let jwe = "a.b.c.d.e";
        assert!(parse(jwe).unwrap_err().to_string().contains("JWE"));
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"RS256","kid":"k"}"#), b64("{}"));
        assert_eq!(parse(&unsigned).unwrap_err().code(), "malformed");
    }
}
