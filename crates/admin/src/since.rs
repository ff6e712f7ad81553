//! Times as `--since` and `?since=` take them: an RFC 3339 time (`2026-05-01T09:30:00Z`,
//! any offset) or a duration back from now (`24h`, `7d`, `90m`, parsed by `humantime` as
//! the config's durations are). Shared by the command line and the admin API, so both
//! read a time the same way.

use sluice_audit::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A `since` that names no time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadSince(String);

/// The instant `text` names, a duration being counted back from `now`.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<Timestamp, BadSince> {
    let text = text.trim();
    let not_a_time = || {
        BadSince(format!(
            "`{text}` is neither an RFC 3339 time (2026-05-01T09:30:00Z) nor a duration (24h, 7d)"
        ))
    };
    let at = match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => at,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| not_a_time())?;
            let ago = time::Duration::try_from(ago).map_err(|_| not_a_time())?;
            now.checked_sub(ago).ok_or_else(not_a_time)?
        }
    };
    Timestamp::try_from(at).map_err(|e| BadSince(format!("`{text}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-05-02T12:00:00Z", &Rfc3339).unwrap()
    }

    #[test]
    fn reads_rfc_3339_in_any_offset() {
        let at = parse_since("2026-05-01T11:30:00+02:00", now()).unwrap();
        assert_eq!(at.to_string(), "2026-05-01T09:30:00.000000Z");
        let at = parse_since("2026-05-01T09:30:00.25Z", now()).unwrap();
        assert_eq!(at.to_string(), "2026-05-01T09:30:00.250000Z");
    }

    #[test]
    fn counts_a_duration_back_from_now() {
        let at = parse_since("24h", now()).unwrap();
        assert_eq!(at.to_string(), "2026-05-01T12:00:00.000000Z");
        let at = parse_since("1h 30m", now()).unwrap();
        assert_eq!(at.to_string(), "2026-05-02T10:30:00.000000Z");
    }

    #[test]
    fn refuses_anything_else() {
        for text in ["yesterday", "2026-05-01", "", "-1h"] {
            let error = parse_since(text, now()).unwrap_err();
            assert!(error.to_string().contains("RFC 3339"), "{text}: {error}");
        }
    }
}
