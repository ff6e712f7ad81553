//! The rows of `COPY ... TO STDOUT` in the text and CSV formats, field by field, so that
//! masking can replace values in them.
//!
//! PostgreSQL sends each row of a COPY TO in its own CopyData message, ending with a
//! newline. Only the default options are understood (text: tab delimiter, `\N` for NULL;
//! CSV: comma, double quote as quote and escape, unquoted empty for NULL); the session
//! refuses a masked COPY with other options rather than misread its rows. Fields a mask
//! does not touch keep their bytes exactly; a replaced field is encoded anew.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyRowError {
    #[error("a COPY row does not end with a newline")]
    Unterminated,
    #[error("a CSV field has an unbalanced quote")]
    Quote,
    #[error("a COPY row has an invalid escape sequence")]
    Escape,
}

/// One field of a row: its bytes as sent (encoded), so untouched fields are copied
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawField<'a>(pub &'a [u8]);

/// Splits one row (one CopyData payload) into its encoded fields.
pub fn split_row(format: CopyFormat, row: &[u8]) -> Result<Vec<RawField<'_>>, CopyRowError> {
    let line = row.strip_suffix(b"\n").ok_or(CopyRowError::Unterminated)?;
    match format {
        // A tab inside a value is always escaped (`\t`), so every raw tab separates.
        CopyFormat::Text => Ok(line.split(|b| *b == b'\t').map(RawField).collect()),
        CopyFormat::Csv => {
            let mut fields = Vec::new();
            let mut start = 0;
            let mut i = 0;
            let mut quoted = false;
            while i < line.len() {
                match line[i] {
                    b'"' if quoted && line.get(i + 1) == Some(&b'"') => i += 1,
                    b'"' => quoted = !quoted,
                    b',' if !quoted => {
                        fields.push(RawField(&line[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            if quoted {
                return Err(CopyRowError::Quote);
            }
            fields.push(RawField(&line[start..]));
            Ok(fields)
        }
    }
}

/// The value of an encoded field; `None` is NULL.
pub fn decode(
    format: CopyFormat,
    field: RawField<'_>,
) -> Result<Option<Cow<'_, [u8]>>, CopyRowError> {
    let bytes = field.0;
    match format {
        CopyFormat::Text => {
            if bytes == b"\\N" {
                return Ok(None);
            }
            if !bytes.contains(&b'\\') {
                return Ok(Some(Cow::Borrowed(bytes)));
            }
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] != b'\\' {
                    out.push(bytes[i]);
                    i += 1;
                    continue;
                }
                let next = *bytes.get(i + 1).ok_or(CopyRowError::Escape)?;
                i += 2;
                match next {
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'0'..=b'7' => {
                        let mut value = u32::from(next - b'0');
                        for _ in 0..2 {
                            match bytes.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(value as u8);
                    }
                    b'x' => {
                        let mut value = 0u32;
                        let mut digits = 0;
                        while digits < 2 {
                            match bytes.get(i).and_then(|d| (*d as char).to_digit(16)) {
                                Some(d) => {
                                    value = value * 16 + d;
                                    i += 1;
                                    digits += 1;
                                }
                                None => break,
                            }
                        }
                        if digits == 0 {
                            out.push(b'x');
                        } else {
                            out.push(value as u8);
                        }
                    }
                    other => out.push(other),
                }
            }
            Ok(Some(Cow::Owned(out)))
        }
        CopyFormat::Csv => {
            if bytes.is_empty() {
                return Ok(None);
            }
            match bytes
                .strip_prefix(b"\"")
                .and_then(|b| b.strip_suffix(b"\""))
            {
                None => Ok(Some(Cow::Borrowed(bytes))),
                Some(inner) if !inner.contains(&b'"') => Ok(Some(Cow::Borrowed(inner))),
                Some(inner) => {
                    let mut out = Vec::with_capacity(inner.len());
                    let mut i = 0;
                    while i < inner.len() {
                        out.push(inner[i]);
                        if inner[i] == b'"' {
                            if inner.get(i + 1) != Some(&b'"') {
                                return Err(CopyRowError::Quote);
                            }
                            i += 1;
                        }
                        i += 1;
                    }
                    Ok(Some(Cow::Owned(out)))
                }
            }
        }
    }
}

/// Encodes a value (`None` = NULL) as a field of `format`.
pub fn encode(format: CopyFormat, value: Option<&[u8]>, out: &mut Vec<u8>) {
    match (format, value) {
        (CopyFormat::Text, None) => out.extend_from_slice(b"\\N"),
        (CopyFormat::Text, Some(value)) => {
            for &b in value {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    other => out.push(other),
                }
            }
        }
        (CopyFormat::Csv, None) => {}
        (CopyFormat::Csv, Some(value)) => {
            out.push(b'"');
            for &b in value {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
    }
}

/// Joins fields (raw, or replaced) back into a row with its newline.
pub fn join_row(format: CopyFormat, fields: &[Cow<'_, [u8]>]) -> Vec<u8> {
    let separator = match format {
        CopyFormat::Text => b'\t',
        CopyFormat::Csv => b',',
    };
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.len() + 1).sum::<usize>() + 1);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(separator);
        }
        out.extend_from_slice(field);
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(format: CopyFormat, values: &[Option<&[u8]>]) {
        let encoded: Vec<Cow<'_, [u8]>> = values
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                encode(format, *v, &mut out);
                Cow::Owned(out)
            })
            .collect();
        let row = join_row(format, &encoded);
        let fields = split_row(format, &row).unwrap();
        assert_eq!(
            fields.len(),
            values.len(),
            "{:?}",
            String::from_utf8_lossy(&row)
        );
        for (field, value) in fields.into_iter().zip(values) {
            assert_eq!(decode(format, field).unwrap().as_deref(), *value);
        }
    }

    #[test]
    fn values_survive_encoding_in_both_formats() {
        let awkward: &[Option<&[u8]>] = &[
            Some(b"plain"),
            None,
            Some(b""),
            Some(b"tab\there, newline\nthere, back\\slash, \"quoted\", comma,"),
            Some(b"\\N"),
            Some("caf\u{e9} \u{1f600}".as_bytes()),
        ];
        roundtrip(CopyFormat::Text, awkward);
        roundtrip(CopyFormat::Csv, awkward);
    }

    #[test]
    fn rows_as_postgresql_writes_them() {
        let row = b"1\tAda\\tL\tada@example.com\t\\N\n";
        let fields = split_row(CopyFormat::Text, row).unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!(
            decode(CopyFormat::Text, fields[1]).unwrap().as_deref(),
            Some(&b"Ada\tL"[..])
        );
        assert_eq!(decode(CopyFormat::Text, fields[3]).unwrap(), None);
        assert_eq!(
            decode(CopyFormat::Text, RawField(b"\\101\\x42"))
                .unwrap()
                .as_deref(),
            Some(&b"AB"[..])
        );

        let row = b"1,\"Lovelace, Ada\",,\"\",\"say \"\"hi\"\"\"\n";
        let fields = split_row(CopyFormat::Csv, row).unwrap();
        assert_eq!(fields.len(), 5);
        assert_eq!(
            decode(CopyFormat::Csv, fields[1]).unwrap().as_deref(),
            Some(&b"Lovelace, Ada"[..])
        );
        assert_eq!(decode(CopyFormat::Csv, fields[2]).unwrap(), None);
        assert_eq!(
            decode(CopyFormat::Csv, fields[3]).unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            decode(CopyFormat::Csv, fields[4]).unwrap().as_deref(),
            Some(&b"say \"hi\""[..])
        );
    }

    #[test]
    fn malformed_rows_are_errors() {
        assert_eq!(
            split_row(CopyFormat::Text, b"no newline"),
            Err(CopyRowError::Unterminated)
        );
        assert_eq!(
            split_row(CopyFormat::Csv, b"\"open\n"),
            Err(CopyRowError::Quote)
        );
        assert_eq!(
            decode(CopyFormat::Text, RawField(b"trailing\\")),
            Err(CopyRowError::Escape)
        );
    }
}
