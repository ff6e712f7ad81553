//! International bank account numbers (ISO 13616): a country code, two check digits and
//! the country's BBAN, written compact (`DE89370400440532013000`) or in the printed form,
//! groups of four separated by single spaces (`DE89 3704 0044 0532 0130 00`).
//!
//! A candidate must have exactly its country's length (the registry's table below) and
//! pass ISO 7064 mod 97-10: the check digits leave remainder 1. Letters may be of either
//! case; the checksum and the exact length make chance matches in prose negligible. A
//! byte scan finds where one may start (two letters, two digits, at the start of a
//! token); the country's length decides where it ends, since a grouped IBAN is often
//! followed by more text in groups.

use std::ops::Range;

use sluice_config::Detector;

use super::boundary::{clear_after, clear_before};
use super::{Finding, Glance};

/// The shortest IBAN (Norway).
const MIN_LENGTH: usize = 15;

/// The longest IBAN the standard allows.
const MAX_LENGTH: usize = 34;

/// Characters in a printed group.
const GROUP: usize = 4;

/// IBAN length per country, from the SWIFT IBAN registry.
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// Whether a value could hold an IBAN: long enough, with its two check digits.
pub(super) fn possible(bytes: &[u8], glance: &Glance) -> bool {
    glance.digits >= 2 && bytes.len() >= MIN_LENGTH
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    let bytes = text.as_bytes();
    // Check digits begin a run of digits; look only where one begins after two letters.
    let mut position = 0;
    while let Some(offset) = bytes[position..].iter().position(u8::is_ascii_digit) {
        let digits = position + offset;
        let start = digits.saturating_sub(2);
        let iban = (digits >= 2 && iban_start_at(bytes, start))
            .then(|| iban_at(text, start))
            .flatten();
        position = match iban {
            Some(range) => {
                let end = range.end;
                found.push(Finding {
                    detector: Detector::Iban,
                    range,
                });
                end
            }
            // Past this run of digits: no IBAN starts inside it.
            None => {
                digits
                    + bytes[digits..]
                        .iter()
                        .position(|byte| !byte.is_ascii_digit())
                        .unwrap_or(bytes.len() - digits)
            }
        };
    }
}

/// True when a country code and check digits (two letters, two digits) start at `start`.
fn iban_start_at(bytes: &[u8], start: usize) -> bool {
    matches!(
        bytes[start..],
        [country_1, country_2, check_1, check_2, ..]
            if country_1.is_ascii_alphabetic()
                && country_2.is_ascii_alphabetic()
                && check_1.is_ascii_digit()
                && check_2.is_ascii_digit()
    )
}

/// The IBAN starting at byte `start`, compact or printed, if there is one.
fn iban_at(text: &str, start: usize) -> Option<Range<usize>> {
    if !clear_before(text, start) {
        return None;
    }
    let length = country_length(&text[start..start + 2])?;
    [
        compact_end(text, start, length),
        printed_end(text, start, length),
    ]
    .into_iter()
    .flatten()
    .find(|&end| clear_after(text, end) && is_iban(&text[start..end]))
    .map(|end| start..end)
}

fn country_length(code: &str) -> Option<usize> {
    LENGTHS
        .iter()
        .find(|(country, _)| country.eq_ignore_ascii_case(code))
        .map(|&(_, length)| length)
}

/// Where a compact IBAN of `length` characters starting at `start` ends.
fn compact_end(text: &str, start: usize, length: usize) -> Option<usize> {
    let end = start + length;
    let candidate = text.as_bytes().get(start..end)?;
    candidate
        .iter()
        .all(u8::is_ascii_alphanumeric)
        .then_some(end)
}

/// Where a printed IBAN (groups of four, single spaces) of `length` characters ends.
fn printed_end(text: &str, start: usize, length: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut position = start;
    let mut taken = 0;
    while taken < length {
        if taken > 0 && taken % GROUP == 0 {
            (bytes.get(position) == Some(&b' ')).then_some(())?;
            position += 1;
        }
        bytes.get(position).filter(|b| b.is_ascii_alphanumeric())?;
        position += 1;
        taken += 1;
    }
    Some(position)
}

