//! Detectors: finding sensitive values inside text (DESIGN.md §4).
//!
//! One file per detector, each with a `scan` that appends what it finds and, when it uses
//! regular expressions, a `prepare` that compiles them; [`DetectorSet`] runs the
//! configured ones over a value, merges what they found, and masks it.
//!
//! Values are mostly short and mostly innocent, so every detector first asks something
//! cheap of the text (its length, enough digits, an `@`, an `eyJ`) and then looks only
//! where its format can be: expressions that start with a literal are run as they are
//! (the engine searches for the literal), the others only from anchors found with
//! `memchr`; the fixed numeric shapes (cards, SSNs, IBAN starts) are scanned byte by
//! byte. The digit count is taken once per value, in a [`Glance`], for the detectors that
//! need it. Formats with a checksum (card numbers, IBANs) are validated by it; formats
//! without one are held to shapes that rarely occur by chance.
//!
//! - [`boundary`]: the word-boundary rules the detectors share;
//! - [`credit_card`], [`iban`]: the checksummed formats (Luhn, mod 97);
//! - [`us_ssn`], [`phone`], [`email`]: personal data by shape;
//! - [`jwt`], [`private_key`], [`cloud_key`]: credentials.

use std::borrow::Cow;
use std::ops::Range;

use sluice_config::{Detector, MaskStrategy};

use crate::strategy::Masker;

pub(crate) mod boundary;
pub mod cloud_key;
pub mod credit_card;
pub mod email;
pub mod iban;
pub mod jwt;
pub mod phone;
pub mod private_key;
pub mod us_ssn;

/// Every detector, in the order a [`DetectorSet`] runs them.
pub const ALL_DETECTORS: [Detector; 8] = [
    Detector::PrivateKey,
    Detector::Jwt,
    Detector::CloudAccessKey,
    Detector::Email,
    Detector::CreditCard,
    Detector::Iban,
    Detector::UsSsn,
    Detector::Phone,
];

/// A sensitive value found in a text: which detector found it and its byte range, which
/// always falls on character boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    pub range: Range<usize>,
}

/// What one pass over a value's bytes tells the detectors before they run.
pub(crate) struct Glance {
    /// ASCII digits in the text: card numbers, IBANs, SSNs and phones need several.
    pub(crate) digits: usize,
}

impl Glance {
    fn of(bytes: &[u8], count_digits: bool) -> Self {
        Glance {
            digits: if count_digits {
                count_digits_in(bytes)
            } else {
                0
            },
        }
    }
}

/// ASCII digits in `bytes`. This runs on every scanned value, most of them short: a word
/// at a time ([`crate::swar`]).
fn count_digits_in(bytes: &[u8]) -> usize {
    // Zero bytes are not digits.
    crate::swar::words(bytes, 0)
        .map(digits_in_word)
        .sum::<u64>() as usize
}

/// How many of a word's 8 bytes are ASCII digits. Each byte's low 7 bits plus a bias
/// sets that byte's high bit exactly when they reach the bias's threshold, and never
/// carries into the next byte (at most 0x7f + 0x50); bytes with the high bit set are not
/// ASCII. The multiplication adds the eight 0/1 bytes into the top one.
#[inline]
fn digits_in_word(word: u64) -> u64 {
    use crate::swar::{HIGH, ONES};
    let low = word & !HIGH;
    let from_zero = low + (0x80 - u64::from(b'0')) * ONES;
    let past_nine = low + (0x80 - u64::from(b'9') - 1) * ONES;
    let digit = from_zero & !past_nine & !word & HIGH;
    ((digit >> 7).wrapping_mul(ONES)) >> 56
}

/// The detectors of a mask rule, ready to run; build once per rule and share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorSet {
    /// Without duplicates, in [`ALL_DETECTORS`] order, so results do not depend on the
    /// order a config listed them in.
    detectors: Vec<Detector>,
    /// Whether any of them reads [`Glance::digits`].
    counts_digits: bool,
}

impl DetectorSet {
    /// The set of `detectors` (duplicates ignored). Compiles their patterns now, so the
    /// first value scanned does not pay for it.
    pub fn new(detectors: impl IntoIterator<Item = Detector>) -> Self {
        let wanted: Vec<Detector> = detectors.into_iter().collect();
        let detectors: Vec<Detector> = ALL_DETECTORS
            .into_iter()
            .filter(|detector| wanted.contains(detector))
            .collect();
        for detector in &detectors {
            prepare(*detector);
        }
        let counts_digits = detectors.iter().any(|detector| {
            matches!(
                detector,
                Detector::CreditCard | Detector::Iban | Detector::UsSsn | Detector::Phone
            )
        });
        DetectorSet {
            detectors,
            counts_digits,
        }
    }

    /// Every detector there is.
    pub fn all() -> Self {
        DetectorSet::new(ALL_DETECTORS)
    }

