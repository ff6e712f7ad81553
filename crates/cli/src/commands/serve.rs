//! `sluice serve`: runs the gateway.
//!
//! Today that is the admin listener with `/healthz` and the local issuer's
//! `/.well-known/jwks.json`; protocol listeners plug in here as their crates land. Startup
//! validates what every listener will need (config, store, identity providers), so a
//! misconfigured gateway fails at start, not at the first client.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::{Json, Router};

use crate::context::{load_config, local_issuer, open_store, provider_settings, StoreKeys};

pub fn run(config_path: &Path) -> Result<u8> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = load_config(config_path)?;
    let store = open_store(&config)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let _authenticator =
            sluice_identity::Authenticator::new(provider_settings(&config)?, Some(Arc::new(StoreKeys(store.clone()))))
                .context("setting up identity providers")?;
        let jwks = if config.identity.providers.iter().any(|p| p.value.local.is_some()) {
            local_issuer(&config)?.jwks()
        } else {
            serde_json::json!({ "keys": [] })
        };
        let Some(admin) = &config.listen.admin else {
            anyhow::bail!("no listener to run: set listen.admin (protocol listeners arrive with their data paths)");
        };
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/.well-known/jwks.json", get(move || async move { Json(jwks) }));
        let listener = tokio::net::TcpListener::bind(&admin.value)
            .await
            .with_context(|| format!("binding the admin listener on {}", admin.value))?;
        tracing::info!(address = %admin.value, "admin listener ready");
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("admin listener")?;
        tracing::info!("stopped");
        Ok(0)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
