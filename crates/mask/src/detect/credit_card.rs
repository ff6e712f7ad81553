//! Payment card numbers: 13 to 19 digits, optionally grouped by single spaces or dashes,
//! with a valid Luhn check digit and a first digit of a payment network.
//!
//! Runs of at least 13 digits joined by single spaces or dashes are found by a byte scan:
//! the shape is trivial, and a regular expression starting with a digit class scans
//! several times slower. Where a card begins and ends inside a run is decided here. A run
//! is split at spaces into tokens. A card is either one whole token (all digits, or groups
//! joined by dashes) or several consecutive all-digit tokens, the way cards are printed
//! (4-4-4-4, 4-6-5, 4-4-4-4-3): groups have 3 to 6 digits, except that the last may be
//! shorter (a 13 or 18-digit number grouped by four). So the digit tail of a UUID
//! (`…-8716-446655440000`) is never a card (it is glued to a hex word), nor are two dates
//! side by side (`2024-01-15 2024-02-15`, tokens whose groups are too short).
//!
//! A run written as one number is judged as one: a Luhn-invalid 17-digit number is not
//! searched for a 16-digit card that happens to pass. Only a run that cannot be one card
//! (`4111111111111111 5555555555554444`, `ref 12 4111 1111 1111 1111`) is searched for
//! cards among its tokens, leftmost and longest first. A token glued to a date or
//! fraction (the `12` of `4111 1111 1111 1111 12/25`) belongs to it and not to the run.
//!
//! The first digit must be 2 to 6 (Mastercard 2 and 5, Amex, Diners and JCB 3, Visa 4,
//! Discover, UnionPay and Maestro 6): this halves the false positives on long numeric
//! identifiers, which pass Luhn one time in ten, and drops the 18 and 19-digit ids that
//! start with 1 (snowflake ids of most services today).

use std::ops::{Range, RangeInclusive};

use sluice_config::Detector;

use super::boundary::{clear_after, clear_before};
use super::{Finding, Glance};

const MIN_DIGITS: usize = 13;
const MAX_DIGITS: usize = 19;

/// Digits in a printed group of a card, and in its last group.
const MIDDLE_GROUP: RangeInclusive<usize> = 3..=6;
const LAST_GROUP: RangeInclusive<usize> = 1..=6;

/// Whether a value could hold a card number: enough digits.
pub(super) fn possible(_bytes: &[u8], glance: &Glance) -> bool {
    glance.digits >= MIN_DIGITS
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    for run in digit_runs(text) {
        cards_in_run(text, run, found);
    }
}

