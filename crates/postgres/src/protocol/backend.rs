//! Server messages: the ones the gateway writes to clients itself, and the error fields
//! it reads from the resource's errors.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::BodyReader;

/// Any tagged message: `tag | length | body`.
pub fn message(tag: u8, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 5);
    buf.put_u8(tag);
    buf.put_i32(body.len() as i32 + 4);
    buf.put_slice(body);
    buf.freeze()
}

/// `R` AuthenticationCleartextPassword: the client's token or API key travels as the
/// password, as Azure Database for PostgreSQL does with Entra tokens.
pub fn authentication_cleartext_password() -> Bytes {
    message(b'R', &3i32.to_be_bytes())
}

/// `R` AuthenticationOk.
pub fn authentication_ok() -> Bytes {
    message(b'R', &0i32.to_be_bytes())
}

/// `K` BackendKeyData: the key a client presents to cancel its query.
pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&pid.to_be_bytes());
    body[4..].copy_from_slice(&secret.to_be_bytes());
    message(b'K', &body)
}

/// `Z` ReadyForQuery with a transaction status (`I`, `T`, `E`).
pub fn ready_for_query(status: u8) -> Bytes {
    message(b'Z', &[status])
}

/// `v` NegotiateProtocolVersion: the newest minor version supported and the protocol
/// options not recognised.
pub fn negotiate_protocol_version(minor: i32, unrecognized: &[String]) -> Bytes {
    let mut body = Vec::new();
    body.extend_from_slice(&minor.to_be_bytes());
    body.extend_from_slice(&(unrecognized.len() as i32).to_be_bytes());
    for option in unrecognized {
        body.extend_from_slice(option.as_bytes());
        body.push(0);
    }
    message(b'v', &body)
}

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// `E` ErrorResponse (or `N` NoticeResponse for [`Severity::Notice`]).
pub fn error_response(
    severity: Severity,
    code: &str,
    message_text: &str,
    hint: Option<&str>,
) -> Bytes {
    error_response_at(severity, code, message_text, hint, None)
}

/// [`error_response`] with the position (`P`: 1-based, in characters) in the statement the
/// error is about, which psql shows as a `LINE n:` excerpt with a caret.
pub fn error_response_at(
    severity: Severity,
    code: &str,
    message_text: &str,
    hint: Option<&str>,
    position: Option<u32>,
) -> Bytes {
    let mut body = Vec::with_capacity(message_text.len() + 32);
    let mut field = |tag: u8, value: &str| {
        body.push(tag);
        // A NUL inside a field would end it early; replace it rather than truncate.
        body.extend(value.bytes().map(|b| if b == 0 { b'?' } else { b }));
        body.push(0);
    };
    field(b'S', severity.as_str());
    field(b'V', severity.as_str());
    field(b'C', code);
    field(b'M', message_text);
    if let Some(hint) = hint {
        field(b'H', hint);
    }
    if let Some(position) = position {
        field(b'P', &position.to_string());
    }
    body.push(0);
    message(
        if severity == Severity::Notice {
            b'N'
        } else {
            b'E'
        },
        &body,
    )
}

/// The code (`C`) and message (`M`) fields of an ErrorResponse body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut r = BodyReader::new(body);
    let (mut code, mut text) = (String::new(), String::new());
    while let Ok(tag) = r.u8("ErrorResponse") {
        if tag == 0 {
            break;
        }
        let Ok(value) = r.cstr("ErrorResponse") else {
            break;
        };
        match tag {
            b'C' => code = value.to_string(),
            b'M' => text = value.to_string(),
            _ => {}
        }
    }
    (code, text)
}
