//! Email addresses: a local part, `@`, and a domain of dot-separated labels ending in an
//! alphabetic top-level domain (or a punycode one, `xn--…`).
//!
//! Letters of any script are accepted on both sides, so internationalised addresses are
//! found too. `user@host` without a dot is not taken for an address: in free text it is
//! more often a handle or an SSH target than a mailbox.
//!
//! The search starts from each `@` (`memchr`), reads the local part backwards character by
//! character and the domain forwards with an anchored regular expression. An unanchored
//! expression starting with the local part's class would be tried at every word of the
//! text; in texts with several addresses that ran at a few MB/s.

use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::{Finding, Glance};

/// The shortest address found: `a@b.co`.
const MIN_ADDRESS_LENGTH: usize = 6;

/// Characters of a local part besides letters and digits (RFC 5322 `atext` and `.`).
const LOCAL_PUNCTUATION: &str = ".!#$%&'*+/=?^_`{|}~-";

/// The domain right after an `@`: dot-separated labels, then the top-level domain.
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        ^
        (?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?\.)+  # labels
        (?:xn--[a-zA-Z0-9\-]+|\p{L}{2,})                     # top-level domain
        ",
    )
    .expect("the email domain pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&DOMAIN);
}

/// Whether a value could hold an address: long enough, with an `@`.
pub(super) fn possible(bytes: &[u8], _glance: &Glance) -> bool {
    bytes.len() >= MIN_ADDRESS_LENGTH && memchr::memchr(b'@', bytes).is_some()
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    // Where the previous address ended: a local part never reaches back into it.
    let mut free_from = 0;
    for at in memchr::memchr_iter(b'@', text.as_bytes()) {
        if at < free_from {
            continue;
        }
        let local_start = local_part_start(text, free_from, at);
        if local_start == at {
            continue;
        }
        let Some(domain) = DOMAIN.find(&text[at + 1..]) else {
            continue;
        };
        let end = at + 1 + domain.end();
        found.push(Finding {
            detector: Detector::Email,
            range: local_start..end,
        });
        free_from = end;
    }
}

/// Where the local part ending at the `@` at `at` starts, not before `from`; `at` itself
/// when there is none.
fn local_part_start(text: &str, from: usize, at: usize) -> usize {
    text[from..at]
        .char_indices()
        .rev()
        .take_while(|&(_, character)| {
            character.is_alphanumeric() || LOCAL_PUNCTUATION.contains(character)
        })
        .last()
        .map_or(at, |(offset, _)| from + offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn emails(text: &str) -> Vec<&str> {
        found(Detector::Email, text)
    }

    #[test]
    fn finds_addresses_in_text() {
        assert_eq!(emails("jane.doe@example.com"), ["jane.doe@example.com"]);
        assert_eq!(
            emails("write to <jane+orders@mail.example.co.uk>, or bob_1@example.org."),
            ["jane+orders@mail.example.co.uk", "bob_1@example.org"]
        );
        assert_eq!(emails("mailto:ops@example.io"), ["ops@example.io"]);
        assert_eq!(
            emails("a@example.com@b.example.org"),
            ["a@example.com"],
            "a local part never reaches back into the previous address"
        );
    }

    #[test]
    fn finds_internationalised_addresses() {
        assert_eq!(emails("contact: émile@exemple.fr"), ["émile@exemple.fr"]);
        assert_eq!(emails("用户@例子.广告"), ["用户@例子.广告"]);
        assert_eq!(
            emails("a@xn--80ak6aa92e.xn--p1ai"),
            ["a@xn--80ak6aa92e.xn--p1ai"]
        );
    }

    #[test]
    fn ignores_what_is_not_an_address() {
        assert!(emails("no at sign here").is_empty());
        assert!(emails("root@localhost").is_empty());
        assert!(emails("@example.com").is_empty());
        assert!(emails("jane@").is_empty());
        assert!(emails("price @ 5.00").is_empty());
        assert!(emails("jane@example.123").is_empty());
        assert!(emails("jane@-example.com").is_empty());
    }
}
