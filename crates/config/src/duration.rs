//! Durations as people write them in the config: `500ms`, `30s`, `10m`, `1h`, `90d`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration parsed with `humantime` (`30s`, `10m`, `1h 30m`, `90d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(ConfigDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{text}`: {e} (expected e.g. 30s, 10m, 1h)"
                ))
            })
    }
}
