//! `sluice sessions verify [--session ID] [--public-key FILE]`: checks the audit trail in
//! the store and names the first broken link.
//!
//! Without `--session`, every session's events and every checkpoint are read and checked
//! by `sluice_audit::verify_against_checkpoints`: each chain link, each checkpoint's
//! signature, each signed head still in place (which is what catches a cut-off or
//! rewritten tail, or a whole session removed). The key is the data dir's signing key, or
//! the public key given with `--public-key` (an auditor's own copy). With `--session`,
//! only that session's chain is checked (`sluice_audit::verify_session`): checkpoints sign
//! heads of many sessions at once, so they are judged over the whole trail only.
//!
//! Exit 0 when everything holds; 1 when something does not, with the session, the `seq`
//! and what is wrong (a stored event that no longer reads as an event counts as broken
//! too); 2 when the check could not be made (no config, no store, no key).
//!
//! The whole trail is read into memory first; a trail too big for that needs a streaming
//! verification, which `sluice-audit` does not offer yet.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use sluice_audit::{
    verify_against_checkpoints, verify_session, Event, PublicKey, Verified, VerifyError,
};
use sluice_store::{Store, StoreError};

use crate::cli::SessionsVerify;
use crate::context::{load_audit_signer, load_config, open_store, AUDIT_SIGNING_KEY_FILE};

/// Exit code when the trail does not verify.
const EXIT_BROKEN: u8 = 1;

/// Sessions whose ids are read per call while collecting the trail.
const SESSIONS_PER_PAGE: usize = 500;

pub fn run(config_path: &Path, args: &SessionsVerify) -> Result<u8> {
    let config = load_config(config_path)?;
    let store = open_store(&config)?;
    if let Some(session_id) = &args.session {
        return verify_one(&*store, session_id);
    }
    let key = match &args.public_key {
        Some(path) => Some(read_public_key(path)?),
        None => load_audit_signer(&config)?.map(|signer| signer.public_key().clone()),
    };
    let checkpoints = match store.checkpoints() {
        Ok(checkpoints) => checkpoints,
        Err(error) => return unreadable(error),
    };
    let events = match all_events(&*store) {
        Ok(events) => events,
        Err(error) => return unreadable(error),
    };
    let verified = match key {
        Some(key) => verify_against_checkpoints(&events, &checkpoints, &key),
        None if checkpoints.is_empty() => {
            println!("no signing key and no checkpoints yet: checking the chains only");
            chains_only(&events)
        }
        None => bail!(
            "{} checkpoints are stored but there is no {AUDIT_SIGNING_KEY_FILE} in {} to check \
             them with; pass the public key with --public-key",
            checkpoints.len(),
            config.data_dir().display()
        ),
    };
    match verified {
        Ok(verified) => {
            report(&verified);
            Ok(0)
        }
        Err(error) => {
            println!("broken: {error}");
            Ok(EXIT_BROKEN)
        }
    }
}

fn verify_one(store: &dyn Store, session_id: &str) -> Result<u8> {
    let events = match store.session_events(session_id) {
        Ok(events) => events,
        Err(error) => return unreadable(error),
    };
    if events.is_empty() {
        bail!("no events are recorded for session {session_id}");
    }
    match verify_session(&events) {
        Ok(()) => {
            println!(
                "intact: session {session_id}, {} events (its chain only: run without \
                 --session to check it against the signed checkpoints)",
                events.len()
            );
            Ok(0)
        }
        Err(link) => {
            println!("broken: {link}");
            Ok(EXIT_BROKEN)
        }
    }
}

/// Every session's events, sessions in id order, each in `seq` order.
fn all_events(store: &dyn Store) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let ids = store.session_ids(after.as_deref(), SESSIONS_PER_PAGE)?;
        for session_id in &ids {
            events.extend(store.session_events(session_id)?);
        }
        match ids.into_iter().last() {
            Some(last) => after = Some(last),
            None => return Ok(events),
        }
    }
}

/// Each session's chain, without checkpoints (there are none to check).
fn chains_only(events: &[Event]) -> Result<Verified, VerifyError> {
    let mut sessions = 0;
    for session in events.chunk_by(|a, b| a.session_id == b.session_id) {
        verify_session(session)?;
        sessions += 1;
    }
    Ok(Verified {
        sessions,
        events: events.len(),
        unsigned_events: events.len(),
        ..Verified::default()
    })
}

/// A stored event or checkpoint that no longer reads is itself a broken trail; any other
/// store error means the check could not be made.
fn unreadable(error: StoreError) -> Result<u8> {
    match error {
        StoreError::Corrupt { .. } => {
            println!("broken: {error}");
            Ok(EXIT_BROKEN)
        }
        other => Err(other.into()),
    }
}

fn read_public_key(path: &Path) -> Result<PublicKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::from_pem(&pem).with_context(|| format!("reading the public key {}", path.display()))
}

fn report(verified: &Verified) {
    println!(
        "intact: {}, {}, {} ({} in place, {} purged under a signed record)",
        counted(verified.sessions, "session"),
        counted(verified.events, "event"),
        counted(verified.checkpoints, "checkpoint"),
        counted(verified.signed_heads, "signed head"),
        counted(verified.purged_sessions, "session"),
    );
    if verified.unsigned_events > 0 {
        println!(
            "{} recorded after the last checkpoint of their session: their chains cover them, \
             no signature does yet",
            counted(verified.unsigned_events, "event")
        );
    }
}

/// `1 event`, `2 events`.
fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}
