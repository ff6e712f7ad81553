//! US social security numbers written `AAA-GG-SSSS`.
//!
//! Only the dashed form is recognised: nine bare digits are as likely to be any other
//! identifier. Numbers the SSA never issues are not taken for SSNs: area 000, 666 and
//! 900 to 999, group 00, serial 0000.

use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::boundary::stands_alone;
use super::{Finding, Glance};

static DASHED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([0-9]{3})-([0-9]{2})-([0-9]{4})").expect("the SSN pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&DASHED);
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if glance.digits < 9 || memchr::memchr(b'-', text.as_bytes()).is_none() {
        return;
    }
    for candidate in DASHED.find_iter(text) {
        if stands_alone(text, candidate.start(), candidate.end()) && is_issuable(candidate.as_str())
        {
            found.push(Finding {
                detector: Detector::UsSsn,
                range: candidate.range(),
            });
        }
    }
}

/// True for `AAA-GG-SSSS` with an area, group and serial the SSA issues.
pub fn is_issuable(candidate: &str) -> bool {
    let Some(parts) = DASHED.captures(candidate) else {
        return false;
    };
    let (area, group, serial) = (&parts[1], &parts[2], &parts[3]);
    parts[0].len() == candidate.len()
        && area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn ssns(text: &str) -> Vec<&str> {
        found(Detector::UsSsn, text)
    }

    #[test]
    fn finds_dashed_numbers() {
        assert_eq!(ssns("SSN 123-45-6789"), ["123-45-6789"]);
        assert_eq!(ssns("(078-05-1120)"), ["078-05-1120"]);
        assert_eq!(
            ssns("665-01-0001, 899-99-9999"),
            ["665-01-0001", "899-99-9999"]
        );
    }

    #[test]
    fn ignores_numbers_never_issued() {
        assert!(ssns("000-12-3456").is_empty());
        assert!(ssns("666-12-3456").is_empty());
        assert!(ssns("900-12-3456").is_empty());
        assert!(ssns("999-12-3456").is_empty());
        assert!(ssns("123-00-4567").is_empty());
        assert!(ssns("123-45-0000").is_empty());
    }

    #[test]
    fn ignores_other_shapes() {
        assert!(ssns("123456789").is_empty());
        assert!(ssns("123 45 6789").is_empty());
        assert!(ssns("1123-45-6789").is_empty());
        assert!(ssns("123-45-67890").is_empty());
        assert!(ssns("2024-123-45-6789").is_empty());
        assert!(ssns("2024-01-15").is_empty());
        assert!(ssns("550e8400-e29b-41d4-a716-446655440000").is_empty());
    }
}
