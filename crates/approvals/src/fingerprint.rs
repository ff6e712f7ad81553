//! What a ticket is redeemed against.
//!
//! A ticket lets its principal run "exactly that statement" once. Exactly means the same
//! statement with the same values: the protocol crate passes the statement's normalized
//! text (for SQL, the parse tree printed back, so spacing, keyword case and comments do
//! not matter, while every constant does) and the values bound to its parameters, and
//! the fingerprint is SHA-256 over both. Normalizing that dropped constants (as
//! PostgreSQL's own query fingerprints do) would let one approved `DELETE ... WHERE id =
//! 1` run as `... WHERE id = 2`; this one never does.

use sha2::{Digest, Sha256};

/// `sha256:` and 64 hex digits over the normalized text and each parameter (length-prefixed,
/// NULL told apart from the empty string).
pub fn fingerprint(normalized: &str, parameters: &[Option<String>]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"sluice-statement-v1\0");
    hash.update((normalized.len() as u64).to_be_bytes());
    hash.update(normalized.as_bytes());
    hash.update((parameters.len() as u64).to_be_bytes());
    for parameter in parameters {
        match parameter {
            None => hash.update([0u8]),
            Some(value) => {
                hash.update([1u8]);
                hash.update((value.len() as u64).to_be_bytes());
                hash.update(value.as_bytes());
            }
        }
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn every_part_counts() {
        let base = fingerprint("DELETE FROM t WHERE id = $1", &[Some("1".into())]);
        assert_eq!(
            base,
            fingerprint("DELETE FROM t WHERE id = $1", &[Some("1".into())])
        );
        assert_ne!(
            base,
            fingerprint("DELETE FROM t WHERE id = $1", &[Some("2".into())])
        );
        assert_ne!(base, fingerprint("DELETE FROM t WHERE id = $1", &[None]));
        assert_ne!(
            fingerprint("x", &[Some(String::new())]),
            fingerprint("x", &[None])
        );
        assert_ne!(base, fingerprint("DELETE FROM t WHERE id = $1", &[]));
        // No ambiguity between where the text ends and a parameter begins.
        assert_ne!(
            fingerprint("ab", &[Some("c".into())]),
            fingerprint("a", &[Some("bc".into())])
        );
        assert!(base.starts_with("sha256:") && base.len() == 7 + 64);
    }
}
