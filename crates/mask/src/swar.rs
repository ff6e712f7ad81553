//! Eight bytes at a time in a `u64` ("SIMD within a register"): the word loop that the
//! detectors' digit count and the `email` strategy's byte check share. Both run on every
//! value they see, most values are short, and the baseline x86-64 target has no bit
//! count instruction for a vector compare's mask, so plain word arithmetic wins.

/// `0x01` in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte.
pub(crate) const HIGH: u64 = 0x8080_8080_8080_8080;

/// `bytes` as little-endian words, each byte once. The last, partial word is completed
/// with `filler` bytes, which the caller's per-word test must treat as neutral (no digit,
/// a printable character). It is built in a register: copying the tail into a zeroed
/// array and loading that back stalls on the store.
pub(crate) fn words(bytes: &[u8], filler: u8) -> impl Iterator<Item = u64> + '_ {
    let mut whole = bytes.chunks_exact(8);
    let rest = whole.remainder().len();
    let tail = (rest > 0).then(|| {
        let fill = |word: u64| word | ((u64::from(filler) * ONES) << (8 * rest));
        if bytes.len() >= 8 {
            // The last eight bytes, less the ones a whole word already had: shifted out.
            let last = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8 bytes"));
            fill(last >> (8 * (8 - rest)))
        } else {
            fill(
                bytes
                    .iter()
                    .rev()
                    .fold(0, |word, &byte| (word << 8) | u64::from(byte)),
            )
        }
    });
    std::iter::from_fn(move || {
        whole
            .next()
            .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")))
    })
    .chain(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_once_then_the_filler() {
        for len in 0..=24usize {
            let bytes: Vec<u8> = (1..=len as u8).collect();
            let words: Vec<u64> = words(&bytes, 0xee).collect();
            assert_eq!(words.len(), len.div_ceil(8), "{len}");
            let seen: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mut expected = bytes.clone();
            expected.resize(words.len() * 8, 0xee);
            assert_eq!(seen, expected, "{len}");
        }
    }
}