/// Runs of at least [`MIN_DIGITS`] digits, each pair joined by at most one space or dash.
fn digit_runs(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let bytes = text.as_bytes();
    let mut position = 0;
    std::iter::from_fn(move || loop {
        let start = position + bytes[position..].iter().position(u8::is_ascii_digit)?;
        let mut end = start;
        let mut digits = 0;
        loop {
            let stretch = bytes[end..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            digits += stretch;
            end += stretch;
            match bytes.get(end..end + 2) {
                Some([b' ' | b'-', next]) if next.is_ascii_digit() => end += 1,
                _ => break,
            }
        }
        position = end;
        if digits >= MIN_DIGITS {
            return Some(start..end);
        }
    })
}

/// A space-separated token of a run.
struct Token {
    range: Range<usize>,
    digits: usize,
    /// All digits, no dash.
    plain: bool,
    /// Digits, or card groups joined by dashes: a card written as one token.
    card_shaped: bool,
}

impl Token {
    fn new(text: &str, range: Range<usize>) -> Self {
        let piece = &text[range.clone()];
        let plain = !piece.contains('-');
        let card_shaped = plain || {
            let mut groups = piece.split('-');
            let last = groups.next_back().unwrap_or_default();
            groups.all(|group| MIDDLE_GROUP.contains(&group.len()))
                && LAST_GROUP.contains(&last.len())
        };
        Token {
            digits: piece.bytes().filter(u8::is_ascii_digit).count(),
            range,
            plain,
            card_shaped,
        }
    }

    /// May be a group of a card printed with spaces, other than the last.
    fn is_middle_group(&self) -> bool {
        self.plain && MIDDLE_GROUP.contains(&self.digits)
    }

    /// May be the last group of a card printed with spaces.
    fn is_last_group(&self) -> bool {
        self.plain && LAST_GROUP.contains(&self.digits)
    }
}

/// Finds the cards in the run at `run`. Allocates nothing: long digit runs (epoch
/// milliseconds, bigint ids) are common values with nothing to find.
fn cards_in_run(text: &str, run: Range<usize>, found: &mut Vec<Finding>) {
    // The run's outer tokens may only be used when nothing is glued to the run there.
    let skip_first = !clear_before(text, run.start) || date_glued_before(text, run.start);
    let drop_last = !clear_after(text, run.end) || date_glued_after(text, run.end);
    let mut push = |range| {
        found.push(Finding {
            detector: Detector::CreditCard,
            range,
        })
    };
    if !text[run.clone()].contains(' ') {
        // One token, the common case (ids, epoch milliseconds, UUID tails): nothing to weigh.
        let stands_alone = !skip_first && !drop_last;
        if stands_alone && single_token_card(text, &Token::new(text, run.clone())).is_some() {
            push(run);
        }
        return;
    }
    let count = text[run.clone()].bytes().filter(|&b| b == b' ').count() + 1;
    let usable = count - usize::from(drop_last);
    let mut rest = tokens_of(text, run)
        .take(usable)
        .skip(usize::from(skip_first));
    if let Some(number) = as_one_number(rest.clone()) {
        if is_card_number(&text[number.clone()]) {
            push(number);
        }
        return;
    }
    loop {
        let from_here = rest.clone();
        let Some(first) = rest.next() else {
            break;
        };
        let card = spaced_card(text, from_here).or_else(|| single_token_card(text, &first));
        if let Some(Card { tokens, end }) = card {
            push(first.range.start..end);
            if tokens > 1 {
                rest.nth(tokens - 2);
            }
        }
    }
}

/// The range of `tokens` when, all together, they are written like one card number:
/// 13 to 19 digits, one card-shaped token or printed groups.
fn as_one_number(tokens: impl Iterator<Item = Token>) -> Option<Range<usize>> {
    let mut tokens = tokens.peekable();
    let first = tokens.next()?;
    let mut digits = first.digits;
    let mut shaped = if tokens.peek().is_none() {
        first.card_shaped
    } else {
        first.is_middle_group()
    };
    let mut end = first.range.end;
    while let Some(token) = tokens.next() {
        let is_last = tokens.peek().is_none();
        shaped &= if is_last {
            token.is_last_group()
        } else {
            token.is_middle_group()
        };
        digits += token.digits;
        end = token.range.end;
        if !shaped || digits > MAX_DIGITS {
            return None;
        }
    }
    (shaped && (MIN_DIGITS..=MAX_DIGITS).contains(&digits)).then_some(first.range.start..end)
}

/// True when a date or fraction ends right before `start` (`12/` of `25/12/4111…`).
fn date_glued_before(text: &str, start: usize) -> bool {
    matches!(text.as_bytes()[..start], [.., digit, b'/'] if digit.is_ascii_digit())
}

/// True when a date or fraction goes on right after `end` (`/25` of `… 1111 12/25`).
fn date_glued_after(text: &str, end: usize) -> bool {
    matches!(text.as_bytes()[end..], [b'/', digit, ..] if digit.is_ascii_digit())
}

/// A card found among a run's tokens: how many tokens it spans and where it ends.
struct Card {
    tokens: usize,
    end: usize,
}

/// The longest card printed as space-separated groups at the start of `tokens`, if any.
fn spaced_card(text: &str, tokens: impl Iterator<Item = Token>) -> Option<Card> {
    let mut start = None;
    let mut digits = 0;
    let mut longest = None;
    for (index, token) in tokens.enumerate() {
        let middle = token.is_middle_group();
        let may_end = index > 0 && token.is_last_group();
        if !(middle || may_end) {
            break;
        }
        digits += token.digits;
        if digits > MAX_DIGITS {
            break;
        }
        let start = *start.get_or_insert(token.range.start);
        if digits >= MIN_DIGITS && index > 0 && is_card_number(&text[start..token.range.end]) {
            longest = Some(Card {
                tokens: index + 1,
                end: token.range.end,
            });
        }
        if !middle {
            break;
        }
    }
    longest
}

fn single_token_card(text: &str, token: &Token) -> Option<Card> {
    (token.card_shaped && is_card_number(&text[token.range.clone()])).then_some(Card {
        tokens: 1,
        end: token.range.end,
    })
}

/// The space-separated tokens of the run at `run`, with their positions in `text`.
fn tokens_of(text: &str, run: Range<usize>) -> impl Iterator<Item = Token> + Clone + '_ {
    text[run.clone()]
        .split(' ')
        .scan(run.start, move |offset, piece| {
            let start = *offset;
            *offset += piece.len() + 1;
            Some(Token::new(text, start..start + piece.len()))
        })
}

/// True for a card number (separators allowed): a payment network's first digit, 13 to 19
/// digits, and a valid Luhn check digit.
pub fn is_card_number(candidate: &str) -> bool {
    let mut digits = candidate.bytes().filter(u8::is_ascii_digit);
    // The network digit first: it turns most long ids away before anything is counted.
    matches!(digits.next(), Some(b'2'..=b'6'))
        && (MIN_DIGITS..=MAX_DIGITS).contains(&(1 + digits.count()))
        && luhn_valid(candidate)
}

