//! Canonical JSON: the exact bytes that are hashed and signed.
//!
//! A value is first turned into a `serde_json::Value`, then written with
//!
//! - no whitespace at all;
//! - object keys sorted by their UTF-8 bytes, at every depth;
//! - strings escaped as `serde_json` escapes them: `"` and `\` backslashed, control
//!   characters as `\n`, `\t`, `\r`, `\b`, `\f` or `\u00xx` (lowercase hex), everything
//!   else as raw UTF-8;
//! - numbers as `serde_json` writes them: integers in decimal; the only floats that can
//!   occur are inside a request's protocol-specific `classification`, written in the
//!   shortest form that reads back as the same `f64`. This crate turns on `serde_json`'s
//!   `float_roundtrip`, without which reading a stored float may land one unit in the
//!   last place off, and the event would no longer hash as it did when it was written.
//!
//! Sorting keys, rather than relying on struct declaration order, makes the bytes
//! independent of how the Rust types are declared and of whether `serde_json`'s
//! `preserve_order` feature is on anywhere in the build, and lets an auditor recompute a
//! hash without Sluice: `jq -cjS 'del(.hash)' | sha256sum` gives the same bytes for an
//! exported event (jq prints some floats, such as `0.1`, differently; integers and
//! strings agree).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

/// The canonical form of `value`, written to `out`. The audit types only have string
/// keys and finite numbers, so turning them into a JSON value cannot fail.
pub(crate) fn write<T: Serialize + ?Sized>(value: &T, out: &mut impl Write) -> io::Result<()> {
    let value = serde_json::to_value(value).map_err(io::Error::other)?;
    write_value(&value, out)
}

pub(crate) fn write_value(value: &Value, out: &mut impl Write) -> io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
            out.write_all(b"{")?;
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                write_value(value, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                write_value(item, out)?;
            }
            out.write_all(b"]")
        }
        scalar => serde_json::to_writer(out, scalar).map_err(io::Error::other),
    }
}

/// The canonical form of `event` without its `hash`, written field by field in sorted key
/// order, with no intermediate JSON value: the same bytes as [`write`] on the event with
/// `hash` removed (the property tests hold it to that), at a fraction of the allocations.
/// A field added to an event type must be added here too, or those tests fail.
pub(crate) fn event(event: &crate::Event, out: &mut impl Write) -> io::Result<()> {
    use crate::EventBody;
    let mut o = Obj::open(out)?;
    o.key("at")?;
    o.scalar(&event.at)?;
    o.key("body")?;
    {
        let out = &mut *o.out;
        let mut b = Obj::open(out)?;
        match &event.body {
            EventBody::SessionOpened(v) => {
                b.key("client_addr")?;
                b.scalar(&v.client_addr)?;
                b.key("connection")?;
                b.scalar(&v.connection)?;
                b.kind("session_opened")?;
                b.key("principal")?;
                principal(&v.principal, &mut *b.out)?;
                b.key("protocol")?;
                b.scalar(&v.protocol)?;
                b.key("tls")?;
                b.scalar(&v.tls)?;
            }
            EventBody::LoginRefused(v) => {
                b.key("client_addr")?;
                b.scalar(&v.client_addr)?;
                b.key("connection")?;
                b.scalar(&v.connection)?;
                b.kind("login_refused")?;
                b.key("protocol")?;
                b.scalar(&v.protocol)?;
                b.key("reason")?;
                b.scalar(&v.reason)?;
            }
            EventBody::Request(v) => {
                b.key("approval_id")?;
                b.scalar(&v.approval_id)?;
                b.key("classification")?;
                write_value(&v.classification, &mut *b.out)?;
                b.key("decision")?;
                b.scalar(&v.decision)?;
                b.kind("request")?;
                // Left out when empty, as its serde attribute says.
                if !v.parameters.is_empty() {
                    b.key("parameters")?;
                    b.scalar(&v.parameters)?;
                }
                b.key("rule")?;
                b.scalar(&v.rule)?;
                b.key("text")?;
                b.scalar(&v.text)?;
            }
            EventBody::Result(v) => {
                b.key("bytes")?;
                b.scalar(&v.bytes)?;
                b.key("columns")?;
                b.scalar(&v.columns)?;
                b.key("duration_us")?;
                b.scalar(&v.duration_us)?;
                b.key("error")?;
                match &v.error {
                    None => b.out.write_all(b"null")?,
                    Some(e) => {
                        let mut q = Obj::open(&mut *b.out)?;
                        q.key("code")?;
                        q.scalar(&e.code)?;
                        q.key("message")?;
                        q.scalar(&e.message)?;
                        q.close()?;
                    }
                }
                b.kind("result")?;
                b.key("request_seq")?;
                b.scalar(&v.request_seq)?;
                b.key("row_count")?;
                b.scalar(&v.row_count)?;
                b.key("rows")?;
                b.scalar(&v.rows)?;
                b.key("truncated")?;
                b.scalar(&v.truncated)?;
            }
            EventBody::SessionClosed(v) => {
                b.kind("session_closed")?;
                b.key("reason")?;
                b.scalar(&v.reason)?;
            }
            EventBody::Purged(v) => {
                b.key("before")?;
                b.scalar(&v.before)?;
                b.kind("purged")?;
                b.key("sessions")?;
                b.scalar(&v.sessions)?;
            }
            EventBody::ApprovalDecided(v) => {
                b.key("approval_id")?;
                b.scalar(&v.approval_id)?;
                b.key("approver")?;
                principal(&v.approver, &mut *b.out)?;
                b.key("decided_at")?;
                b.scalar(&v.decided_at)?;
                b.kind("approval_decided")?;
                b.key("reason")?;
                b.scalar(&v.reason)?;
                b.key("verdict")?;
                b.scalar(&v.verdict)?;
            }
            EventBody::ApprovalResolved(v) => {
                b.key("approval_id")?;
                b.scalar(&v.approval_id)?;
                b.kind("approval_resolved")?;
                b.key("status")?;
                b.scalar(&v.status)?;
            }
        }
        b.close()?;
    }
    o.key("prev_hash")?;
    o.scalar(&event.prev_hash)?;
    o.key("seq")?;
    o.scalar(&event.seq)?;
    o.key("session_id")?;
    o.scalar(&event.session_id)?;
    o.close()
}

