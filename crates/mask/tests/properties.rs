//! Properties of detection and masking over generated values: checksummed numbers are
//! found wherever they are embedded and only when their checksum holds, masked output
//! never carries what was found, and the strategies keep their promises for any input.
//!
//! The generators compute Luhn and mod-97 check digits themselves, independently of the
//! crate, so a mistake in the crate's checksums cannot hide behind the same mistake here.

use std::borrow::Cow;

use proptest::prelude::*;
use sluice_mask::{Detector, DetectorSet, MaskStrategy, Masker};

const STRATEGIES_WITH_TEXT: [MaskStrategy; 4] = [
    MaskStrategy::Redact,
    MaskStrategy::Last4,
    MaskStrategy::Email,
    MaskStrategy::Hash,
];

fn masker() -> Masker {
    Masker::new(b"property test key")
}

/// The Luhn check digit that completes `payload`.
fn luhn_check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            let value = u32::from(digit);
            // The check digit will be rightmost, so the payload's last digit is doubled.
            if position % 2 == 0 {
                let doubled = value * 2;
                doubled / 10 + doubled % 10
            } else {
                value
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// How a generated number is written.
#[derive(Debug, Clone, Copy)]
enum Grouping {
    Compact,
    Spaces,
    Dashes,
}

fn grouped(digits: &str, grouping: Grouping) -> String {
    let separator = match grouping {
        Grouping::Compact => return digits.to_owned(),
        Grouping::Spaces => " ",
        Grouping::Dashes => "-",
    };
    let groups: Vec<&str> = digits
        .as_bytes()
        .chunks(4)
        .map(|chunk| std::str::from_utf8(chunk).expect("ASCII digits"))
        .collect();
    groups.join(separator)
}

fn grouping() -> impl Strategy<Value = Grouping> {
    prop_oneof![
        Just(Grouping::Compact),
        Just(Grouping::Spaces),
        Just(Grouping::Dashes)
    ]
}

/// Card numbers of a payment network (first digit 2 to 6), 13 to 19 digits, Luhn-valid,
/// as (digits, written form).
fn card_number() -> impl Strategy<Value = (String, String)> {
    (2u8..=6, prop::collection::vec(0u8..=9, 11..=17), grouping()).prop_map(
        |(first, middle, grouping)| {
            let mut payload = vec![first];
            payload.extend(middle);
            payload.push(luhn_check_digit(&payload));
            let digits: String = payload.iter().map(|d| char::from(b'0' + d)).collect();
            let written = grouped(&digits, grouping);
            (digits, written)
        },
    )
}

/// Free text without digits (so it cannot lengthen a number), around a value.
fn filler() -> impl Strategy<Value = String> {
    "[a-zA-Z ,.;:!?()éü漢]{0,30}"
}

/// ISO 7064 mod 97 of an IBAN's characters in the order given, by long division.
fn mod97_of(characters: &str) -> u32 {
    characters.chars().fold(0, |remainder, character| {
        let value = character.to_digit(36).expect("alphanumeric");
        if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        }
    })
}

/// Some countries of the IBAN registry with their lengths.
const COUNTRIES: &[(&str, usize)] = &[
    ("DE", 22),
    ("GB", 22),
    ("FR", 27),
    ("NL", 18),
    ("NO", 15),
    ("BE", 16),
    ("CH", 21),
    ("IT", 27),
    ("ES", 24),
    ("PL", 28),
    ("MT", 31),
    ("LC", 32),
    ("RU", 33),
];

