//! Protocol-neutral masking: finding sensitive values and concealing them (DESIGN.md §4).
//!
//! The protocol crates decide *which* values to mask (a column a rule names, every value
//! a detector rule scans, a JSON path) and call this crate once per value:
//!
//! - [`strategy`]: [`Masker`] applies a [`MaskStrategy`] (`redact`, `last4`, `email`,
//!   `hash`, `null`) to a whole value, as column and JSON-path rules do;
//! - [`detect`]: [`DetectorSet`] finds sensitive values inside a text ([`Finding`]s) with
//!   one detector per file (email, credit card, IBAN, US SSN, phone, JWT, private key,
//!   cloud access key), and masks just those parts, as detector rules do.
//!
//! Architecture invariants: no I/O, no async, no knowledge of any wire format; a value
//! that is left as it is costs no allocation (`Cow::Borrowed`), so the hot path of a
//! result set with nothing to hide stays a scan; formats with a checksum (Luhn, mod 97)
//! are only found when it holds.
//!
//! The strategy and detector names are `sluice_config`'s, re-exported here, so a policy's
//! rule carries straight through to this crate.

pub mod detect;
pub mod strategy;
mod swar;

pub use detect::{DetectorSet, Finding, ALL_DETECTORS};
pub use sluice_config::{Detector, MaskStrategy};
pub use strategy::Masker;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maskers_and_detector_sets_are_shared_across_tasks() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Masker>();
        shareable::<DetectorSet>();
    }
}
