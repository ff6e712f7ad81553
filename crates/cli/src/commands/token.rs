//! `sluice token issue`: a token from the local issuer, alone on stdout.

use std::path::Path;

use anyhow::{Context, Result};
use sluice_core::PrincipalKind;
use sluice_identity::{LocalIssuer, TokenRequest};

use crate::cli::TokenIssue;
use crate::context::{load_config, local_issuer};

pub fn issue(config_path: &Path, args: &TokenIssue) -> Result<u8> {
    let config = load_config(config_path)?;
    let issuer = local_issuer(&config)?;
    let request = TokenRequest {
        subject: args.subject.clone(),
        roles: args.roles.clone(),
        groups: args.groups.clone(),
        ttl: args.ttl,
        audience: args
            .audience
            .clone()
            .unwrap_or_else(|| LocalIssuer::default_audience().to_string()),
        name: args.name.clone(),
    };
    let kind = if args.user {
        PrincipalKind::User
    } else {
        PrincipalKind::App
    };
    let token = issuer
        .issue_as(&request, kind)
        .context("signing the token")?;
    println!("{token}");
    Ok(0)
}
