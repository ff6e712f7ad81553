//! The literal scanner: a statement's shape without PostgreSQL's parser, for the texts
//! where that is easy to get right.
//!
//! The classification cache keys its second level by a text's *shape*, the text with its
//! constants replaced by `$1`, `$2`, ... as `pg_query::normalize` writes it (see
//! [`cache`](crate::cache)). `normalize` runs PostgreSQL's whole raw parser; for a client
//! that inlines its values (`pgbench -M simple`, psql, an ORM's unprepared path) that parse
//! is most of what judging a statement costs. This scanner finds the same shape in one pass
//! over the bytes, for a deliberately small subset of the lexical grammar:
//!
//! - unsigned integers (`42`) and decimals (`4.25`), not touching an identifier, a dot, an
//!   exponent or an underscore;
//! - plain single-quoted strings (`'it''s'`): no prefix (`E`, `B`, `X`, `N`, `U&`), no
//!   backslash anywhere in the text, not followed by another string (which PostgreSQL
//!   would join to it across a newline);
//! - everything else copied as it is: identifiers (digits in `t1` stay), double-quoted
//!   identifiers, `--` and nested `/* */` comments.
//!
//! A text with anything outside that subset gets no shape here (`None`): a `$` (dollar
//! quoting, parameters), a backslash, an unterminated string, identifier or comment, a
//! number the lexer reads some other way. It then goes through `normalize` as before.
//!
//! **The scanner is never trusted on its own.** The cache uses a scanned shape only once
//! `normalize` returned that very shape for an earlier text, which proves, for that text,
//! that the scanner's constants are exactly PostgreSQL's (no digit of a comment taken for a
//! number, no number the parser reads as something else). A later text with the same
//! scanned shape and the same [`LiteralShape::kinds`] has the same bytes outside its
//! constants, and each of its constants is one complete token of the same kind in the same
//! place: PostgreSQL's lexer reads it exactly as the earlier text with other values in
//! those tokens, so `normalize` would give it the same shape. The tests hold the scanner to
//! that claim over the shared corpus and over hostile texts.

/// A text's shape as the scanner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralShape {
    /// The text with each constant replaced by `$1`, `$2`, ... in order.
    pub shape: String,
    /// Each constant's kind, in order: `i` integer, `d` decimal, `s` string.
    pub kinds: Vec<u8>,
}

/// The shape of `sql` when every constant in it is in the scanner's subset (see the module
/// documentation), else `None`.
pub fn literal_shape(sql: &str) -> Option<LiteralShape> {
    let bytes = sql.as_bytes();
    let mut shape = String::with_capacity(sql.len());
    let mut kinds = Vec::new();
    // Start of the bytes not yet copied into `shape`.
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        match byte {
            b'$' | b'\\' => return None,
            b'\'' => {
                if at > 0 && (is_ident_byte(bytes[at - 1]) || bytes[at - 1] == b'&') {
                    // E'..', B'..', X'..', N'..', U&'..': strings of another kind.
                    return None;
                }
                let end = quoted_end(bytes, at)?;
                // A backslash escapes the quote after it when `standard_conforming_strings`
                // is off: never read here, whatever the setting.
                if memchr::memchr(b'\\', &bytes[at..end]).is_some() || !string_ends_here(bytes, end)
                {
                    return None;
                }
                push_constant(&mut shape, &mut kinds, &sql[copied..at], b's');
                copied = end;
                at = end;
            }
            b'0'..=b'9' => {
                if at > 0 && (is_ident_byte(bytes[at - 1]) || bytes[at - 1] == b'.') {
                    // Never the first digit of an identifier's tail: identifiers are
                    // skipped whole below. A digit after a dot is `.5`, or `t.1`.
                    return None;
                }
                let (end, kind) = number_end(bytes, at)?;
                push_constant(&mut shape, &mut kinds, &sql[copied..at], kind);
                copied = end;
                at = end;
            }
            b'"' => at = quoted_end(bytes, at)?,
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |n| at + n + 1);
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => at = block_comment_end(bytes, at)?,
            _ if is_ident_start(byte) => {
                at += 1;
                while at < bytes.len() && is_ident_byte(bytes[at]) {
                    at += 1;
                }
            }
            _ => at += 1,
        }
    }
    shape.push_str(&sql[copied..]);
    Some(LiteralShape { shape, kinds })
}

fn push_constant(shape: &mut String, kinds: &mut Vec<u8>, before: &str, kind: u8) {
    use std::fmt::Write;
    shape.push_str(before);
    kinds.push(kind);
    let _ = write!(shape, "${}", kinds.len());
}

/// PostgreSQL's identifier characters (`ident_cont`, less `$`, which ends the scan):
/// letters, digits, `_` and every byte of a multi-byte character.
fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}

fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

