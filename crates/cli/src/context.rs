//! What most commands need: the loaded config, the store, the local issuer.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _, Result};
use sluice_config::Config;
use sluice_store::Store;

/// Loads and validates the config, printing every diagnostic on failure.
pub fn load_config(path: &Path) -> Result<Config> {
    sluice_config::load_file(path).map_err(|diagnostics| anyhow!("{diagnostics}"))
}

pub fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    sluice_store::open_store(&config.store)
        .with_context(|| format!("opening the store {}", sluice_store::redact(&config.store)))
}

/// The local issuer, if the config has a `local` provider.
pub fn local_issuer(config: &Config) -> Result<sluice_identity::LocalIssuer> {
    if !config
        .identity
        .providers
        .iter()
        .any(|p| p.value.local.is_some())
    {
        anyhow::bail!("the config has no `local` identity provider; add `- {{ name: local, local: {{}} }}` under identity.providers");
    }
    sluice_identity::LocalIssuer::load_or_create(config.data_dir()).with_context(|| {
        format!(
            "loading the local issuer key from {}",
            config.data_dir().display()
        )
    })
}

/// Identity provider settings from the config, for the authenticator.
pub fn provider_settings(config: &Config) -> Result<Vec<sluice_identity::ProviderSettings>> {
    let mut settings = Vec::new();
    for p in &config.identity.providers {
        let p = &p.value;
        let source = match (&p.issuer, &p.local) {
            (Some(issuer), _) => sluice_identity::ProviderSource::Oidc {
                issuer: issuer.clone(),
            },
            (None, _) => sluice_identity::ProviderSource::Local {
                issuer: local_issuer(config)?,
            },
        };
        let audiences = if p.local.is_some() && p.audiences.is_empty() {
            vec![sluice_identity::LocalIssuer::default_audience().to_string()]
        } else {
            p.audiences.clone()
        };
        settings.push(sluice_identity::ProviderSettings {
            name: p.name.clone(),
            source,
            audiences,
            allow_app_without_roles: p.allow_app_without_roles,
            // Entra's own issuers are recognised by the identity crate; the config has no
            // setting for Entra-shaped issuers elsewhere.
            entra: false,
        });
    }
    Ok(settings)
}

/// Bridges the store's API keys to the identity crate's lookup interface.
pub struct StoreKeys(pub Arc<dyn Store>);

impl sluice_identity::ApiKeyDirectory for StoreKeys {
    fn find(&self, id: &str) -> std::result::Result<Option<sluice_identity::ApiKeyRecord>, String> {
        self.0.find_api_key(id).map_err(|e| e.to_string())
    }
}
