//! The one way the audit trail writes a time: RFC 3339 in UTC with exactly six fraction
//! digits (`2026-05-01T09:30:00.123456Z`).
//!
//! Times are hashed as text (see [`crate::chain`]), so one instant must have exactly one
//! spelling: `+00:00` and `Z`, or `.5` and `.500000`, would otherwise hash differently and
//! a harmless re-encoding by a store would look like tampering. [`Timestamp`] therefore
//! keeps microseconds in UTC only, and parsing accepts nothing but the canonical spelling.
//! Microseconds are what both SQLite (as text) and PostgreSQL (`timestamptz`) keep, so a
//! store can hold the value in a native column and give it back unchanged.
//!
//! The crate reads no clock: the caller stamps events with the time it observed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// An instant in UTC, to the microsecond, written canonically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// A time the audit trail cannot write, or a text that is not a canonical timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// RFC 3339 has four year digits; a clock this far off is a fault, not a time.
    #[error("{0} is outside the years 0000 to 9999")]
    OutOfRange(String),
    #[error("`{0}` is not a timestamp of the form 2026-05-01T09:30:00.123456Z")]
    NotCanonical(String),
}

impl Timestamp {
    /// The instant at `unix_micros` microseconds after 1970-01-01T00:00:00Z; what a store
    /// keeps in an integer column for range queries.
    pub fn from_unix_micros(unix_micros: i64) -> Result<Self, TimestampError> {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_micros) * 1_000)
            .map_err(|_| TimestampError::OutOfRange(format!("{unix_micros} µs after 1970")))?;
        Self::try_from(at)
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub fn unix_micros(&self) -> i64 {
        // Years 0000..=9999 are about ±2.5e17 µs from the epoch: well inside i64.
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }
}

impl TryFrom<OffsetDateTime> for Timestamp {
    type Error = TimestampError;

    /// Converts to UTC and drops anything finer than a microsecond.
    fn try_from(at: OffsetDateTime) -> Result<Self, Self::Error> {
        let utc = at.to_offset(UtcOffset::UTC);
        if !(0..=9999).contains(&utc.year()) {
            return Err(TimestampError::OutOfRange(at.to_string()));
        }
        let micros = utc.nanosecond() / 1_000;
        let truncated = utc
            .replace_nanosecond(micros * 1_000)
            .map_err(|_| TimestampError::OutOfRange(at.to_string()))?;
        Ok(Self(truncated))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.microsecond()
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Accepts only the spelling [`Display`](fmt::Display) writes, so that parsing and
    /// writing again gives back the same bytes the hash was computed over.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_canonical = || TimestampError::NotCanonical(text.to_owned());
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| not_canonical())?;
        let at = Self::try_from(parsed).map_err(|_| not_canonical())?;
        if at.to_string() != text {
            return Err(not_canonical());
        }
        Ok(at)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_utc_with_six_fraction_digits() {
        let at = OffsetDateTime::parse("2026-05-01T11:30:00.5+02:00", &Rfc3339).unwrap();
        let at = Timestamp::try_from(at).unwrap();
        assert_eq!(at.to_string(), "2026-05-01T09:30:00.500000Z");
    }

    #[test]
    fn drops_nanoseconds() {
        let at = OffsetDateTime::parse("2026-05-01T09:30:00.123456789Z", &Rfc3339).unwrap();
        let at = Timestamp::try_from(at).unwrap();
        assert_eq!(at.to_string(), "2026-05-01T09:30:00.123456Z");
    }

    #[test]
    fn parses_only_the_canonical_spelling() {
        let canonical = "2026-05-01T09:30:00.123456Z";
        assert_eq!(
            canonical.parse::<Timestamp>().unwrap().to_string(),
            canonical
        );
        for other in [
            "2026-05-01T09:30:00.123456+00:00",
            "2026-05-01T09:30:00.123456z",
            "2026-05-01T09:30:00.1234560Z",
            "2026-05-01T09:30:00Z",
            "2026-05-01 09:30:00.123456Z",
            "yesterday",
        ] {
            assert!(other.parse::<Timestamp>().is_err(), "{other} was accepted");
        }
    }

    #[test]
    fn unix_micros_round_trip() {
        let at: Timestamp = "2026-05-01T09:30:00.123456Z".parse().unwrap();
        let micros = at.unix_micros();
        assert_eq!(micros % 1_000_000, 123_456);
        assert_eq!(Timestamp::from_unix_micros(micros).unwrap(), at);
    }

    #[test]
    fn refuses_years_rfc_3339_cannot_write() {
        let far = OffsetDateTime::UNIX_EPOCH.replace_year(-1).unwrap();
        assert!(matches!(
            Timestamp::try_from(far),
            Err(TimestampError::OutOfRange(_))
        ));
        assert!(Timestamp::from_unix_micros(i64::MAX).is_err());
    }

    #[test]
    fn serializes_as_a_json_string() {
        let at: Timestamp = "2026-05-01T09:30:00.000001Z".parse().unwrap();
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2026-05-01T09:30:00.000001Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
        assert!(serde_json::from_str::<Timestamp>("\"2026-05-01T09:30:00Z\"").is_err());
    }
}
