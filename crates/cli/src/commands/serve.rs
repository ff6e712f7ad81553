//! `sluice serve`: runs the gateway: the admin listener (`/healthz`, the local issuer's
//! `/.well-known/jwks.json`, the admin API under `/api/v1`), the PostgreSQL listener, and
//! the audit recorder both record through.
//!
//! Startup validates what every listener will need (config, store, identity providers,
//! every connection's upstream and secret), so a misconfigured gateway fails at start, not
//! at the first client. SIGTERM or Ctrl-C stops accepting; sessions get a grace period to
//! finish, then are closed with a FATAL that says why.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::{Json, Router};
use sluice_config::Config;
use tokio::sync::watch;

use crate::context::{load_config, local_issuer, open_store, provider_settings, StoreKeys};

/// How long sessions may run on after a shutdown signal, unless `shutdown_grace` says.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub fn run(config_path: &Path) -> Result<u8> {
    init_logging();
    let config = load_config(config_path)?;
    let runtime = runtime(&config)?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
        run_gateway(&config, stop_rx).await?;
        tracing::info!("stopped");
        Ok(0)
    })
}

/// The runtime the gateway runs on: `config.workers()` threads (see its reason there).
pub fn runtime(config: &Config) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers())
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs every listener of `config` until `stop` is raised and the sessions have drained.
/// Returns an error at once if anything cannot start.
pub async fn run_gateway(config: &Config, stop_rx: watch::Receiver<bool>) -> Result<()> {
    sluice_postgres::tls::install_crypto_provider();
    let store = open_store(config)?;
    let authenticator = sluice_identity::Authenticator::new(
        provider_settings(config)?,
        Some(Arc::new(StoreKeys(store.clone()))),
    )
    .context("setting up identity providers")?;
    let policies = Arc::new(sluice_policy::PolicySet::compile(config).map_err(anyhow::Error::msg)?);
    let classifier = Arc::new(sluice_sql::Classifier::default());
    let recorder = start_recorder(config, &store)?;
    let limits = crate::context::limits(config);
    let approvals = start_approvals(config, &store).await?;
    let mut tasks = tokio::task::JoinSet::new();

    if let Some(admin) = &config.listen.admin {
        let jwks = if config
            .identity
            .providers
            .iter()
            .any(|p| p.value.local.is_some())
        {
            local_issuer(config)?.jwks()
        } else {
            serde_json::json!({ "keys": [] })
        };
        let api = sluice_admin::router(Arc::new(sluice_admin::AdminState {
            store: store.clone(),
            authenticator: authenticator.clone(),
            admins: sluice_admin::Admins::from_config(config.admins.as_ref()),
            approvals: Some(approvals.clone()),
        }));
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/.well-known/jwks.json",
                get(move || async move { Json(jwks) }),
            )
            .merge(api);
        let listener = tokio::net::TcpListener::bind(&admin.value)
            .await
            .with_context(|| format!("binding the admin listener on {}", admin.value))?;
        let stop = stopped(stop_rx.clone());
        match &config.tls {
            // Callers send bearer tokens: with `tls` configured the admin API is served
            // over TLS only, as every other listener.
            Some(tls) => {
                let server = sluice_postgres::tls::server_config(&tls.cert, &tls.key)
                    .context("loading the TLS certificate for the admin listener")?;
                let listener =
                    sluice_admin::tls::TlsListener::new(listener, server, &[b"http/1.1"])
                        .context("starting the admin listener")?;
                tracing::info!(address = %admin.value, tls = true, "admin listener ready");
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("admin listener")
                });
            }
            None => {
                tracing::info!(address = %admin.value, tls = false, "admin listener ready");
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("admin listener")
                });
            }
        }
    }
    if let Some(address) = &config.listen.postgres {
        let mut gateway = sluice_postgres::PgGateway::from_config(
            config,
            authenticator.clone(),
            policies.clone(),
            classifier.clone(),
        )
        .context("setting up the PostgreSQL listener")?;
        gateway.mask_hash_key = crate::context::mask_hash_key(config)?.into();
        gateway.recorder = recorder.clone();
        gateway.approvals = Some(approvals.clone());
        gateway.limits = limits.clone();
        let listener = tokio::net::TcpListener::bind(&address.value)
            .await
            .with_context(|| format!("binding the postgres listener on {}", address.value))?;
        tracing::info!(address = %address.value, tls = gateway.tls.is_some(), "postgres listener ready");
        let stop = stopped(stop_rx.clone());
        let grace = config.shutdown_grace.map(|d| d.0).unwrap_or(SHUTDOWN_GRACE);
        tasks.spawn(async move {
            sluice_postgres::serve(listener, Arc::new(gateway), stop, grace).await;
            Ok(())
        });
    }
    if let Some(address) = &config.listen.http {
        let mut gateway = sluice_http::HttpGateway::from_config(
            config,
            authenticator.clone(),
            policies.clone(),
            &crate::context::mask_hash_key(config)?,
        )
        .context("setting up the HTTP listener")?;
        gateway.recorder = recorder.clone();
        gateway.approvals = Some(approvals.clone());
        gateway.limits = limits.clone();
        if config.tls.is_none()
            && config
                .connections
                .iter()
                .any(|c| c.value.kind == sluice_config::ConnectionKind::Kubernetes)
        {
            tracing::warn!("the HTTP listener has no TLS: kubectl sends no token to a plain-HTTP server, so Kubernetes connections are reachable only by clients that do (configure `tls`)");
        }
        let app = sluice_http::router(Arc::new(gateway))
            .into_make_service_with_connect_info::<sluice_http::ClientConnection>();
        let listener = tokio::net::TcpListener::bind(&address.value)
            .await
            .with_context(|| format!("binding the HTTP listener on {}", address.value))?;
        let stop = stopped(stop_rx.clone());
        match &config.tls {
            Some(tls) => {
                let server = sluice_postgres::tls::server_config(&tls.cert, &tls.key)
                    .context("loading the TLS certificate for the HTTP listener")?;
                let listener =
                    sluice_admin::tls::TlsListener::new(listener, server, &[b"h2", b"http/1.1"])
                        .context("starting the HTTP listener")?;
                tracing::info!(address = %address.value, tls = true, "HTTP listener ready");
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("HTTP listener")
                });
            }
            None => {
                tracing::info!(address = %address.value, tls = false, "HTTP listener ready");
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                        .context("HTTP listener")
                });
            }
        }
    }
    if tasks.is_empty() {
        anyhow::bail!("no listener to run: set listen.admin, listen.postgres or listen.http");
    }
    let mut outcome = Ok(());
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result.context("listener task").and_then(|r| r) {
            outcome = Err(e);
            break;
        }
    }
    // Sessions are closed: what they recorded is written and signed before the gateway
    // stops.
    if let Some(recorder) = recorder {
        recorder.shutdown().await;
    }
    outcome
}

