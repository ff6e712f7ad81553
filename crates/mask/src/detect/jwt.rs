//! JSON Web Tokens (JWS compact form, and JWE's five segments): base64url segments joined
//! by dots, whose first segment decodes to a JSON object naming its `alg`.
//!
//! A JOSE header is JSON starting with `{"`, which base64url always encodes as `eyJ`;
//! texts without `eyJ` are skipped with one substring search. Decoding the header is what
//! tells a token from any dotted identifier that happens to start with those letters. An
//! unsigned token (empty last segment, `alg: none`) is found as well: it is a credential
//! to some verifier all the same.

use std::sync::LazyLock;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use memchr::memmem::Finder;
use regex::Regex;
use sluice_config::Detector;

use super::boundary::is_word_byte;
use super::{Finding, Glance};

/// Headers are short; a longer first segment is not a JOSE header.
const MAX_HEADER_CHARS: usize = 4096;

/// The shortest token: `{"alg":""}` is 14 characters of base64url, then two dots and a
/// payload of at least two.
const MIN_TOKEN_LENGTH: usize = 18;

/// How every JOSE header starts, searched for before anything else.
static HEADER_START: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("eyJ"));

static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        eyJ[A-Za-z0-9_\-]+                                # header
        \.[A-Za-z0-9_\-]*                                 # payload (JWE: encrypted key)
        \.[A-Za-z0-9_\-]*                                 # signature (JWE: IV)
        (?:\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*)?           # JWE: ciphertext and tag
        ",
    )
    .expect("the JWT pattern compiles")
});

/// base64url as JWTs write it (no padding), read leniently: a header is only looked at,
/// never trusted, so non-canonical trailing bits do not matter.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(super) fn prepare() {
    LazyLock::force(&TOKEN);
    LazyLock::force(&HEADER_START);
}

/// Whether a value could hold a token: long enough, with a header's `eyJ`.
pub(super) fn possible(bytes: &[u8], _glance: &Glance) -> bool {
    bytes.len() >= MIN_TOKEN_LENGTH && HEADER_START.find(bytes).is_some()
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    for candidate in TOKEN.find_iter(text) {
        if continues_a_token(text, candidate.start()) {
            continue;
        }
        if has_token_segments(candidate.as_str()) {
            found.push(Finding {
                detector: Detector::Jwt,
                range: candidate.range(),
            });
        }
    }
}

/// True when the byte before `start` belongs to base64url, so `eyJ` is not where a
/// segment begins.
fn continues_a_token(text: &str, start: usize) -> bool {
    start > 0 && {
        let previous = text.as_bytes()[start - 1];
        is_word_byte(previous) || previous == b'-'
    }
}

/// True when `candidate` (three or five dot-separated segments) has a JOSE header and,
/// for a JWS, a payload: a signature may be empty (`alg: none`), a payload may not.
fn has_token_segments(candidate: &str) -> bool {
    let mut segments = candidate.split('.');
    let header = segments.next().unwrap_or_default();
    let second = segments.next().unwrap_or_default();
    let is_jwe = segments.count() == 3;
    (is_jwe || !second.is_empty()) && is_jose_header(header)
}

/// True when `segment` decodes to something shaped like a JSON object with an `alg`
/// member. A textual check, not a JSON parse: enough to tell a header from noise.
fn is_jose_header(segment: &str) -> bool {
    if segment.len() > MAX_HEADER_CHARS {
        return false;
    }
    let Ok(decoded) = BASE64URL.decode(segment) else {
        return false;
    };
    let Ok(json) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let json = json.trim();
    json.starts_with('{') && json.ends_with('}') && json.contains("\"alg\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    /// The example token of RFC 7519 §3.1 (HS256).
    const RFC7519: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn jwts(text: &str) -> Vec<&str> {
        found(Detector::Jwt, text)
    }

    #[test]
    fn finds_signed_tokens() {
        assert_eq!(jwts(RFC7519), [RFC7519]);
        assert_eq!(jwts(&format!("Authorization: Bearer {RFC7519}")), [RFC7519]);
        assert_eq!(jwts(&format!("{{\"token\":\"{RFC7519}\"}}")), [RFC7519]);
    }

    #[test]
    fn finds_unsigned_and_encrypted_tokens() {
        // {"alg":"none"} . {"sub":"x"} . (no signature)
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(jwts(&format!("{unsigned} ")), [unsigned]);
        // {"alg":"dir","enc":"A128GCM"} with five segments, the key segment empty.
        let encrypted =
            "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..aXYxMjM0NTY3ODkw.Y2lwaGVydGV4dA.dGFnMTIzNA";
        assert_eq!(jwts(encrypted), [encrypted]);
    }

    #[test]
    fn ignores_lookalikes() {
        // Starts with eyJ, but the header is not JSON with "alg": {"typ":"JWT"}
        assert!(jwts("eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln").is_empty());
        // Not base64 JSON at all.
        assert!(jwts("eyJumble.of.words").is_empty());
        // Two segments only.
        assert!(jwts("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0").is_empty());
        // A header alone, dots and nothing else.
        assert!(jwts("eyJhbGciOiJub25lIn0..").is_empty());
        // eyJ inside a longer token.
        assert!(jwts(&format!("x{RFC7519}")).is_empty());
    }
}
