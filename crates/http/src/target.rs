//! Request targets (`/v1/invoices/7?expand=lines`), read strictly.
//!
//! Path rules are written against decoded segments (`/v1/files/report 2026.pdf`), so the
//! gateway decodes percent-escapes before judging. Decoding is also where proxies and
//! servers disagree: one reads `/a%2Fb` as two segments, another as one; one resolves
//! `/public/../admin`, another does not; one merges `//`. The gateway takes no side: a
//! target whose meaning depends on such a choice is refused, and a target it accepts is
//! forwarded re-encoded in one canonical spelling, so the resource reads exactly the
//! segments the policy judged.

use std::fmt;

/// A request's method and target as judged and forwarded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HttpTarget {
    /// Upper case (`GET`); a token as RFC 9110 defines it.
    pub method: String,
    /// Decoded, starting with `/`: what path rules match.
    pub path: String,
    /// The query string as sent (without `?`), if any; forwarded as it is.
    pub query: Option<String>,
}

/// Why a target is refused (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    #[error("the request target must be a path starting with `/`")]
    NotAPath,
    #[error("the path has an invalid percent-escape")]
    BadEscape,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    #[error(
        "the path holds an encoded `/` or `\\` (`%2F`, `%5C`), which servers read differently"
    )]
    EncodedSeparator,
    #[error("the path holds a backslash, which some servers read as `/`")]
    Backslash,
    #[error("the path holds a `.` or `..` segment; send the path it stands for")]
    DotSegment,
    #[error("the path holds an empty segment (`//`)")]
    EmptySegment,
    #[error("the path holds a control character")]
    ControlCharacter,
    #[error("the request target holds a fragment (`#`)")]
    Fragment,
}

impl HttpTarget {
    /// Reads `method` and a request target in origin form (`/path?query`).
    pub fn parse(method: &str, target: &str) -> Result<Self, TargetError> {
        let is_token = !method.is_empty()
            && method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(TargetError::Method(method.to_string()));
        }
        if target.contains('#') {
            return Err(TargetError::Fragment);
        }
        let (raw_path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (target, None),
        };
        if !raw_path.starts_with('/') {
            return Err(TargetError::NotAPath);
        }
        if query
            .as_deref()
            .is_some_and(|q| q.bytes().any(|b| b.is_ascii_control()))
        {
            return Err(TargetError::ControlCharacter);
        }
        let segments: Vec<&str> = raw_path[1..].split('/').collect();
        let last = segments.len() - 1;
        let mut path = String::with_capacity(raw_path.len());
        for (i, raw) in segments.iter().enumerate() {
            let segment = decode_segment(raw)?;
            // `/` alone, and a trailing slash (`/v1/items/`), are the only empty segments.
            if segment.is_empty() && i != last {
                return Err(TargetError::EmptySegment);
            }
            if segment == "." || segment == ".." {
                return Err(TargetError::DotSegment);
            }
            path.push('/');
            path.push_str(&segment);
        }
        Ok(HttpTarget {
            method: method.to_ascii_uppercase(),
            path,
            query,
        })
    }

    /// The target to send the resource: the judged path, each segment re-encoded (only
    /// what must be escaped is), and the query as received.
    pub fn forwarded(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 8);
        for segment in self.path[1..].split('/') {
            out.push('/');
            for byte in segment.bytes() {
                if is_unescaped_in_segment(byte) {
                    out.push(byte as char);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// RFC 3986 `pchar` without `%`: unreserved, sub-delims, `:` and `@`.
fn is_unescaped_in_segment(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte)
}

fn decode_segment(raw: &str) -> Result<String, TargetError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(TargetError::BadEscape)?;
                // Two hex digits exactly: `from_str_radix` alone would take `%+1`.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(TargetError::BadEscape);
                }
                let hex = std::str::from_utf8(hex).map_err(|_| TargetError::BadEscape)?;
                let decoded = u8::from_str_radix(hex, 16).map_err(|_| TargetError::BadEscape)?;
                if decoded == b'/' || decoded == b'\\' {
                    return Err(TargetError::EncodedSeparator);
                }
                out.push(decoded);
                i += 3;
            }
            b'\\' => return Err(TargetError::Backslash),
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| TargetError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(TargetError::ControlCharacter);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::{HttpTarget, TargetError};

    fn path(target: &str) -> Result<String, TargetError> {
        HttpTarget::parse("GET", target).map(|t| t.path)
    }

    #[test]
    fn plain_targets_read_as_written() {
        let t = HttpTarget::parse("get", "/v1/invoices/7?expand=lines&x=%2F").unwrap();
        assert_eq!(t.method, "GET");
        assert_eq!(t.path, "/v1/invoices/7");
        assert_eq!(t.query.as_deref(), Some("expand=lines&x=%2F"));
        assert_eq!(t.to_string(), "GET /v1/invoices/7");
        assert_eq!(path("/").unwrap(), "/");
        assert_eq!(path("/v1/items/").unwrap(), "/v1/items/");
        assert_eq!(
            path("/files/report%202026.pdf").unwrap(),
            "/files/report 2026.pdf"
        );
        assert_eq!(path("/caf%C3%A9").unwrap(), "/café");
    }

    #[test]
    fn ambiguous_targets_are_refused() {
        assert_eq!(path("/a%2Fb"), Err(TargetError::EncodedSeparator));
        assert_eq!(path("/a%2fb"), Err(TargetError::EncodedSeparator));
        assert_eq!(path("/a%5Cb"), Err(TargetError::EncodedSeparator));
        assert_eq!(path("/a\\b"), Err(TargetError::Backslash));
        assert_eq!(path("/public/../admin"), Err(TargetError::DotSegment));
        assert_eq!(path("/public/%2e%2e/admin"), Err(TargetError::DotSegment));
        assert_eq!(path("/public/%2E/admin"), Err(TargetError::DotSegment));
        assert_eq!(path("/./admin"), Err(TargetError::DotSegment));
        assert_eq!(path("/public//admin"), Err(TargetError::EmptySegment));
        assert_eq!(path("//admin"), Err(TargetError::EmptySegment));
        assert_eq!(path("/a%00b"), Err(TargetError::ControlCharacter));
        assert_eq!(path("/a%0d%0aX: y"), Err(TargetError::ControlCharacter));
        assert_eq!(path("/a%zz"), Err(TargetError::BadEscape));
        assert_eq!(path("/a%4"), Err(TargetError::BadEscape));
        assert_eq!(path("/a%ff"), Err(TargetError::NotUtf8));
        assert_eq!(path("admin"), Err(TargetError::NotAPath));
        assert_eq!(path("http://evil/admin"), Err(TargetError::NotAPath));
        assert_eq!(path("*"), Err(TargetError::NotAPath));
        assert_eq!(path("/a#b"), Err(TargetError::Fragment));
        assert!(matches!(
            HttpTarget::parse("GE T", "/"),
            Err(TargetError::Method(_))
        ));
    }

    #[test]
    fn what_is_forwarded_reads_back_as_what_was_judged() {
        for target in [
            "/v1/a b/c",
            "/caf%C3%A9/x?y=1",
            "/x/%25/y",
            "/a;b=c/@d:e/",
            "/",
        ] {
            let judged = HttpTarget::parse("GET", target).unwrap();
            let again = HttpTarget::parse("GET", &judged.forwarded()).unwrap();
            assert_eq!(again, judged, "{target} -> {}", judged.forwarded());
        }
        assert_eq!(
            HttpTarget::parse("GET", "/x/%25/a%20b")
                .unwrap()
                .forwarded(),
            "/x/%25/a%20b"
        );
    }
}
