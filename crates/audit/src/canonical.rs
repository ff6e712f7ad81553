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