fn principal(p: &crate::RecordedPrincipal, out: &mut impl Write) -> io::Result<()> {
    let mut q = Obj::open(out)?;
    q.key("display_name")?;
    q.scalar(&p.display_name)?;
    q.key("groups")?;
    q.scalar(&p.groups)?;
    q.key("provider")?;
    q.scalar(&p.provider)?;
    q.key("roles")?;
    q.scalar(&p.roles)?;
    q.key("subject")?;
    q.scalar(&p.subject)?;
    q.key("token_id")?;
    q.scalar(&p.token_id)?;
    q.close()
}

/// An object being written with its keys in the order given (the caller's job: sorted).
struct Obj<'a, W: Write> {
    out: &'a mut W,
    first: bool,
}

impl<'a, W: Write> Obj<'a, W> {
    fn open(out: &'a mut W) -> io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Obj { out, first: true })
    }

    fn key(&mut self, key: &str) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut *self.out, key).map_err(io::Error::other)?;
        self.out.write_all(b":")
    }

    fn kind(&mut self, kind: &str) -> io::Result<()> {
        self.key("kind")?;
        self.scalar(kind)
    }

    /// A value whose JSON has no objects (strings, numbers, options and lists of them,
    /// unit enums), which `serde_json` writes canonically as it is.
    fn scalar<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer(&mut *self.out, value).map_err(io::Error::other)
    }

    fn close(self) -> io::Result<()> {
        self.out.write_all(b"}")
    }
}

#[cfg(test)]
pub(crate) fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    write(value, &mut bytes).expect("writing to a Vec cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_depth_and_writes_no_whitespace() {
        let value = json!({"b": 1, "a": {"z": [true, null, "x"], "y": -2}});
        assert_eq!(
            String::from_utf8(to_bytes(&value)).unwrap(),
            r#"{"a":{"y":-2,"z":[true,null,"x"]},"b":1}"#
        );
    }

    #[test]
    fn sorts_by_bytes_not_by_characters_or_case() {
        let value = json!({"é": 1, "z": 2, "Z": 3});
        assert_eq!(
            String::from_utf8(to_bytes(&value)).unwrap(),
            r#"{"Z":3,"z":2,"é":1}"#
        );
    }

    #[test]
    fn escapes_as_serde_json_does() {
        let value = json!({"k": "a\"b\\c\nd\u{1}é"});
        assert_eq!(
            String::from_utf8(to_bytes(&value)).unwrap(),
            "{\"k\":\"a\\\"b\\\\c\\nd\\u0001é\"}"
        );
    }

    #[test]
    fn struct_field_order_does_not_matter() {
        #[derive(Serialize)]
        struct Ab {
            a: u8,
            b: u8,
        }
        #[derive(Serialize)]
        struct Ba {
            b: u8,
            a: u8,
        }
        assert_eq!(to_bytes(&Ab { a: 1, b: 2 }), to_bytes(&Ba { b: 2, a: 1 }));
    }
}
