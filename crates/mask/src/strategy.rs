//! Masking strategies: what a sensitive value becomes (DESIGN.md §4).
//!
//! [`Masker`] applies a [`MaskStrategy`] to one value. It holds the key of the `hash`
//! strategy, so it is built once (per gateway, or per connection if keys differ) and
//! shared; applying a strategy needs nothing else and touches no shared state.
//!
//! Every strategy counts characters, not bytes, so a multi-byte value is never cut inside
//! a character. A value is only ever replaced, never partly kept in the clear beyond what
//! the strategy promises: `last4` shows at most four characters, `email` at most the first
//! character of the local part and the domain.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_config::MaskStrategy;

/// What `redact` writes, and what other strategies fall back to when they cannot keep
/// anything safely (a short `last4` value, an `email` value that is not an address).
pub const REDACTED: &str = "****";

/// The prefix of a `hash` token, so a reader can tell a token from a value.
pub const HASH_TOKEN_PREFIX: &str = "h:";

/// Hex digits of the HMAC kept in a `hash` token: 64 bits. Two distinct values share a
/// token with probability about n²/2⁶⁵ among n distinct values (under 10⁻⁷ for a million),
/// which keeps joins on tokens faithful while the token stays short enough to read.
pub const HASH_TOKEN_HEX_DIGITS: usize = 16;

/// How many trailing characters `last4` keeps.
const LAST4_KEPT: usize = 4;

type HmacSha256 = Hmac<Sha256>;

/// Applies masking strategies; holds the secret key of the `hash` strategy.
#[derive(Clone)]
pub struct Masker {
    /// HMAC-SHA256 already keyed: cloning this state per value skips re-hashing the key.
    keyed_hmac: HmacSha256,
}

impl Masker {
    /// A masker whose `hash` tokens are keyed with `hash_key`. Tokens are stable for one
    /// key and unrelated across keys, so the key decides which tokens can be joined.
    pub fn new(hash_key: &[u8]) -> Self {
        Masker {
            // HMAC accepts keys of any length (long ones are hashed first), so this
            // constructor cannot fail.
            keyed_hmac: HmacSha256::new_from_slice(hash_key)
                .expect("HMAC accepts a key of any length"),
        }
    }

    /// `value` masked with `strategy`; `None` stands for SQL NULL / JSON null (the `null`
    /// strategy). Always allocates: callers that mask only some values decide first
    /// whether a value is to be masked at all.
    pub fn mask_value(&self, strategy: MaskStrategy, value: &str) -> Option<String> {
        if strategy == MaskStrategy::Null {
            return None;
        }
        let mut masked = String::with_capacity(masked_len_hint(strategy, value));
        self.write_masked(strategy, value, &mut masked);
        Some(masked)
    }

    /// Appends `value` masked with `strategy` to `out`, and returns false (appending
    /// nothing) for `null`, which has no text form. Lets text masking write every
    /// replacement straight into one output buffer.
    pub fn write_masked(&self, strategy: MaskStrategy, value: &str, out: &mut String) -> bool {
        match strategy {
            MaskStrategy::Null => return false,
            MaskStrategy::Redact => out.push_str(REDACTED),
            MaskStrategy::Last4 => write_last4(value, out),
            MaskStrategy::Email => write_email(value, out),
            MaskStrategy::Hash => self.write_hash_token(value, out),
        }
        true
    }

