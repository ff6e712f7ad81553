//! Telephone numbers, in the two shapes that say "phone" on their own:
//!
//! - international, `+` and a country code: 8 to 15 digits in all (E.164's range), with
//!   optional single spaces, dots or dashes between digit groups and an optional
//!   parenthesised group (`+4915112345678`, `+44 20 7946 0958`, `+1 (555) 123-4567`,
//!   `+49 (0)30 1234567`);
//! - North American, ten digits as 3-3-4 with the same dash or dot twice
//!   (`555-123-4567`, `555.123.4567`) or with the area code in parentheses
//!   (`(555) 123-4567`), optionally preceded by the trunk prefix `1` (`1-800-555-0199`).
//!
//! Bare digit strings (`5551234567`), national forms without `+` (`020 7946 0958`) and
//! numbers split by spaces only are not taken for phones: they cannot be told apart from
//! order numbers, amounts and timestamps. Dates (`2024-01-15`), times and UUIDs never have
//! either shape.
//!
//! Candidates are found from their fixed parts with `memchr` (a `+`; a dash or dot with
//! three digits before and four after) and only there is the regular expression run,
//! anchored or on a few bytes around: run over the whole text, an expression starting
//! with a digit class costs several times more than the scan.

use std::ops::{Range, RangeInclusive};
use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::boundary::stands_alone;
use super::{Finding, Glance};

/// E.164 says at most 15 digits; the shortest numbers in use have 8 with country code.
const INTERNATIONAL_DIGITS: RangeInclusive<usize> = 8..=15;

/// The most bytes a North American number has before the separator of its last group:
/// `1 (555) 123`.
const NANP_BEFORE_LAST_SEPARATOR: usize = 11;

/// The last group of a North American number: its separator and four digits.
const NANP_LAST_GROUP: usize = 5;

/// An international number at the start of the haystack.
static INTERNATIONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\+[1-9][0-9]*(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]+))*")
        .expect("the international phone pattern compiles")
});

/// North American numbers, the two separators alike.
static NORTH_AMERICAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          (?:1[\ .\-]?)?\([0-9]{3}\)\ ?[0-9]{3}[.\-][0-9]{4}          # (555) 123-4567
        | (?:1-)?[0-9]{3}-[0-9]{3}-[0-9]{4}                           # 555-123-4567
        | (?:1\.)?[0-9]{3}\.[0-9]{3}\.[0-9]{4}                        # 555.123.4567
        ",
    )
    .expect("the North American phone pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&INTERNATIONAL);
    LazyLock::force(&NORTH_AMERICAN);
}

/// Whether a value could hold a phone number: `+` and eight digits is the shortest
/// number either shape has.
pub(super) fn possible(bytes: &[u8], glance: &Glance) -> bool {
    bytes.len() > *INTERNATIONAL_DIGITS.start() && glance.digits >= *INTERNATIONAL_DIGITS.start()
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    // The two may find the same number (`+1-555-123-4567`); the set merges overlaps.
    international(text, found);
    north_american(text, found);
}

fn international(text: &str, found: &mut Vec<Finding>) {
    for plus in memchr::memchr_iter(b'+', text.as_bytes()) {
        let Some(number) = INTERNATIONAL.find(&text[plus..]) else {
            continue;
        };
        let range = plus..plus + number.end();
        let digits = number.as_str().bytes().filter(u8::is_ascii_digit).count();
        if INTERNATIONAL_DIGITS.contains(&digits) && stands_alone(text, range.start, range.end) {
            push(found, range);
        }
    }
}

fn north_american(text: &str, found: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    for separator in memchr::memchr2_iter(b'-', b'.', bytes) {
        let end = separator + NANP_LAST_GROUP;
        let last_group = bytes.get(separator + 1..end);
        let exchange = separator
            .checked_sub(3)
            .map(|start| &bytes[start..separator]);
        let shaped =
            |digits: Option<&[u8]>| digits.is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if !shaped(last_group) || !shaped(exchange) {
            continue;
        }
        let mut window_start = separator.saturating_sub(NANP_BEFORE_LAST_SEPARATOR);
        while !text.is_char_boundary(window_start) {
            window_start += 1;
        }
        let number = NORTH_AMERICAN
            .find_iter(&text[window_start..end])
            .map(|number| window_start + number.start()..window_start + number.end())
            .find(|number| number.end == end);
        if let Some(range) = number.filter(|range| stands_alone(text, range.start, range.end)) {
            push(found, range);
        }
    }
}

fn push(found: &mut Vec<Finding>, range: Range<usize>) {
    found.push(Finding {
        detector: Detector::Phone,
        range,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn phones(text: &str) -> Vec<&str> {
        found(Detector::Phone, text)
    }

    #[test]
    fn finds_international_numbers() {
        for number in [
            "+4915112345678",
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "+1-555-123-4567",
            "+33 1 23 45 67 89",
            "+49 (0)30 1234567",
            "+81.3.1234.5678",
        ] {
            assert_eq!(phones(&format!("call {number} now")), [number], "{number}");
        }
    }

    #[test]
    fn finds_north_american_numbers() {
        for number in [
            "555-123-4567",
            "555.123.4567",
            "(555) 123-4567",
            "(555)123-4567",
            "1-800-555-0199",
        ] {
            assert_eq!(phones(&format!("tel: {number}.")), [number], "{number}");
        }
    }

    #[test]
    fn ignores_international_numbers_of_the_wrong_length() {
        assert!(phones("+1234567").is_empty());
        assert!(phones("+1234567890123456").is_empty());
    }

    #[test]
    fn ignores_plain_and_unshaped_numbers() {
        assert!(phones("5551234567").is_empty());
        assert!(phones("order 20240115103045").is_empty());
        assert!(phones("555 123 4567").is_empty());
        assert!(phones("555-123.4567").is_empty());
        assert!(phones("x555-123-4567").is_empty());
        assert!(phones("555-123-45678").is_empty());
        assert!(phones("2024-555-123-4567").is_empty());
        assert!(phones("3+12345678").is_empty());
    }

    #[test]
    fn ignores_dates_timestamps_and_uuids() {
        assert!(phones("2024-01-15").is_empty());
        assert!(phones("2024-01-15T10:23:45+00:00").is_empty());
        assert!(phones("2024-01-15 10:23:45.123456+0530").is_empty());
        assert!(phones("550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(phones("192.168.100.200").is_empty());
        assert!(phones("v1.2.3").is_empty());
    }
}