/// The audit journal's file in the data dir: where events are durable before the store
/// has them (`sluice-recorder`'s journal).
pub const AUDIT_JOURNAL_FILE: &str = "audit-journal";

/// The audit recorder as `recording:` configures it, or `None` when recording is off.
fn start_recorder(
    config: &Config,
    store: &Arc<dyn sluice_store::Store>,
) -> Result<Option<sluice_recorder::Recorder>> {
    let recording = &config.recording;
    if !recording.enabled {
        tracing::warn!(
            "recording is off (recording.enabled: false): sessions leave no audit trail"
        );
        return Ok(None);
    }
    let defaults = sluice_recorder::RecorderSettings::default();
    let settings = sluice_recorder::RecorderSettings {
        result_caps: sluice_recorder::ResultCaps {
            rows: recording.result_rows.unwrap_or(defaults.result_caps.rows),
            bytes: recording.result_bytes.unwrap_or(defaults.result_caps.bytes),
        },
        checkpoint_interval: recording
            .checkpoint_interval
            .map(|d| d.0)
            .unwrap_or(defaults.checkpoint_interval),
        retention: recording.retention.map(|d| d.0),
        journal: Some(config.data_dir().join(AUDIT_JOURNAL_FILE)),
        journal_sync: recording.durability == sluice_config::Durability::Disk,
        // One gateway per SQLite file: what it finds open at start, its last run left open.
        close_orphans_at_start: config.store.starts_with("sqlite:"),
        on_store_failure: match recording.on_store_failure {
            sluice_config::OnStoreFailure::Refuse => sluice_recorder::OnStoreFailure::Refuse,
            sluice_config::OnStoreFailure::Continue => sluice_recorder::OnStoreFailure::Continue,
        },
        ..defaults
    };
    let signer = crate::context::audit_signer(config)?;
    let recorder = sluice_recorder::Recorder::start(store.clone(), signer, settings)
        .map_err(anyhow::Error::msg)?;
    Ok(Some(recorder))
}

/// The approvals broker as `approvals:` configures it, with its webhooks, started: held
/// requests a previous run left pending are withdrawn (one gateway per SQLite file), and
/// the expiry sweeper runs.
async fn start_approvals(
    config: &Config,
    store: &Arc<dyn sluice_store::Store>,
) -> Result<Arc<sluice_approvals::Broker>> {
    let approvals = &config.approvals;
    let mut settings = sluice_approvals::BrokerSettings::new(console_url(config));
    if let Some(window) = approvals.grant_window {
        settings.grant_window = window.0;
    }
    settings.withdraw_holds_at_start = config.store.starts_with("sqlite:");
    settings.pending_per_principal = crate::context::limits(config)
        .settings()
        .pending_approvals_per_principal;
    let mut targets = Vec::new();
    for hook in &approvals.webhooks {
        let hook = &hook.value;
        let secret = match &hook.secret {
            Some(secret) => Some(
                secret
                    .resolve()
                    .with_context(|| {
                        format!("the secret of the webhook to {}", url_host(&hook.url))
                    })?
                    .expose()
                    .as_bytes()
                    .into(),
            ),
            None => None,
        };
        targets.push(sluice_approvals::WebhookTarget {
            url: hook.url.clone(),
            format: match hook.format {
                sluice_config::WebhookFormat::Slack => sluice_approvals::WebhookFormat::Slack,
                sluice_config::WebhookFormat::Json => sluice_approvals::WebhookFormat::Json,
            },
            secret,
        });
    }
    let webhooks = sluice_approvals::Webhooks::start(targets, Default::default());
    let broker = sluice_approvals::Broker::new(store.clone(), settings, webhooks);
    broker
        .start()
        .await
        .context("starting approvals (withdrawing requests a previous run left held)")?;
    Ok(broker)
}

/// A webhook's host, for messages: its URL can be its secret.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Where approvers reach the console: `approvals.console_url`, else the admin listener.
pub fn console_url(config: &Config) -> String {
    if let Some(url) = &config.approvals.console_url {
        return url.trim_end_matches('/').to_string();
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    match &config.listen.admin {
        Some(admin) => format!("{scheme}://{}", admin.value),
        None => format!("{scheme}://127.0.0.1:8470"),
    }
}

/// Completes when the stop flag is raised.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub async fn shutdown_signal() {
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
