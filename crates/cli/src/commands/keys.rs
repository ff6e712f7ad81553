//! `sluice keys create|list|revoke`: API keys, stored as hashes in the store.
//!
//! These commands work on the store named by the config directly, so they work before the
//! gateway first runs; the gateway looks keys up at every login, so a revocation takes
//! effect at once.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use sluice_store::RevokeOutcome;

use crate::cli::{KeysCreate, ListArgs};
use crate::context::{load_config, open_store};
use crate::output::{table, timestamp};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn create(config_path: &Path, args: &KeysCreate) -> Result<u8> {
    let config = load_config(config_path)?;
    let store = open_store(&config)?;
    let key = sluice_identity::generate_api_key(
        &args.name,
        &args.subject,
        args.roles.clone(),
        args.groups.clone(),
        now(),
    );
    store.insert_api_key(&key.record)?;
    let r = &key.record;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "id": r.id, "name": r.name, "subject": r.subject, "key": key.plaintext })
        );
    } else {
        eprintln!(
            "created key {} ({}); it is shown once, store it now:",
            r.id, r.name
        );
        println!("{}", key.plaintext);
    }
    Ok(0)
}

pub fn list(config_path: &Path, args: &ListArgs) -> Result<u8> {
    let config = load_config(config_path)?;
    let keys = open_store(&config)?.list_api_keys()?;
    if args.json {
        let rows: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id, "name": k.name, "subject": k.subject, "roles": k.roles, "groups": k.groups,
                    "status": if k.revoked_at.is_some() { "revoked" } else { "active" },
                    "created_at": timestamp(k.created_at),
                    "revoked_at": k.revoked_at.map(timestamp),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    k.name.clone(),
                    k.subject.clone(),
                    k.roles.join(","),
                    k.groups.join(","),
                    if k.revoked_at.is_some() {
                        "revoked".into()
                    } else {
                        "active".into()
                    },
                    timestamp(k.created_at),
                ]
            })
            .collect();
        table(
            &[
                "ID", "NAME", "SUBJECT", "ROLES", "GROUPS", "STATUS", "CREATED",
            ],
            &rows,
        );
    }
    Ok(0)
}

pub fn revoke(config_path: &Path, id: &str) -> Result<u8> {
    let config = load_config(config_path)?;
    match open_store(&config)?.revoke_api_key(id, now())? {
        RevokeOutcome::Revoked => {
            println!("revoked {id}");
            Ok(0)
        }
        RevokeOutcome::AlreadyRevoked => {
            println!("{id} was already revoked");
            Ok(0)
        }
        RevokeOutcome::NotFound => bail!("no API key with id {id}"),
    }
}
