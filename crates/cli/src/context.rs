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

/// The key of the `hash` mask strategy: 32 random bytes kept in the data dir
/// (`mask-hash.key`, mode 0600), created on first use, so that hash tokens stay the same
/// across restarts and equal values can still be joined across sessions.
pub fn mask_hash_key(config: &Config) -> Result<Vec<u8>> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let path = config.data_dir().join("mask-hash.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => anyhow::bail!(
            "{} holds fewer than 32 bytes; remove it to have a new key made (hash tokens change)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(config.data_dir())
        .with_context(|| format!("creating {}", config.data_dir().display()))?;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_hash_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sluice.yaml");
        std::fs::write(
            &config_path,
            "listen: { admin: \"127.0.0.1:0\" }\ndata_dir: data\nidentity: { providers: [ { name: local, local: {} } ] }\n",
        )
        .unwrap();
        let config = load_config(&config_path).unwrap();
        let first = mask_hash_key(&config).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(mask_hash_key(&config).unwrap(), first);
        let path = dir.path().join("data/mask-hash.key");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(mask_hash_key(&config).is_err());
    }
}