    /// The detectors of this set, in the order they run.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Whether anything could be found in `bytes`: `false` means [`Self::find`] finds
    /// nothing in them, and lets a caller pass the value on without decoding it.
    ///
    /// Each detector's scan starts with the same test (`possible`), so the two cannot
    /// disagree. The tests are about ASCII bytes only (digits, an `@`, `eyJ`, `PRIVATE
    /// KEY`, a length), and every format the detectors know is written in ASCII: bytes
    /// that fail them hold nothing to find, whether or not they are valid UTF-8.
    pub fn may_find_in(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let glance = Glance::of(bytes, self.counts_digits);
        self.detectors
            .iter()
            .any(|detector| possible(*detector, bytes, &glance))
    }

    /// The sensitive values in `text`, sorted and non-overlapping. Where findings overlap
    /// (an address that is also a phone number, `+15551234567@sms.example.com`), they are
    /// merged into one covering both, named after the one that starts first (the longer
    /// on a tie): masking the union never leaves part of either in the clear. Allocates
    /// nothing when nothing is found.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        if text.is_empty() {
            return found;
        }
        let glance = Glance::of(text.as_bytes(), self.counts_digits);
        for detector in &self.detectors {
            scan(*detector, text, &glance, &mut found);
        }
        merge_overlaps(&mut found);
        found
    }

    /// `text` with every finding replaced by `strategy`'s mask of it: borrowed when
    /// nothing was found, so innocent values cost no allocation. `None` (SQL NULL, JSON
    /// null) when the strategy is `null` and anything was found: part of a value cannot
    /// be null, so all of it is.
    pub fn mask_text<'a>(
        &self,
        masker: &Masker,
        strategy: MaskStrategy,
        text: &'a str,
    ) -> Option<Cow<'a, str>> {
        let found = self.find(text);
        if found.is_empty() {
            return Some(Cow::Borrowed(text));
        }
        let mut masked = String::with_capacity(text.len());
        let mut copied = 0;
        for finding in &found {
            masked.push_str(&text[copied..finding.range.start]);
            if !masker.write_masked(strategy, &text[finding.range.clone()], &mut masked) {
                return None;
            }
            copied = finding.range.end;
        }
        masked.push_str(&text[copied..]);
        Some(Cow::Owned(masked))
    }
}

fn prepare(detector: Detector) {
    match detector {
        Detector::Email => email::prepare(),
        Detector::Phone => phone::prepare(),
        Detector::Jwt => jwt::prepare(),
        Detector::PrivateKey => private_key::prepare(),
        Detector::CloudAccessKey => cloud_key::prepare(),
        // Found by byte scans: nothing to compile.
        Detector::CreditCard | Detector::Iban | Detector::UsSsn => {}
    }
}

/// The test a detector's scan starts with: whether `bytes` could hold what it looks for.
fn possible(detector: Detector, bytes: &[u8], glance: &Glance) -> bool {
    match detector {
        Detector::Email => email::possible(bytes, glance),
        Detector::CreditCard => credit_card::possible(bytes, glance),
        Detector::Iban => iban::possible(bytes, glance),
        Detector::UsSsn => us_ssn::possible(bytes, glance),
        Detector::Phone => phone::possible(bytes, glance),
        Detector::Jwt => jwt::possible(bytes, glance),
        Detector::PrivateKey => private_key::possible(bytes, glance),
        Detector::CloudAccessKey => cloud_key::possible(bytes, glance),
    }
}

fn scan(detector: Detector, text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    match detector {
        Detector::Email => email::scan(text, glance, found),
        Detector::CreditCard => credit_card::scan(text, glance, found),
        Detector::Iban => iban::scan(text, glance, found),
        Detector::UsSsn => us_ssn::scan(text, glance, found),
        Detector::Phone => phone::scan(text, glance, found),
        Detector::Jwt => jwt::scan(text, glance, found),
        Detector::PrivateKey => private_key::scan(text, glance, found),
        Detector::CloudAccessKey => cloud_key::scan(text, glance, found),
    }
}