/// One past the quote that closes the string (`'`) or quoted identifier (`"`) opening at
/// `start`; the quote doubled inside is the quote itself.
fn quoted_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut at = start + 1;
    loop {
        let close = at + memchr::memchr(quote, &bytes[at..])?;
        if bytes.get(close + 1) == Some(&quote) {
            at = close + 2;
        } else {
            return Some(close + 1);
        }
    }
}

/// Whether a string that closes just before `end` is one whole token: not touching an
/// identifier, and not continued by another string after whitespace (PostgreSQL joins
/// `'a'` newline `'b'` into one constant; any whitespace or `--` comment before a quote
/// is refused here, newline or not).
fn string_ends_here(bytes: &[u8], end: usize) -> bool {
    if bytes.get(end).is_some_and(|&b| is_ident_byte(b)) {
        return false;
    }
    let mut at = end;
    while at < bytes.len() {
        match bytes[at] {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => at += 1,
            b'-' if bytes.get(at + 1) == Some(&b'-') => match memchr::memchr(b'\n', &bytes[at..]) {
                Some(n) => at += n + 1,
                None => return true,
            },
            b'\'' => return false,
            _ => return true,
        }
    }
    true
}

/// The end and kind of the unsigned number that starts at `start`: digits, or digits, a
/// dot and digits. `None` when the lexer would read more into it (an exponent, `_`, a
/// second dot, letters: `1e5`, `1_000`, `0x1F`, `1..2`, `5.`).
fn number_end(bytes: &[u8], start: usize) -> Option<(usize, u8)> {
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(bytes.len(), |n| from + n)
    };
    let mut end = digits(start);
    let mut kind = b'i';
    if bytes.get(end) == Some(&b'.') {
        let fraction_end = digits(end + 1);
        if fraction_end == end + 1 {
            return None;
        }
        end = fraction_end;
        kind = b'd';
    }
    match bytes.get(end) {
        Some(&b) if is_ident_byte(b) || b == b'.' => None,
        _ => Some((end, kind)),
    }
}

/// One past the `*/` that closes the comment opening at `start`; comments nest.
fn block_comment_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while at + 1 < bytes.len() {
        match (bytes[at], bytes[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => at += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> Option<(String, String)> {
        literal_shape(sql).map(|s| (s.shape, String::from_utf8(s.kinds).unwrap()))
    }

    #[test]
    fn constants_in_the_subset_become_parameters() {
        assert_eq!(
            shape("SELECT abalance FROM pgbench_accounts WHERE aid = 42;"),
            Some((
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".into(),
                "i".into()
            ))
        );
        assert_eq!(
            shape("SELECT a, 'it''s', 4.25 FROM t1 WHERE b IN (1,2)"),
            Some((
                "SELECT a, $1, $2 FROM t1 WHERE b IN ($3,$4)".into(),
                "sdii".into()
            ))
        );
        assert_eq!(
            shape("SELECT \"a1\", x2 FROM t /* 3 /* '4' */ 5 */ -- 6 '\n WHERE c = 'é'"),
            Some((
                "SELECT \"a1\", x2 FROM t /* 3 /* '4' */ 5 */ -- 6 '\n WHERE c = $1".into(),
                "s".into()
            ))
        );
        assert_eq!(
            shape("SELECT 'a' || 'b'"),
            Some(("SELECT $1 || $2".into(), "ss".into()))
        );
    }

    #[test]
    fn anything_outside_the_subset_gets_no_shape() {
        for sql in [
            "SELECT $1",
            "SELECT $$x$$",
            "SELECT E'a'",
            "SELECT e'\\n'",
            "SELECT B'01'",
            "SELECT X'ff'",
            "SELECT N'x'",
            "SELECT U&'d\\0061t'",
            "SELECT 'a\\'",
            "SELECT 'a'\n'b'",
            "SELECT 'a' -- c\n 'b'",
            "SELECT 'a' 'b'",
            "SELECT 'a'b",
            "SELECT 'unterminated",
            "SELECT \"unterminated",
            "SELECT 1 /* unterminated",
            "SELECT 1e5",
            "SELECT 1E5",
            "SELECT 1_000",
            "SELECT 0x1F",
            "SELECT 0b101",
            "SELECT .5",
            "SELECT 5.",
            "SELECT 1..2",
            "SELECT 1.2.3",
            "SELECT t.1",
            "SELECT 5abc",
        ] {
            assert_eq!(literal_shape(sql), None, "{sql:?}");
        }
    }

    #[test]
    fn identifiers_and_comments_keep_their_digits() {
        for sql in [
            "SELECT t1.c2 FROM s3.t1",
            "SELECT \"1\" FROM \"t\"\"2\"",
            "SELECT a -- 1\nFROM t",
            "SELECT a /* 1 */ FROM t",
            "SELECT a /* /* 1 */ 2 */ FROM t",
            "SELECT ünïcödé1 FROM t",
        ] {
            let found = literal_shape(sql).unwrap();
            assert_eq!(found.shape, sql, "{sql:?}");
            assert!(found.kinds.is_empty(), "{sql:?}");
        }
    }
}
