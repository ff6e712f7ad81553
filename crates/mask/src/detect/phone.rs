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

use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::boundary::stands_alone;
use super::{Finding, Glance};

/// E.164 says at most 15 digits; the shortest numbers in use have 8 with country code.
const INTERNATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
          \+[1-9][0-9]*(?:[\ .\-]?(?:\([0-9]{1,4}\)|[0-9]+))*         # international
        | (?:1[\ .\-]?)?\([0-9]{3}\)\ ?[0-9]{3}[.\-][0-9]{4}          # (555) 123-4567
        | (?:1-)?[0-9]{3}-[0-9]{3}-[0-9]{4}                           # 555-123-4567
        | (?:1\.)?[0-9]{3}\.[0-9]{3}\.[0-9]{4}                        # 555.123.4567
        ",
    )
    .expect("the phone pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&PHONE);
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if glance.digits < *INTERNATIONAL_DIGITS.start() {
        return;
    }
    for candidate in PHONE.find_iter(text) {
        let number = candidate.as_str();
        let international = number.starts_with('+');
        let digits = number.bytes().filter(u8::is_ascii_digit).count();
        if stands_alone(text, candidate.start(), candidate.end())
            && (!international || INTERNATIONAL_DIGITS.contains(&digits))
        {
            found.push(Finding {
                detector: Detector::Phone,
                range: candidate.range(),
            });
        }
    }
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
