//! `sluice sessions public-key`: the public half of the audit signing key, for auditors.
//!
//! Prints the SPKI PEM (what `openssl pkey -pubin` reads) alone on stdout, and the key id
//! checkpoints name it by on stderr. An auditor keeps this key apart from the gateway and
//! passes it to `sluice sessions verify --public-key`, so that whoever can change the data
//! dir cannot also change what the trail is checked against. The key pair is created if
//! the gateway has not made it yet.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::context::{audit_signer, load_config};

pub fn run(config_path: &Path) -> Result<u8> {
    let config = load_config(config_path)?;
    let public = audit_signer(&config)?.public_key().clone();
    let pem = public.to_pem().context("encoding the public key")?;
    print!("{pem}");
    eprintln!("key id {}", public.key_id());
    Ok(0)
}
