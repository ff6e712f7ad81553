//! `sluice kubeconfig --connection C`: a kubeconfig that points kubectl at a Kubernetes
//! connection through the gateway (`<listen.http>/c/<C>`) with the agent's token, so the
//! agent keeps its ordinary kubectl and only the server and the credential change.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sluice_config::ConnectionKind;
use sluice_http::kube::kubeconfig::{Credential, Kubeconfig};

use crate::cli::KubeconfigArgs;
use crate::context::load_config;

pub fn run(config_path: &Path, args: &KubeconfigArgs) -> Result<u8> {
    let config = load_config(config_path)?;
    let Some(connection) = config.connection(&args.connection) else {
        bail!("unknown connection `{}`", args.connection);
    };
    if connection.kind != ConnectionKind::Kubernetes {
        bail!(
            "connection `{}` is kind {}, not kubernetes",
            connection.name,
            connection.kind.as_str()
        );
    }
    let server = match &args.server {
        Some(server) => server.clone(),
        None => {
            let Some(listen) = &config.listen.http else {
                bail!("the config has no `listen.http`; say where agents reach the gateway with --server");
            };
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", listen.value)
        }
    };
    if server.starts_with("http://") {
        eprintln!("warning: {server} is plain HTTP, and kubectl sends no token to a server without TLS; configure `tls` on the gateway");
    }
    let ca_path = args
        .ca
        .clone()
        .or_else(|| config.tls.as_ref().map(|t| t.cert.clone()));
    let ca_pem = ca_path
        .as_ref()
        .filter(|_| server.starts_with("https://"))
        .map(|p| std::fs::read(p).with_context(|| format!("reading the CA {}", p.display())))
        .transpose()?;
    let credential = match (&args.token, &args.token_file) {
        (_, Some(file)) => Credential::TokenFile(file),
        (Some(token), None) => Credential::Token(token),
        (None, None) => bail!("give the agent's token with --token (or SLUICE_TOKEN), or a file kubectl re-reads with --token-file"),
    };
    let text = Kubeconfig {
        gateway: &server,
        connection: &connection.name,
        credential,
        ca_pem: ca_pem.as_deref(),
        namespace: args.namespace.as_deref(),
    }
    .render();
    match &args.output {
        None => print!("{text}"),
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("writing {}", path.display()))?;
            file.write_all(text.as_bytes())?;
            eprintln!(
                "wrote {} (context sluice-{})",
                path.display(),
                connection.name
            );
        }
    }
    Ok(0)
}