/// Sorts findings by start (longest first on a tie) and merges the overlapping ones.
fn merge_overlaps(found: &mut Vec<Finding>) {
    if found.len() < 2 {
        return;
    }
    found.sort_by(|a, b| {
        a.range
            .start
            .cmp(&b.range.start)
            .then(b.range.end.cmp(&a.range.end))
    });
    found.dedup_by(|later, kept| {
        let overlaps = later.range.start < kept.range.end;
        if overlaps {
            kept.range.end = kept.range.end.max(later.range.end);
        }
        overlaps
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The substrings `detector` alone finds in `text`.
    pub(crate) fn found(detector: Detector, text: &str) -> Vec<&str> {
        DetectorSet::new([detector])
            .find(text)
            .into_iter()
            .map(|finding| &text[finding.range])
            .collect()
    }

    fn masker() -> Masker {
        Masker::new(b"test key")
    }

    #[test]
    fn digits_are_counted_across_chunks() {
        assert_eq!(count_digits_in(b""), 0);
        assert_eq!(count_digits_in(b"a1b2/:09"), 4);
        let long = "1a".repeat(1000);
        assert_eq!(count_digits_in(long.as_bytes()), 1000);
        assert_eq!(count_digits_in("9".repeat(600).as_bytes()), 600);
    }

    #[test]
    fn digits_are_counted_exactly_for_every_byte_and_length() {
        let naive = |bytes: &[u8]| bytes.iter().filter(|b| b.is_ascii_digit()).count();
        // Every byte value next to digits and at each position of a word and its tail.
        for byte in 0..=255u8 {
            for len in 0..=17 {
                for at in 0..len {
                    let mut bytes = vec![b'5'; len];
                    bytes[at] = byte;
                    assert_eq!(count_digits_in(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
        let mixed: Vec<u8> = (0..4096u32).map(|i| (i * 37 % 256) as u8).collect();
        for len in 0..mixed.len() {
            assert_eq!(count_digits_in(&mixed[..len]), naive(&mixed[..len]));
        }
    }

    #[test]
    fn a_set_ignores_duplicates_and_config_order() {
        let set = DetectorSet::new([Detector::Phone, Detector::Email, Detector::Phone]);
        assert_eq!(set.detectors(), [Detector::Email, Detector::Phone]);
        assert!(DetectorSet::new([]).is_empty());
    }

    #[test]
    fn findings_are_sorted_across_detectors() {
        let text = "ssn 123-45-6789, mail jane@example.com, card 4111 1111 1111 1111";
        let kinds: Vec<Detector> = DetectorSet::all()
            .find(text)
            .into_iter()
            .map(|finding| finding.detector)
            .collect();
        assert_eq!(
            kinds,
            [Detector::UsSsn, Detector::Email, Detector::CreditCard]
        );
    }

    #[test]
    fn overlapping_findings_merge() {
        let text = "text +15551234567@sms.example.com now";
        let found = DetectorSet::new([Detector::Email, Detector::Phone]).find(text);
        assert_eq!(found.len(), 1);
        // Both start at `+`; the address is the longer.
        assert_eq!(found[0].detector, Detector::Email);
        assert_eq!(
            &text[found[0].range.clone()],
            "+15551234567@sms.example.com"
        );
    }

    #[test]
    fn merge_keeps_disjoint_and_joins_chains() {
        let finding = |detector, range| Finding { detector, range };
        let mut found = vec![
            finding(Detector::Phone, 10..20),
            finding(Detector::Email, 0..5),
            finding(Detector::Iban, 18..25),
            finding(Detector::Jwt, 5..8),
            finding(Detector::UsSsn, 10..12),
        ];
        merge_overlaps(&mut found);
        assert_eq!(
            found,
            [
                finding(Detector::Email, 0..5),
                finding(Detector::Jwt, 5..8),
                finding(Detector::Phone, 10..25),
            ]
        );
    }

    #[test]
    fn nothing_found_borrows_and_does_not_allocate() {
        let set = DetectorSet::all();
        let text = "an ordinary value, 42 of them, on 2024-01-15";
        assert!(set.find(text).capacity() == 0);
        assert!(matches!(
            set.mask_text(&masker(), MaskStrategy::Redact, text),
            Some(Cow::Borrowed(same)) if same == text
        ));
    }

    #[test]
    fn mask_text_replaces_each_finding() {
        let set = DetectorSet::all();
        let text = "card 4111 1111 1111 1111, mail jane@example.com.";
        let masked = |strategy| {
            set.mask_text(&masker(), strategy, text)
                .map(Cow::into_owned)
        };
        assert_eq!(
            masked(MaskStrategy::Redact).as_deref(),
            Some("card ****, mail ****.")
        );
        assert_eq!(
            masked(MaskStrategy::Last4).as_deref(),
            Some("card ***************1111, mail ************.com.")
        );
        assert_eq!(
            masked(MaskStrategy::Email).as_deref(),
            Some("card ****, mail j***@example.com.")
        );
        let hashed = masked(MaskStrategy::Hash).expect("hash has a text form");
        let card_token = masker()
            .mask_value(MaskStrategy::Hash, "4111 1111 1111 1111")
            .expect("token");
        assert!(
            hashed.starts_with(&format!("card {card_token}, mail h:")),
            "{hashed}"
        );
    }

    #[test]
    fn mask_text_with_null_nulls_the_whole_value() {
        let set = DetectorSet::all();
        assert_eq!(
            set.mask_text(&masker(), MaskStrategy::Null, "ssn 123-45-6789"),
            None
        );
        assert_eq!(
            set.mask_text(&masker(), MaskStrategy::Null, "nothing here"),
            Some(Cow::Borrowed("nothing here"))
        );
    }

    #[test]
    fn empty_sets_and_texts_find_nothing() {
        assert!(DetectorSet::new([]).find("4111 1111 1111 1111").is_empty());
        assert!(DetectorSet::all().find("").is_empty());
    }
}