/// The Luhn (mod 10) check over the ASCII digits of `candidate`, ignoring anything else.
pub fn luhn_valid(candidate: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for digit in candidate.bytes().rev().filter(u8::is_ascii_digit) {
        let value = u32::from(digit - b'0');
        sum += if count % 2 == 1 {
            let doubled = value * 2;
            if doubled > 9 {
                doubled - 9
            } else {
                doubled
            }
        } else {
            value
        };
        count += 1;
    }
    count > 0 && sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn cards(text: &str) -> Vec<&str> {
        found(Detector::CreditCard, text)
    }

    #[test]
    fn luhn_matches_known_numbers() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn finds_test_numbers_of_each_network() {
        for number in [
            "4111111111111111",    // Visa
            "4222222222222",       // Visa, 13 digits
            "5555555555554444",    // Mastercard
            "2223003122003222",    // Mastercard 2-series
            "378282246310005",     // Amex
            "30569309025904",      // Diners
            "6011111111111117",    // Discover
            "3530111333300000",    // JCB
            "6200000000000005",    // UnionPay
            "6759649826438453",    // Maestro
            "4000000000000000006", // Visa, 19 digits
        ] {
            assert_eq!(
                cards(&format!("card {number} on file")),
                [number],
                "{number}"
            );
        }
    }

    #[test]
    fn finds_grouped_numbers() {
        assert_eq!(cards("4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
        assert_eq!(cards("4111-1111-1111-1111"), ["4111-1111-1111-1111"]);
        assert_eq!(cards("Amex 3782 822463 10005."), ["3782 822463 10005"]);
        assert_eq!(cards("6759 6498 2643 8453"), ["6759 6498 2643 8453"]);
        assert_eq!(cards("4222 2222 2222 2"), ["4222 2222 2222 2"]);
        assert_eq!(
            cards("4000-0000-0000-0000-006"),
            ["4000-0000-0000-0000-006"]
        );
    }

    #[test]
    fn finds_a_card_inside_a_longer_run() {
        assert_eq!(cards("4111 1111 1111 1111 12/25"), ["4111 1111 1111 1111"]);
        assert_eq!(
            cards("exp 12/25 4111 1111 1111 1111"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(cards("ref 12 4111 1111 1111 1111"), ["4111 1111 1111 1111"]);
        assert_eq!(
            cards("4111111111111111 5555555555554444"),
            ["4111111111111111", "5555555555554444"]
        );
    }

    #[test]
    fn finds_cards_next_to_non_ascii_letters() {
        assert_eq!(cards("卡号4111111111111111。"), ["4111111111111111"]);
    }

    #[test]
    fn ignores_luhn_invalid_numbers() {
        assert!(cards("4111111111111112").is_empty());
        assert!(cards("4111 1111 1111 1113").is_empty());
    }

    #[test]
    fn judges_a_number_written_as_one_as_a_whole() {
        // The first 16 digits pass Luhn, but the number has 17.
        assert!(luhn_valid("2163173944324585"));
        assert!(cards("2163 1739 4432 4585 4").is_empty());
        assert!(cards("2163-1739-4432-4585-4").is_empty());
    }

    #[test]
    fn ignores_numbers_outside_payment_networks() {
        // Luhn-valid, but the first digit is no payment network's.
        assert!(cards("1234567890123452").is_empty());
        assert!(cards("7992739871300006").is_empty());
        assert!(cards("0000000000000000").is_empty());
    }

    #[test]
    fn ignores_runs_of_the_wrong_length() {
        assert!(cards("411111111111").is_empty()); // 12 digits
        assert!(cards("41111111111111111111").is_empty()); // 20 digits, one token
    }

    #[test]
    fn ignores_parts_of_longer_tokens() {
        assert!(cards("id a4111111111111111").is_empty());
        assert!(cards("4111111111111111x").is_empty());
        assert!(cards("pi 3.4111111111111111").is_empty());
        assert!(cards("amount 4111111111111111.50").is_empty());
    }

    #[test]
    fn ignores_uuids_timestamps_and_dates() {
        // The digit tail of this UUID is 16 digits and Luhn-valid on its own.
        assert!(luhn_valid("4111111111111111"));
        assert!(cards("550e8400-e29b-41d4-a716-4111-111111111111").is_empty());
        assert!(cards("550e8400-e29b-41d4-8716-411111111111").is_empty());
        assert!(cards("2024-01-15 10:23:45.123456+00").is_empty());
        assert!(cards("2024-01-15 2024-02-15 2024-03-15").is_empty());
        assert!(cards("20240115 20240215").is_empty());
        assert!(cards("2024 01 15 10 23 45 123").is_empty());
        assert!(cards("2024-01-15-10-23-45-123").is_empty());
        assert!(cards("20240115102345123").is_empty());
    }
}
