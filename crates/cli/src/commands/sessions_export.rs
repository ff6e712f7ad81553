//! `sluice sessions export --format jsonl [--since T]`: the recorded events for a SIEM.
//!
//! One JSON object per line, each event exactly as it is stored and hashed (so a receiver
//! can check the chains itself: `sluice-audit` documents what the hash covers), ordered by
//! time, then session and sequence. Works on the store directly, so it runs while the
//! gateway does.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::SessionsExport;
use crate::context::{load_config, open_store};
use sluice_admin::since::parse_since;

pub fn run(config_path: &Path, args: &SessionsExport) -> Result<u8> {
    let config = load_config(config_path)?;
    let since = args
        .since
        .as_deref()
        .map(|text| parse_since(text, time::OffsetDateTime::now_utc()))
        .transpose()?;
    let store = open_store(&config)?;
    let events = sluice_admin::sessions::events_since(&*store, since)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for event in &events {
        serde_json::to_writer(&mut out, event).context("writing an event")?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(0)
}