    /// `h:` and the first [`HASH_TOKEN_HEX_DIGITS`] lowercase hex digits of
    /// HMAC-SHA256(key, UTF-8 bytes of `value`).
    fn write_hash_token(&self, value: &str, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.keyed_hmac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        out.push_str(HASH_TOKEN_PREFIX);
        for byte in &digest[..HASH_TOKEN_HEX_DIGITS / 2] {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// The key is secret: a `Debug` of a masker (inside some config or session struct) must not
/// print it, nor the keyed HMAC state derived from it.
impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker").finish_non_exhaustive()
    }
}

/// Every character but the last four becomes `*`; a value of four characters or fewer is
/// redacted whole, since keeping "the last four" would keep all of it.
fn write_last4(value: &str, out: &mut String) {
    if value.is_ascii() {
        // One byte per character: no counting, and the stars are pushed as one slice.
        if value.len() <= LAST4_KEPT {
            out.push_str(REDACTED);
            return;
        }
        let hidden = value.len() - LAST4_KEPT;
        const STARS: &str = "********************************";
        let mut left = hidden;
        while left > 0 {
            let n = left.min(STARS.len());
            out.push_str(&STARS[..n]);
            left -= n;
        }
        out.push_str(&value[hidden..]);
        return;
    }
    let chars = value.chars().count();
    if chars <= LAST4_KEPT {
        out.push_str(REDACTED);
        return;
    }
    let hidden = chars - LAST4_KEPT;
    let kept_from = value
        .char_indices()
        .nth(hidden)
        .map_or(value.len(), |(index, _)| index);
    out.extend(std::iter::repeat_n('*', hidden));
    out.push_str(&value[kept_from..]);
}

/// `j***@example.com`: the first character of the local part, `***` whatever its length,
/// then the domain. Anything that is not plainly one address (no `@`, several, an empty
/// side, whitespace) is redacted whole rather than guessed at.
fn write_email(value: &str, out: &mut String) {
    match split_email(value) {
        Some((local, domain)) => {
            let first = local
                .chars()
                .next()
                .expect("split_email keeps a non-empty local part");
            out.push(first);
            out.push_str("***@");
            out.push_str(domain);
        }
        None => out.push_str(REDACTED),
    }
}

/// The local part and domain of a value that is exactly one address.
fn split_email(value: &str) -> Option<(&str, &str)> {
    let bytes = value.as_bytes();
    if printable_ascii(bytes) {
        // The common case, and this runs on every value of a masked column: exactly one
        // `@`, with something on both sides.
        let at = memchr::memchr(b'@', bytes)?;
        if memchr::memrchr(b'@', bytes) != Some(at) {
            return None;
        }
        return (at > 0 && at + 1 < value.len()).then(|| (&value[..at], &value[at + 1..]));
    }
    let (local, domain) = value.split_once('@')?;
    let plain = |part: &str| {
        !part.is_empty()
            && !part.contains('@')
            && !part.chars().any(|c| c.is_whitespace() || c.is_control())
    };
    (plain(local) && plain(domain)).then_some((local, domain))
}

/// Whether every byte is printable ASCII other than space (`!` to `~`), a word at a time
/// ([`crate::swar`]): a byte below `!` borrows into its high bit when `!` is subtracted,
/// DEL becomes zero when XORed with itself, which borrows the same way, and a byte past
/// ASCII has its high bit set already. (Borrows can also mark a byte after a bad one,
/// which does not change the answer.)
fn printable_ascii(bytes: &[u8]) -> bool {
    use crate::swar::{HIGH, ONES};
    let bad = |word: u64| {
        let below_bang = word.wrapping_sub(u64::from(b'!') * ONES) & !word;
        let del = word ^ (0x7f * ONES);
        let is_del = del.wrapping_sub(ONES) & !del;
        (below_bang | is_del | word) & HIGH != 0
    };
    // `a` is printable.
    !crate::swar::words(bytes, b'a').any(bad)
}

/// Capacity for a masked value, so the common strategies fill their buffer in one go.
fn masked_len_hint(strategy: MaskStrategy, value: &str) -> usize {
    match strategy {
        MaskStrategy::Redact | MaskStrategy::Null => REDACTED.len(),
        MaskStrategy::Hash => HASH_TOKEN_PREFIX.len() + HASH_TOKEN_HEX_DIGITS,
        MaskStrategy::Last4 | MaskStrategy::Email => value.len().max(REDACTED.len()) + 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_agrees_with_each_byte_in_every_position() {
        let naive = |bytes: &[u8]| bytes.iter().all(|&b| (b'!'..=b'~').contains(&b));
        for byte in 0..=255u8 {
            for len in 1..=17 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = byte;
                    assert_eq!(printable_ascii(&bytes), naive(&bytes), "{bytes:?}");
                    // A bad byte before a good one, for borrows running on.
                    if at + 1 < len {
                        bytes[at + 1] = b'!';
                        assert_eq!(printable_ascii(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
        assert!(printable_ascii(b""));
    }

    fn masker() -> Masker {
        Masker::new(b"test key")
    }

    fn mask(strategy: MaskStrategy, value: &str) -> Option<String> {
        masker().mask_value(strategy, value)
    }

    #[test]
    fn redact_hides_everything() {
        assert_eq!(
            mask(MaskStrategy::Redact, "secret").as_deref(),
            Some("****")
        );
        assert_eq!(mask(MaskStrategy::Redact, "").as_deref(), Some("****"));
    }

    #[test]
    fn last4_keeps_the_last_four_characters() {
        assert_eq!(
            mask(MaskStrategy::Last4, "4111111111111111").as_deref(),
            Some("************1111")
        );
        assert_eq!(mask(MaskStrategy::Last4, "12345").as_deref(), Some("*2345"));
    }

    #[test]
    fn last4_redacts_short_values_whole() {
        for short in ["", "1", "12", "123", "1234", "äöüß"] {
            assert_eq!(
                mask(MaskStrategy::Last4, short).as_deref(),
                Some("****"),
                "{short:?}"
            );
        }
    }

    #[test]
    fn last4_counts_characters_not_bytes() {
        assert_eq!(
            mask(MaskStrategy::Last4, "日本語のテキスト").as_deref(),
            Some("****テキスト")
        );
        assert_eq!(mask(MaskStrategy::Last4, "€€€€€").as_deref(), Some("*€€€€"));
    }

    #[test]
    fn email_keeps_first_character_and_domain() {
        assert_eq!(
            mask(MaskStrategy::Email, "jane.doe@example.com").as_deref(),
            Some("j***@example.com")
        );
        assert_eq!(
            mask(MaskStrategy::Email, "émile@exemple.fr").as_deref(),
            Some("é***@exemple.fr")
        );
    }

    #[test]
    fn email_redacts_what_is_not_one_address() {
        for value in [
            "",
            "jane",
            "@example.com",
            "jane@",
            "a@b@c",
            "Jane <jane@example.com>",
            "jane doe@example.com",
            "jane@exam\tple.com",
            "jane@example.com\u{7f}",
            "jane\u{1}@example.com",
            "émile@exa mple.fr",
            "émile@@exemple.fr",
            "émile\u{2003}@exemple.fr",
        ] {
            assert_eq!(
                mask(MaskStrategy::Email, value).as_deref(),
                Some("****"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn hash_is_a_prefixed_stable_token() {
        let token = mask(MaskStrategy::Hash, "jane@example.com").expect("hash has a text form");
        assert!(token.starts_with("h:"));
        assert_eq!(token.len(), 2 + HASH_TOKEN_HEX_DIGITS);
        assert!(token[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            mask(MaskStrategy::Hash, "jane@example.com"),
            Some(token.clone())
        );
        assert_ne!(mask(MaskStrategy::Hash, "jane@example.org"), Some(token));
    }

    #[test]
    fn hash_is_hmac_sha256_truncated() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let token =
            Masker::new(b"Jefe").mask_value(MaskStrategy::Hash, "what do ya want for nothing?");
        assert_eq!(token.as_deref(), Some("h:5bdcc146bf60754e"));
    }

    #[test]
    fn hash_depends_on_the_key() {
        let one = Masker::new(b"one").mask_value(MaskStrategy::Hash, "value");
        let other = Masker::new(b"other").mask_value(MaskStrategy::Hash, "value");
        assert_ne!(one, other);
    }

    #[test]
    fn null_has_no_text_form() {
        assert_eq!(mask(MaskStrategy::Null, "anything"), None);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", Masker::new(b"very secret key"));
        assert_eq!(shown, "Masker { .. }");
    }
}
