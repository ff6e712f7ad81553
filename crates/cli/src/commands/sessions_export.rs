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

/// Sessions read from the store per page.
const PAGE: usize = 500;

pub fn run(config_path: &Path, args: &SessionsExport) -> Result<u8> {
    let config = load_config(config_path)?;
    let since = args
        .since
        .as_deref()
        .map(|text| parse_since(text, time::OffsetDateTime::now_utc()))
        .transpose()?;
    let store = open_store(&config)?;
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let ids = store.session_ids(after.as_deref(), PAGE)?;
        for id in &ids {
            events.extend(
                store
                    .session_events(id)?
                    .into_iter()
                    .filter(|e| since.is_none_or(|since| e.at >= since)),
            );
        }
        match ids.last() {
            Some(last) if ids.len() == PAGE => after = Some(last.clone()),
            _ => break,
        }
    }
    events.sort_by(|a, b| (a.at, &a.session_id, a.seq).cmp(&(b.at, &b.session_id, b.seq)));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for event in &events {
        serde_json::to_writer(&mut out, event).context("writing an event")?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(0)
}
