//! Where a candidate may begin and end: the word-boundary rules the detectors share.
//!
//! A number or key counts only when it stands alone, not when it is the tail of a longer
//! token: the digits after `a716-` in a UUID, the fraction of `3.14159…`, the middle of a
//! hex digest. A neighbour that is an ASCII letter, digit or `_` continues the token; so
//! does a `-` or `.` glued to one (`x-1234`, `1.5`). Only ASCII neighbours count: text in
//! scripts without spaces (`卡号4111…`) puts letters right against a number, and a number
//! there must still be found.

/// True when `byte` continues an ASCII word.
pub(crate) fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// True when a `-` or `.` joins the neighbouring word to the candidate.
fn is_joiner(byte: u8) -> bool {
    byte == b'-' || byte == b'.'
}

/// True when the candidate starting at byte `start` does not continue a token before it.
pub(crate) fn clear_before(text: &str, start: usize) -> bool {
    let before = &text.as_bytes()[..start];
    match before {
        [] => true,
        [.., previous] if is_word_byte(*previous) => false,
        [.., word, joiner] if is_joiner(*joiner) && is_word_byte(*word) => false,
        _ => true,
    }
}

/// True when the candidate ending at byte `end` (exclusive) is not continued after it.
pub(crate) fn clear_after(text: &str, end: usize) -> bool {
    let after = &text.as_bytes()[end..];
    match after {
        [] => true,
        [next, ..] if is_word_byte(*next) => false,
        [joiner, word, ..] if is_joiner(*joiner) && is_word_byte(*word) => false,
        _ => true,
    }
}

/// True when the candidate at `start..end` stands alone on both sides.
pub(crate) fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    clear_before(text, start) && clear_after(text, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alone(text: &str, candidate: &str) -> bool {
        let start = text.find(candidate).expect("candidate is in the text");
        stands_alone(text, start, start + candidate.len())
    }

    #[test]
    fn spaces_punctuation_and_edges_are_boundaries() {
        assert!(alone("1234", "1234"));
        assert!(alone("card 1234, ok", "1234"));
        assert!(alone("(1234)", "1234"));
        assert!(alone("no=1234;", "1234"));
        assert!(alone("ends with 1234.", "1234"));
        assert!(alone("range -1234", "1234"));
    }

    #[test]
    fn word_neighbours_and_glued_joiners_are_not() {
        assert!(!alone("a1234", "1234"));
        assert!(!alone("1234b", "1234"));
        assert!(!alone("_1234", "1234"));
        assert!(!alone("a716-1234", "1234"));
        assert!(!alone("3.1234", "1234"));
        assert!(!alone("1234.5", "1234"));
        assert!(!alone("1234-x", "1234"));
    }

    #[test]
    fn non_ascii_neighbours_are_boundaries() {
        assert!(alone("卡号1234", "1234"));
        assert!(alone("1234€", "1234"));
    }
}
