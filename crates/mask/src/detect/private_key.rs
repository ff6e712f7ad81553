//! PEM private keys: from a `-----BEGIN … PRIVATE KEY-----` line through the matching
//! `-----END … PRIVATE KEY-----` line, the whole block.
//!
//! Every label ending in `PRIVATE KEY` counts (PKCS#8 plain and encrypted, `RSA`, `EC`,
//! `DSA`, `OPENSSH`), and PGP's `PRIVATE KEY BLOCK`. A block whose END line is missing (a
//! value cut short, a key pasted halfway) is taken to run to the end of the text: what
//! follows a BEGIN line is key material until shown otherwise. The block between is not
//! parsed, so a key with its line breaks escaped (`\n` inside JSON) is found too.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use regex::Regex;
use sluice_config::Detector;

use super::{Finding, Glance};

/// The shortest block worth looking at: a bare BEGIN line.
const MIN_BLOCK_LENGTH: usize = "-----BEGIN PRIVATE KEY-----".len();

/// Every label ends in this; searched for before anything else.
static PRIVATE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("PRIVATE KEY"));

static BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----")
        .expect("the PEM BEGIN pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&BEGIN);
    LazyLock::force(&PRIVATE_KEY);
}

/// Whether a value could hold a key block: long enough, with `PRIVATE KEY` in it.
pub(super) fn possible(bytes: &[u8], _glance: &Glance) -> bool {
    bytes.len() >= MIN_BLOCK_LENGTH && PRIVATE_KEY.find(bytes).is_some()
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    let mut from = 0;
    while let Some(begin) = BEGIN.captures_at(text, from) {
        let whole = begin.get(0).expect("group 0 is the whole match");
        let label = &begin[1];
        let end = end_of_block(text, whole.end(), label);
        found.push(Finding {
            detector: Detector::PrivateKey,
            range: whole.start()..end,
        });
        from = end;
    }
}

/// Where the block whose body starts at `body` ends: after its END line, or at the end
/// of the text when there is none.
fn end_of_block(text: &str, body: usize, label: &str) -> usize {
    let end_line = format!("-----END {label}-----");
    text[body..]
        .find(&end_line)
        .map_or(text.len(), |offset| body + offset + end_line.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----";

    fn keys(text: &str) -> Vec<&str> {
        found(Detector::PrivateKey, text)
    }

    #[test]
    fn finds_the_whole_block() {
        assert_eq!(keys(&format!("key:\n{PKCS8}\nthanks")), [PKCS8]);
    }

    #[test]
    fn finds_every_private_key_label() {
        for label in [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PGP PRIVATE KEY BLOCK",
        ] {
            let block = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----");
            assert_eq!(keys(&format!("{block}\n")), [block.as_str()], "{label}");
        }
    }

    #[test]
    fn finds_keys_with_escaped_line_breaks() {
        let escaped = PKCS8.replace('\n', "\\n");
        let json = format!("{{\"private_key\":\"{escaped}\\n\"}}");
        assert_eq!(keys(&json), [escaped.as_str()]);
    }

    #[test]
    fn a_block_without_end_runs_to_the_end_of_the_text() {
        let cut = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow";
        assert_eq!(keys(&format!("x {cut}")), [cut]);
    }

    #[test]
    fn finds_consecutive_blocks_separately() {
        let text = format!("{PKCS8}\n{PKCS8}");
        assert_eq!(keys(&text), [PKCS8, PKCS8]);
    }

    #[test]
    fn ignores_public_keys_and_certificates() {
        assert!(keys("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----").is_empty());
        assert!(keys("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").is_empty());
        assert!(keys("a PRIVATE KEY is mentioned").is_empty());
    }
}
