//! Client messages the gateway judges, decoded from their frames.

use super::codec::{BodyReader, Frame, Malformed};

/// A decoded client message of the extended or simple query protocol.
#[derive(Debug)]
pub enum FrontendMessage<'a> {
    /// `Q`: one or more statements.
    Query {
        sql: &'a str,
    },
    /// `P`: prepare `sql` as statement `name` (`""` = unnamed).
    Parse {
        name: &'a str,
        sql: &'a str,
    },
    /// `B`: bind statement `statement` into portal `portal`.
    Bind {
        portal: &'a str,
        statement: &'a str,
    },
    /// `D`: describe a statement (`S`) or portal (`P`).
    Describe {
        kind: u8,
        name: &'a str,
    },
    /// `E`: run a portal.
    Execute {
        portal: &'a str,
    },
    /// `C`: close a statement (`S`) or portal (`P`).
    Close {
        kind: u8,
        name: &'a str,
    },
    /// `S`
    Sync,
    /// `H`
    Flush,
    /// `X`
    Terminate,
    /// `F`: the legacy fast-path function call.
    FunctionCall,
    /// `d`, `c`, `f`: COPY FROM STDIN data, done, fail.
    CopyData,
    CopyDone,
    CopyFail,
    /// Anything else: not valid after startup.
    Other(u8),
}

impl<'a> FrontendMessage<'a> {
    pub fn decode(frame: &'a Frame) -> Result<Self, Malformed> {
        let mut r = BodyReader::new(frame.body());
        Ok(match frame.tag {
            b'Q' => FrontendMessage::Query {
                sql: r.cstr("Query")?,
            },
            b'P' => {
                let name = r.cstr("Parse")?;
                let sql = r.cstr("Parse")?;
                FrontendMessage::Parse { name, sql }
            }
            b'B' => {
                let portal = r.cstr("Bind")?;
                let statement = r.cstr("Bind")?;
                FrontendMessage::Bind { portal, statement }
            }
            b'D' => {
                let kind = r.u8("Describe")?;
                FrontendMessage::Describe {
                    kind,
                    name: r.cstr("Describe")?,
                }
            }
            b'E' => FrontendMessage::Execute {
                portal: r.cstr("Execute")?,
            },
            b'C' => {
                let kind = r.u8("Close")?;
                FrontendMessage::Close {
                    kind,
                    name: r.cstr("Close")?,
                }
            }
            b'S' => FrontendMessage::Sync,
            b'H' => FrontendMessage::Flush,
            b'X' => FrontendMessage::Terminate,
            b'F' => FrontendMessage::FunctionCall,
            b'd' => FrontendMessage::CopyData,
            b'c' => FrontendMessage::CopyDone,
            b'f' => FrontendMessage::CopyFail,
            other => FrontendMessage::Other(other),
        })
    }
}

/// Encodes `D` (Describe) of a portal.
pub fn describe_portal(portal: &str) -> bytes::Bytes {
    let mut body = vec![b'P'];
    body.extend_from_slice(portal.as_bytes());
    body.push(0);
    crate::protocol::backend::message(b'D', &body)
}

/// Encodes `E` (Execute) of `portal`, fetching all rows.
pub fn execute(portal: &str) -> bytes::Bytes {
    let mut body = Vec::with_capacity(portal.len() + 5);
    body.extend_from_slice(portal.as_bytes());
    body.push(0);
    body.extend_from_slice(&0i32.to_be_bytes());
    super::backend::message(b'E', &body)
}

/// Encodes `Q` (Query).
pub fn query(sql: &str) -> bytes::Bytes {
    let mut body = Vec::with_capacity(sql.len() + 1);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    super::backend::message(b'Q', &body)
}

/// `frame` (a Parse, Bind, Describe, Close or Execute) with its leading names replaced by
/// `names`: Parse's statement; Bind's portal and statement; Execute's portal; the name
/// after Describe's and Close's kind byte. Everything after them is kept as it is. The
/// frame must have been decoded (its names are there).
pub fn renamed(frame: &Frame, names: &[&str]) -> bytes::Bytes {
    let body = frame.body();
    let kind = usize::from(matches!(frame.tag, b'D' | b'C'));
    let mut end = kind;
    for _ in names {
        end += body[end..]
            .iter()
            .position(|&b| b == 0)
            .expect("a decoded frame holds its names")
            + 1;
    }
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(&body[..kind]);
    for name in names {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(&body[end..]);
    super::backend::message(frame.tag, &out)
}