/// True for an IBAN (spaces allowed) of a known country, of that country's length, with
/// check digits 02 to 98 that pass ISO 7064 mod 97-10.
pub fn is_iban(candidate: &str) -> bool {
    // Upper-cased without spaces, on the stack: candidates are checked per value.
    let mut buffer = [0u8; MAX_LENGTH];
    let mut length = 0;
    for byte in candidate.bytes().filter(|&b| b != b' ') {
        if length == MAX_LENGTH || !byte.is_ascii_alphanumeric() {
            return false;
        }
        buffer[length] = byte.to_ascii_uppercase();
        length += 1;
    }
    let compact = &buffer[..length];
    let Some(country) = compact
        .get(..2)
        .and_then(|code| std::str::from_utf8(code).ok())
    else {
        return false;
    };
    country_length(country) == Some(length)
        && issued_check_digits(compact[2], compact[3])
        && mod97(compact) == 1
}

/// Check digits are computed as 98 minus a remainder, so only 02 to 98 occur.
fn issued_check_digits(tens: u8, units: u8) -> bool {
    tens.is_ascii_digit()
        && units.is_ascii_digit()
        && (2..=98).contains(&((tens - b'0') * 10 + (units - b'0')))
}

/// ISO 7064 mod 97-10 of an upper-case alphanumeric IBAN: the first four characters moved
/// to the end, letters read as 10 to 35, the whole as one decimal number modulo 97.
fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4);
    tail.iter().chain(head).fold(0, |remainder, &character| {
        let value = u32::from(if character.is_ascii_digit() {
            character - b'0'
        } else {
            character - b'A' + 10
        });
        let scale = if value >= 10 { 100 } else { 10 };
        (remainder * scale + value) % 97
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn ibans(text: &str) -> Vec<&str> {
        found(Detector::Iban, text)
    }

    #[test]
    fn validates_registry_examples() {
        for iban in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "BE68539007547034",
            "CH9300762011623852957",
            "MT84MALT011000012345MTLCAST001S",
            "LC55HEMM000100010012001200023015",
            "RU0304452522540817810538091310419",
        ] {
            assert!(is_iban(iban), "{iban}");
        }
    }

    #[test]
    fn finds_compact_and_printed_forms() {
        assert_eq!(
            ibans("IBAN DE89370400440532013000."),
            ["DE89370400440532013000"]
        );
        assert_eq!(
            ibans("pay to DE89 3704 0044 0532 0130 00 by Friday"),
            ["DE89 3704 0044 0532 0130 00"]
        );
        assert_eq!(
            ibans("gb82 west 1234 5698 7654 32"),
            ["gb82 west 1234 5698 7654 32"]
        );
    }

    #[test]
    fn the_country_length_decides_where_a_printed_iban_ends() {
        // BE is 16 characters: the next group of four is text, not part of the IBAN.
        assert_eq!(ibans("BE68 5390 0754 7034 EURO"), ["BE68 5390 0754 7034"]);
    }

    #[test]
    fn ignores_ibans_failing_mod97() {
        assert!(ibans("DE89370400440532013001").is_empty());
        assert!(ibans("DE88 3704 0044 0532 0130 00").is_empty());
        assert!(!is_iban("GB82WEST12345698765433"));
    }

    #[test]
    fn ignores_wrong_lengths_and_unknown_countries() {
        assert!(ibans("DE8937040044053201300").is_empty()); // one short
        assert!(ibans("DE893704004405320130001").is_empty()); // one too many
        assert!(ibans("ZZ89370400440532013000").is_empty());
        assert!(ibans("DE89 3704 0044 05320130 00").is_empty()); // broken grouping
    }

    #[test]
    fn ignores_parts_of_longer_tokens() {
        assert!(ibans("XDE89370400440532013000").is_empty());
        assert!(ibans("id-DE89370400440532013000").is_empty());
    }

    /// `country`, the check digits that make `bban` valid, and `bban`.
    fn with_check_digits(country: &str, bban: &str) -> String {
        let check = 98 - mod97(format!("{country}00{bban}").as_bytes());
        format!("{country}{check:02}{bban}")
    }

    #[test]
    fn ignores_out_of_range_check_digits() {
        // Check digits 00 and 97 leave the same remainder; only 02 to 98 are issued, so a
        // 00 where 97 belongs passes the checksum and must still be refused.
        let valid = (0..1000u32)
            .map(|account| with_check_digits("DE", &format!("370400440532{account:06}")))
            .find(|iban| &iban[2..4] == "97")
            .expect("some account has check digits 97");
        assert!(is_iban(&valid));
        let zeroed = format!("DE00{}", &valid[4..]);
        assert_eq!(mod97(zeroed.as_bytes()), 1);
        assert!(!is_iban(&zeroed));
        assert!(ibans(&zeroed).is_empty());
    }
}
