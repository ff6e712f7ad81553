//! Output for people (aligned tables) and for programs (`--json`).

/// Prints rows as a table with a header, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp.
pub fn timestamp(secs: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64),
    )
    .to_string()
}

/// An audit trail time, to the second, as [`timestamp`] writes times.
pub fn instant(at: &sluice_audit::Timestamp) -> String {
    timestamp(at.unix_micros().div_euclid(1_000_000))
}

/// `text` with control characters (C0, DEL, C1) and the characters that change text
/// direction written as `\u{..}` escapes: what an agent sent is shown to a person's
/// terminal, which must not take it as commands (ANSI escapes) or reorder it.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if hidden {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::visible;

    #[test]
    fn control_and_direction_characters_are_shown() {
        assert_eq!(visible("a\x1b[2Kb"), "a\\u{1b}[2Kb");
        assert_eq!(visible("x\ny\rz"), "x\\u{a}y\\u{d}z");
        assert_eq!(visible("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(
            visible("DELETE FROM \"Ordres\" — ok"),
            "DELETE FROM \"Ordres\" — ok"
        );
    }
}