/// Valid IBANs, written compact or in groups of four, upper or lower case.
fn iban() -> impl Strategy<Value = String> {
    (
        prop::sample::select(COUNTRIES),
        prop::collection::vec(
            prop::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".as_slice()),
            34,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((country, length), characters, printed, lower)| {
            let bban: String = characters[..length - 4]
                .iter()
                .map(|&b| char::from(b))
                .collect();
            let check = 98 - mod97_of(&format!("{bban}{country}00"));
            let compact = format!("{country}{check:02}{bban}");
            let written = if printed {
                compact
                    .as_bytes()
                    .chunks(4)
                    .map(|chunk| std::str::from_utf8(chunk).expect("ASCII"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                compact
            };
            if lower {
                written.to_lowercase()
            } else {
                written
            }
        })
}

/// Values a detector finds, of every kind, for texts mixing them.
fn sensitive_value() -> impl Strategy<Value = String> {
    prop_oneof![
        card_number().prop_map(|(_, written)| written),
        iban(),
        "[a-z]{1,10}(\\.[a-z]{1,6})?@[a-z]{2,10}\\.(com|org|de|io)",
        "[1-8][0-9]{2}-[1-9][0-9]-[1-9][0-9]{3}",
        "\\+[1-9][0-9]{7,13}",
        "AKIA[A-Z0-9]{16}",
        Just("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_owned()),
    ]
}

/// A text of sensitive values and words, separated by spaces.
fn mixed_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![sensitive_value(), "[a-zA-Z]{1,8}"], 1..8)
        .prop_map(|parts| parts.join(" "))
}

proptest! {
    #[test]
    fn luhn_valid_cards_are_found_and_masked(
        (digits, written) in card_number(),
        before in filler(),
        after in filler(),
    ) {
        let text = format!("{before} {written} {after}");
        let found = DetectorSet::new([Detector::CreditCard]).find(&text);
        prop_assert_eq!(found.len(), 1, "{:?}", text);
        prop_assert_eq!(&text[found[0].range.clone()], written.as_str());

        let set = DetectorSet::all();
        for strategy in [MaskStrategy::Redact, MaskStrategy::Hash, MaskStrategy::Email] {
            let masked = set.mask_text(&masker(), strategy, &text).expect("a text form");
            let kept: String = masked.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!kept.contains(&digits[..]), "{:?} kept {:?}", strategy, masked);
            prop_assert!(!masked.contains(&written[..]));
        }
        let last4 = set.mask_text(&masker(), MaskStrategy::Last4, &text).expect("a text form");
        let kept: Vec<char> = last4.chars().filter(char::is_ascii_digit).collect();
        prop_assert!(kept.len() <= 4, "{:?}", last4);
    }

    #[test]
    fn luhn_invalid_cards_are_not_found(
        (digits, _) in card_number(),
        wrong in 1u8..=9,
        grouping in grouping(),
        before in filler(),
        after in filler(),
    ) {
        let mut broken = digits.into_bytes();
        let last = broken.len() - 1;
        broken[last] = b'0' + (broken[last] - b'0' + wrong) % 10;
        let broken = grouped(std::str::from_utf8(&broken).expect("ASCII"), grouping);
        let text = format!("{before} {broken} {after}");
        prop_assert!(DetectorSet::new([Detector::CreditCard]).find(&text).is_empty(), "{:?}", text);
    }

    #[test]
    fn valid_ibans_are_found(iban in iban(), before in filler(), after in filler()) {
        let text = format!("{before} {iban} {after}");
        let found = DetectorSet::new([Detector::Iban]).find(&text);
        prop_assert_eq!(found.len(), 1, "{:?}", text);
        prop_assert_eq!(&text[found[0].range.clone()], iban.as_str());
    }

    #[test]
    fn ibans_with_one_character_changed_are_not_found(
        iban in iban(),
        position in 4usize..15,
        shift in 1u32..10,
    ) {
        // Mod 97 catches every single substitution; change one BBAN digit (or letter).
        let mut characters: Vec<char> = iban.chars().filter(|c| *c != ' ').collect();
        let original = characters[position];
        characters[position] = match original.to_digit(10) {
            Some(digit) => char::from_digit((digit + shift) % 10, 10).expect("a digit"),
            None if original.eq_ignore_ascii_case(&'Z') => 'A',
            None => char::from(original as u8 + 1),
        };
        let broken: String = characters.into_iter().collect();
        prop_assert!(DetectorSet::new([Detector::Iban]).find(&broken).is_empty(), "{:?}", broken);
    }

    #[test]
    fn hash_is_stable_and_keyed(
        value in any::<String>(),
        key in any::<Vec<u8>>(),
        other in any::<Vec<u8>>(),
    ) {
        let token = Masker::new(&key).mask_value(MaskStrategy::Hash, &value);
        prop_assert_eq!(&token, &Masker::new(&key).mask_value(MaskStrategy::Hash, &value));
        let token = token.expect("hash has a text form");
        prop_assert!(token.starts_with("h:") && token.len() == 18);
        if key != other {
            let other_token = Masker::new(&other).mask_value(MaskStrategy::Hash, &value);
            prop_assert_ne!(Some(token), other_token);
        }
    }

    #[test]
    fn last4_never_shows_more_than_four_characters(value in any::<String>()) {
        let masked = masker().mask_value(MaskStrategy::Last4, &value).expect("a text form");
        let length = value.chars().count();
        if length <= 4 {
            prop_assert_eq!(masked, "****");
        } else {
            let kept: String = value.chars().skip(length - 4).collect();
            prop_assert_eq!(masked, format!("{}{kept}", "*".repeat(length - 4)));
        }
    }

    #[test]
    fn masked_text_never_contains_a_finding(text in mixed_text()) {
        let set = DetectorSet::all();
        let found = set.find(&text);
        for strategy in STRATEGIES_WITH_TEXT {
            let masked = set.mask_text(&masker(), strategy, &text).expect("a text form");
            for finding in &found {
                let original = &text[finding.range.clone()];
                prop_assert!(
                    !masked.contains(original),
                    "{:?} left {:?} in {:?}", strategy, original, masked
                );
            }
        }
        let nulled = set.mask_text(&masker(), MaskStrategy::Null, &text);
        prop_assert_eq!(nulled.is_none(), !found.is_empty());
    }

    /// A caller passes a value on undecoded when `may_find_in` says nothing could be
    /// found: that must never be said of a value in which something is found, by any
    /// one detector or by all of them.
    #[test]
    fn whatever_is_found_was_said_to_be_possible(
        text in prop_oneof![
            mixed_text(),
            sensitive_value(),
            any::<String>(),
            (mixed_text(), any::<String>()).prop_map(|(known, noise)| known + &noise),
        ],
    ) {
        let mut sets: Vec<DetectorSet> = sluice_mask::ALL_DETECTORS
            .into_iter()
            .map(|detector| DetectorSet::new([detector]))
            .collect();
        sets.push(DetectorSet::all());
        for set in &sets {
            if !set.find(&text).is_empty() {
                prop_assert!(
                    set.may_find_in(text.as_bytes()),
                    "{:?} found something in {:?} it had said was impossible", set.detectors(), text
                );
            }
        }
    }

    #[test]
    fn findings_are_sorted_disjoint_and_on_character_boundaries(
        text in prop_oneof![
            any::<String>(),
            mixed_text(),
            (mixed_text(), any::<String>()).prop_map(|(known, noise)| known + &noise),
        ],
    ) {
        let found = DetectorSet::all().find(&text);
        for pair in found.windows(2) {
            prop_assert!(pair[0].range.end <= pair[1].range.start);
        }
        for finding in &found {
            prop_assert!(finding.range.start < finding.range.end);
            prop_assert!(text.is_char_boundary(finding.range.start));
            prop_assert!(text.is_char_boundary(finding.range.end));
        }
        if found.is_empty() {
            let unchanged = DetectorSet::all().mask_text(&masker(), MaskStrategy::Redact, &text);
            prop_assert!(matches!(unchanged, Some(Cow::Borrowed(_))));
        }
    }
}
