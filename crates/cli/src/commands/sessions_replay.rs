//! `sluice sessions replay ID [--speed N]`: a recorded session played back as a terminal
//! transcript, with the pauses between events as they happened (divided by `--speed`;
//! `--speed 0` prints at once). Each event is printed as `sessions show` prints it: the
//! request and its decision, then the result as the agent saw it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::SessionsReplay;
use crate::commands::sessions_show::print_event;
use crate::context::{load_config, open_store};

/// No single pause is longer than this, however long the agent was idle.
const LONGEST_PAUSE: Duration = Duration::from_secs(10);

pub fn run(config_path: &Path, args: &SessionsReplay) -> Result<u8> {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a number of at least 0 (0 prints everything at once)");
    }
    let config = load_config(config_path)?;
    let events = open_store(&config)?.session_events(&args.session)?;
    if events.is_empty() {
        bail!("no recorded session {}", args.session);
    }
    println!("session {} (replay at {}x)", args.session, args.speed);
    let mut previous: Option<i64> = None;
    for event in &events {
        if let Some(previous) = previous {
            if args.speed > 0.0 {
                let gap_us = (event.at.unix_micros() - previous).max(0) as f64;
                let pause = Duration::from_secs_f64(gap_us / 1e6 / args.speed);
                std::io::stdout().flush()?;
                std::thread::sleep(pause.min(LONGEST_PAUSE));
            }
        }
        print_event(event);
        previous = Some(event.at.unix_micros());
    }
    Ok(0)
}
