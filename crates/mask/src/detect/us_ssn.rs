//! US social security numbers written `AAA-GG-SSSS`.
//!
//! Only the dashed form is recognised: nine bare digits are as likely to be any other
//! identifier. Numbers the SSA never issues are not taken for SSNs: area 000, 666 and
//! 900 to 999, group 00, serial 0000.
//!
//! The shape is fixed, so candidates are found from the dashes (`memchr`) and checked byte
//! by byte: faster than a regular expression, which would start at every digit.

use sluice_config::Detector;

use super::boundary::stands_alone;
use super::{Finding, Glance};

/// `AAA-GG-SSSS`: eleven bytes, the first dash at offset 3.
const LENGTH: usize = 11;
const FIRST_DASH: usize = 3;

/// Whether a value could hold an SSN: long enough, with nine digits.
pub(super) fn possible(bytes: &[u8], glance: &Glance) -> bool {
    bytes.len() >= LENGTH && glance.digits >= 9
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    let bytes = text.as_bytes();
    for dash in memchr::memchr_iter(b'-', bytes) {
        let Some(start) = dash.checked_sub(FIRST_DASH) else {
            continue;
        };
        let Some(candidate) = text.get(start..start + LENGTH) else {
            continue;
        };
        if is_issuable(candidate) && stands_alone(text, start, start + LENGTH) {
            found.push(Finding {
                detector: Detector::UsSsn,
                range: start..start + LENGTH,
            });
        }
    }
}

/// True for exactly `AAA-GG-SSSS` with an area, group and serial the SSA issues.
pub fn is_issuable(candidate: &str) -> bool {
    let bytes = candidate.as_bytes();
    let shaped = bytes.len() == LENGTH
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            3 | 6 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return false;
    }
    let (area, group, serial) = (&candidate[..3], &candidate[4..6], &candidate[7..]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
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
        assert_eq!(ssns("社会保障番号123-45-6789です"), ["123-45-6789"]);
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
        assert!(ssns("123-456-7890").is_empty());
        assert!(ssns("2024-123-45-6789").is_empty());
        assert!(ssns("2024-01-15").is_empty());
        assert!(ssns("550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(!is_issuable("123-45-6789 "));
        assert!(!is_issuable("12a-45-6789"));
    }
}
