//! Cloud and SaaS credentials with an unmistakable shape; only high-precision patterns:
//!
//! - AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary) and 16 upper-case
//!   letters or digits;
//! - AWS secret access keys, only where labelled (`aws_secret_access_key = …`,
//!   `AWS_SECRET_ACCESS_KEY=…`, `"SecretAccessKey": "…"`): 40 base64 characters are
//!   otherwise indistinguishable from any other base64;
//! - Google API keys: `AIza` and 35 URL-safe characters;
//! - Azure storage and Service Bus keys in connection strings: the value of
//!   `AccountKey=` or `SharedAccessKey=`;
//! - GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 or more letters or
//!   digits, and fine-grained `github_pat_…`;
//! - Slack tokens: `xoxb-`, `xoxp-`, `xoxa-`, `xoxe-`, `xoxr-`, `xoxs-`.
//!
//! Each pattern starts with a literal, so the regular expression engine scans for those
//! prefixes alone and texts without one cost a fast literal search. For labelled secrets
//! the finding is the value, not the label, so what is masked reads `AccountKey=****`.

use std::sync::LazyLock;

use regex::Regex;
use sluice_config::Detector;

use super::boundary::{clear_after, clear_before};
use super::{Finding, Glance};

/// Labels whose value is the secret: the finding starts after the label, `=` or `:`, and
/// any quote or space.
const LABELS: &[&str] = &[
    "AccountKey",
    "SharedAccessKey",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "SecretAccessKey",
    "secretAccessKey",
];

/// The shortest key any pattern finds (`xoxb-` and ten characters): shorter values are
/// skipped without running the expression.
const MIN_KEY_LENGTH: usize = 15;

static KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
          (?:AKIA|ASIA)[A-Z0-9]{16}
        | AIza[0-9A-Za-z_\-]{35}
        | gh[pousr]_[A-Za-z0-9]{36,251}
        | github_pat_[A-Za-z0-9_]{22,255}
        | xox[abeprs]-[A-Za-z0-9\-]{10,}
        | (?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{20,}={0,2}
        | (?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY|SecretAccessKey|secretAccessKey)
          ["']?[\ \t]*[:=][\ \t]*["']?[A-Za-z0-9/+]{40}
        "#,
    )
    .expect("the cloud key pattern compiles")
});

pub(super) fn prepare() {
    LazyLock::force(&KEY);
}

/// Whether a value could hold a key: long enough (the expression is the only finer test).
pub(super) fn possible(bytes: &[u8], _glance: &Glance) -> bool {
    bytes.len() >= MIN_KEY_LENGTH
}

pub(super) fn scan(text: &str, glance: &Glance, found: &mut Vec<Finding>) {
    if !possible(text.as_bytes(), glance) {
        return;
    }
    for candidate in KEY.find_iter(text) {
        let matched = candidate.as_str();
        let range = match LABELS.iter().find(|label| matched.starts_with(*label)) {
            // The label says what follows is a secret, whatever comes before it.
            Some(_) => candidate.start() + value_offset(matched)..candidate.end(),
            // A bare token must not be the middle of a longer word.
            None if clear_before(text, candidate.start()) => candidate.range(),
            None => continue,
        };
        if is_base64ish_end(text, range.end) {
            found.push(Finding {
                detector: Detector::CloudAccessKey,
                range,
            });
        }
    }
}

/// Where a labelled secret's value starts within `matched` (label, separator, quotes).
fn value_offset(matched: &str) -> usize {
    let separator = matched
        .find(['=', ':'])
        .expect("labelled patterns contain = or :");
    let after = &matched[separator + 1..];
    separator + 1 + (after.len() - after.trim_start_matches(['"', '\'', ' ', '\t']).len())
}

/// True when the key at `..end` is not continued by more key characters: a key of fixed
/// length inside a longer string is something else.
fn is_base64ish_end(text: &str, end: usize) -> bool {
    clear_after(text, end) && !matches!(text.as_bytes().get(end), Some(b'+' | b'/' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::found;

    fn keys(text: &str) -> Vec<&str> {
        found(Detector::CloudAccessKey, text)
    }

    #[test]
    fn finds_aws_access_key_ids() {
        assert_eq!(keys("AKIAIOSFODNN7EXAMPLE"), ["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(keys("id=ASIAY34FZKBOKMUTVV7A;"), ["ASIAY34FZKBOKMUTVV7A"]);
    }

    #[test]
    fn finds_labelled_aws_secret_keys() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for text in [
            format!("aws_secret_access_key = {secret}"),
            format!("export AWS_SECRET_ACCESS_KEY={secret}"),
            format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
        ] {
            assert_eq!(keys(&text), [secret], "{text}");
        }
        // The same 40 characters unlabelled are not taken for a key.
        assert!(keys(&format!("value {secret}")).is_empty());
    }

    #[test]
    fn finds_google_api_keys() {
        let key = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
        assert_eq!(keys(&format!("?key={key}&q=1")), [key]);
    }

    #[test]
    fn finds_the_value_of_azure_connection_string_keys() {
        let key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let connection = format!("DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey={key};EndpointSuffix=core.windows.net");
        assert_eq!(keys(&connection), [key]);
        let bus = "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=";
        assert_eq!(keys(bus), ["abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG="]);
    }

    #[test]
    fn finds_github_and_slack_tokens() {
        let classic = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
        let fine_grained = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abc";
        let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
        assert_eq!(keys(&format!("token {classic}")), [classic]);
        assert_eq!(
            keys(&format!("GITHUB_TOKEN={fine_grained}")),
            [fine_grained]
        );
        assert_eq!(keys(&format!("slack: {slack}")), [slack]);
    }

    #[test]
    fn ignores_lookalikes() {
        assert!(keys("AKIAIOSFODNN7EXAMPL").is_empty()); // 15 after the prefix
        assert!(keys("AKIAIOSFODNN7EXAMPLE1").is_empty()); // 17 after the prefix
        assert!(keys("XAKIAIOSFODNN7EXAMPLE").is_empty());
        assert!(keys("akiaiosfodnn7example").is_empty());
        assert!(keys("ghp_short").is_empty());
        assert!(keys("AccountKey=").is_empty());
        assert!(keys("xoxb-").is_empty());
    }
}
