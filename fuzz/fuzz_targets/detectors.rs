//! The masking crate on arbitrary values: `DetectorSet::find` and `mask_text` (detector
//! masks) and `Masker::mask_value` (column masks), for any set of detectors and any
//! strategy.
//!
//! Input: one byte whose bits pick the detectors (`ALL_DETECTORS` order), one byte the
//! strategy (redact, last4, email, hash, null), then the value as UTF-8.
//!
//! Invariants:
//! - nothing panics;
//! - findings are sorted, disjoint, non-empty, on character boundaries, and each names a
//!   detector of the set; a checksummed format (card number, IBAN) and an SSN found by
//!   its detector alone passes its own check (`is_card_number`, `is_iban`,
//!   `is_issuable`);
//! - masking replaces exactly the findings: `mask_text` keeps every byte outside them
//!   and puts the strategy's mask of each in its place (`null`: the whole value becomes
//!   NULL when anything is found); nothing found means the value borrowed as it is;
//! - a mask never shows more than its strategy promises: `redact` nothing, `hash` a
//!   keyed token, `last4` the last four characters of more than four and `*` for each
//!   other, `email` the first character of the local part, `***@` and the domain (each
//!   checked exactly). So a finding is never left in the clear; for `redact` and `hash`,
//!   which keep nothing, its replacement does not even contain it. (`email` and `last4`
//!   keep a part by design, so a finding already made of `*`, such as `***@example.com`,
//!   can reappear in its own mask without anything being shown.)
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use sluice_mask::detect::{credit_card, iban, us_ssn};
use sluice_mask::strategy::{HASH_TOKEN_HEX_DIGITS, HASH_TOKEN_PREFIX, REDACTED};
use sluice_mask::{Detector, DetectorSet, MaskStrategy, Masker, ALL_DETECTORS};

const STRATEGIES: [MaskStrategy; 5] = [
    MaskStrategy::Redact,
    MaskStrategy::Last4,
    MaskStrategy::Email,
    MaskStrategy::Hash,
    MaskStrategy::Null,
];

fuzz_target!(|data: &[u8]| {
    let [which, strategy, value @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(value) else {
        return;
    };
    let detectors: Vec<Detector> = ALL_DETECTORS
        .into_iter()
        .enumerate()
        .filter(|(i, _)| which & (1 << i) != 0)
        .map(|(_, d)| d)
        .collect();
    let strategy = STRATEGIES[usize::from(*strategy) % STRATEGIES.len()];
    let set = DetectorSet::new(detectors.iter().copied());
    let masker = Masker::new(b"fuzz hash key");

    // Column masks: the whole value.
    check_mask(strategy, text, masker.mask_value(strategy, text).as_deref());

    let found = set.find(text);
    let mut previous_end = 0;
    for finding in &found {
        let range = finding.range.clone();
        assert!(range.start < range.end, "an empty finding");
        assert!(
            range.start >= previous_end,
            "findings overlap or are unsorted"
        );
        assert!(range.end <= text.len());
        assert!(text.is_char_boundary(range.start) && text.is_char_boundary(range.end));
        assert!(detectors.contains(&finding.detector));
        previous_end = range.end;
    }
    for detector in [Detector::CreditCard, Detector::Iban, Detector::UsSsn] {
        if !detectors.contains(&detector) {
            continue;
        }
        for finding in DetectorSet::new([detector]).find(text) {
            let candidate = &text[finding.range];
            let valid = match detector {
                Detector::CreditCard => credit_card::is_card_number(candidate),
                Detector::Iban => iban::is_iban(candidate),
                _ => us_ssn::is_issuable(candidate),
            };
            assert!(
                valid,
                "{detector:?} found {candidate:?}, which fails its check"
            );
        }
    }

    let masked = set.mask_text(&masker, strategy, text);
    if found.is_empty() {
        assert!(matches!(masked, Some(Cow::Borrowed(same)) if same == text));
        return;
    }
    if strategy == MaskStrategy::Null {
        assert!(masked.is_none(), "null with findings is NULL");
        return;
    }
    let masked = masked.expect("only null has no text form");
    let mut expected = String::new();
    let mut copied = 0;
    for finding in &found {
        let clear = &text[finding.range.clone()];
        let replacement = masker
            .mask_value(strategy, clear)
            .expect("only null has no text form");
        check_mask(strategy, clear, Some(&replacement));
        if matches!(strategy, MaskStrategy::Redact | MaskStrategy::Hash) {
            assert!(
                !replacement.contains(clear),
                "{clear:?} left in the clear by {strategy:?}: {replacement:?}"
            );
        }
        expected.push_str(&text[copied..finding.range.start]);
        expected.push_str(&replacement);
        copied = finding.range.end;
    }
    expected.push_str(&text[copied..]);
    assert_eq!(masked, expected, "masking replaces exactly the findings");
});

/// `masked` is what `strategy` may make of `value`, and shows no more than it promises.
fn check_mask(strategy: MaskStrategy, value: &str, masked: Option<&str>) {
    let Some(masked) = masked else {
        assert_eq!(strategy, MaskStrategy::Null, "only null is NULL");
        return;
    };
    match strategy {
        MaskStrategy::Null => panic!("null masked {value:?} as {masked:?}"),
        MaskStrategy::Redact => assert_eq!(masked, REDACTED),
        MaskStrategy::Hash => {
            let digits = masked
                .strip_prefix(HASH_TOKEN_PREFIX)
                .expect("a hash token has its prefix");
            assert_eq!(digits.len(), HASH_TOKEN_HEX_DIGITS);
            assert!(digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        MaskStrategy::Last4 => {
            let chars = value.chars().count();
            if chars <= 4 {
                assert_eq!(masked, REDACTED, "last4 of a short value");
            } else {
                let kept: String = value.chars().skip(chars - 4).collect();
                let expected = format!("{}{kept}", "*".repeat(chars - 4));
                assert_eq!(masked, expected);
            }
        }
        MaskStrategy::Email => {
            if masked == REDACTED {
                return;
            }
            let (local, domain) = value
                .split_once('@')
                .unwrap_or_else(|| panic!("email kept part of {value:?}: {masked:?}"));
            let first = local.chars().next().expect("a local part");
            assert_eq!(masked, format!("{first}***@{domain}"));
            assert!(
                !domain.contains('@'),
                "email kept a second `@` of {value:?}"
            );
        }
    }
}
