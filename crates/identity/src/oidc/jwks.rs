//! A provider's signing keys (JWKS), parsed once per fetch into verifiers by `kid`, and the
//! signature check itself.
//!
//! Only keys that can verify an accepted algorithm are kept: RSA (RS256, PS256) of at least
//! 2048 bits, and EC P-256 (ES256). Symmetric (`oct`) keys in a JWKS are dropped on
//! purpose: a published HMAC key would let anyone sign. Keys marked for encryption
//! (`use: enc`) and keys without a `kid` are dropped too. A JWKS key that does not parse is
//! skipped with a warning rather than failing the whole set, because one odd key in a
//! provider's set must not lock out every token signed with the others.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::error::AuthError;
use crate::token::SigAlg;

/// The kind of a verification key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
        }
    }

    fn verifies(self, alg: SigAlg) -> bool {
        matches!(
            (self, alg),
            (KeyKind::Rsa, SigAlg::Rs256 | SigAlg::Ps256) | (KeyKind::EcP256, SigAlg::Es256)
        )
    }
}

/// One public key of a provider.
pub(crate) struct VerifyingKey {
    pub kid: String,
    pub kind: KeyKind,
    /// The JWK's own `alg`, when it names one: the key may then verify only that algorithm.
    pub alg: Option<String>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Checks that this key may verify `alg`, then verifies the signature.
    pub(crate) fn verify(
        &self,
        provider: &str,
        alg: SigAlg,
        signing_input: &str,
        signature: &str,
    ) -> Result<(), AuthError> {
        let alg_allowed =
            self.kind.verifies(alg) && self.alg.as_deref().is_none_or(|a| a == alg.as_str());
        if !alg_allowed {
            let key = match &self.alg {
                Some(a) => format!("{} ({a})", self.kind.name()),
                None => self.kind.name().to_string(),
            };
            return Err(AuthError::KeyAlgorithmMismatch {
                provider: provider.to_string(),
                kid: self.kid.clone(),
                key,
                alg: alg.as_str().to_string(),
            });
        }
        match jsonwebtoken::crypto::verify(
            signature,
            signing_input.as_bytes(),
            &self.key,
            alg.jsonwebtoken(),
        ) {
            Ok(true) => Ok(()),
            // Err covers a signature of the wrong length for the key, which is as forged
            // as a wrong signature of the right length.
            Ok(false) | Err(_) => Err(AuthError::BadSignature {
                provider: provider.to_string(),
                kid: self.kid.clone(),
            }),
        }
    }
}

/// All usable keys of one JWKS document, by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`). Fails only when the document itself is
    /// not a JWKS, or holds no usable key at all.
    pub(crate) fn from_jwks(provider: &str, doc: &Value) -> Result<KeySet, String> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| "the JWKS document has no `keys` array".to_string())?;
        let mut set = KeySet::default();
        for jwk in keys {
            match parse_jwk(jwk) {
                Ok(Some(key)) => {
                    if set.keys.contains_key(&key.kid) {
                        tracing::warn!(provider, kid = %key.kid, "JWKS lists the same kid twice; keeping the first");
                        continue;
                    }
                    set.keys.insert(key.kid.clone(), Arc::new(key));
                }
                Ok(None) => {}
                Err(reason) => {
                    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("?");
                    tracing::warn!(provider, kid, %reason, "skipping unusable JWKS key");
                }
            }
        }
        if set.keys.is_empty() {
            return Err(format!(
                "the JWKS document has no usable signing key (RSA of 2048 bits or more, or EC P-256, with a kid), out of {} keys",
                keys.len()
            ));
        }
        Ok(set)
    }

    pub(crate) fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.get(kid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// `Ok(None)`: a key we deliberately do not use (encryption key, symmetric key, other
/// curve). `Err`: a key that claims to be usable but is broken.
fn parse_jwk(jwk: &Value) -> Result<Option<VerifyingKey>, String> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    let Some(kid) = field("kid").filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    if field("use").is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if let Some(ops) = jwk.get("key_ops").and_then(Value::as_array) {
        if !ops.iter().any(|op| op == "verify") {
            return Ok(None);
        }
    }
    let alg = field("alg").map(str::to_string);
    let (kind, key) = match field("kty") {
        Some("RSA") => {
            let n = field("n").ok_or("RSA key without `n`")?;
            let e = field("e").ok_or("RSA key without `e`")?;
            let n_bytes = URL_SAFE_NO_PAD
                .decode(n)
                .map_err(|_| "RSA `n` is not base64url")?;
            let bits = significant_bits(&n_bytes);
            if bits < 2048 {
                return Err(format!(
                    "RSA key of {bits} bits; at least 2048 are required"
                ));
            }
            let key =
                DecodingKey::from_rsa_components(n, e).map_err(|e| format!("bad RSA key: {e}"))?;
            (KeyKind::Rsa, key)
        }
        Some("EC") => {
            if field("crv") != Some("P-256") {
                return Ok(None);
            }
            let x = field("x").ok_or("EC key without `x`")?;
            let y = field("y").ok_or("EC key without `y`")?;
            for (name, c) in [("x", x), ("y", y)] {
                let len = URL_SAFE_NO_PAD
                    .decode(c)
                    .map_err(|_| format!("EC `{name}` is not base64url"))?
                    .len();
                if len != 32 {
                    return Err(format!("EC `{name}` is {len} bytes, P-256 needs 32"));
                }
            }
            let key =
                DecodingKey::from_ec_components(x, y).map_err(|e| format!("bad EC key: {e}"))?;
            (KeyKind::EcP256, key)
        }
        _ => return Ok(None),
    };
    Ok(Some(VerifyingKey {
        kid: kid.to_string(),
        kind,
        alg,
        key,
    }))
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let mut bytes = big_endian.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * bytes.count(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn keeps_only_usable_signing_keys() {
        let mut n = vec![0xc5u8; 256];
        n[0] = 0xc5;
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": b64(&n), "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": b64(&[0xc5; 128]), "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&n), "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[1; 48])},
            {"kty": "RSA", "n": b64(&n), "e": "AQAB"},
        ]});
        let set = KeySet::from_jwks("p", &doc).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get("rsa").is_some());
        assert!(set.get("hmac").is_none());
    }

    #[test]
    fn an_empty_or_unusable_set_is_an_error() {
        assert!(KeySet::from_jwks("p", &json!({"keys": []})).is_err());
        assert!(KeySet::from_jwks("p", &json!({"nokeys": 1})).is_err());
        assert!(KeySet::from_jwks(
            "p",
            &json!({"keys": [{"kty": "oct", "kid": "h", "k": "AA"}]})
        )
        .is_err());
    }

    #[test]
    fn counts_bits() {
        assert_eq!(significant_bits(&[0, 0x01, 0]), 9);
        assert_eq!(significant_bits(&[0x80; 256]), 2048);
        assert_eq!(significant_bits(&[]), 0);
    }
}
