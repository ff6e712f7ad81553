//! Email addresses: a local part, `@`, and a domain of dot-separated labels ending in an
//! alphabetic top-level domain (or a punycode one, `xn--…`).
//!
//! Letters of any script are accepted on both sides, so internationalised addresses are
//! found too. `user@host` without a dot is not taken for an address: in free text it is
//! more often a handle or an SSH target than a mailbox. Texts without an `@` are skipped
//! with one `memchr`.

use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::{Finding, Glance};

static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        [\w.!\#$%&'*+/=?^`{|}~\-]+          # local part
        @
        (?:\w(?:[\w\-]*\w)?\.)+             # domain labels
        (?:xn--[a-zA-Z0-9\-]+|\p{L}{2,63})  # top-level domain
        ",
    )
    .expect("the email pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&ADDRESS);
}

pub(super) fn scan(text: &str, _glance: &Glance, found: &mut Vec<Finding>) {
    if memchr::memchr(b'@', text.as_bytes()).is_none() {
        return;
    }
    for address in ADDRESS.find_iter(text) {
        found.push(Finding {
            detector: Detector::Email,
            range: address.range(),
        });
    }
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
    }
}
