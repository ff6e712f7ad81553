//! What most commands need: the loaded config, the store, the local issuer, and the keys
//! kept in the data dir (the mask hash key, the audit checkpoint signing key).

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
///
/// `mask_hash_key: { env: ... } | { file: ... }` in the config takes precedence (several
/// gateway instances must share one key); it must hold at least 32 bytes.
pub fn mask_hash_key(config: &Config) -> Result<Vec<u8>> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    if let Some(secret) = &config.mask_hash_key {
        let key = secret
            .resolve()
            .context("reading mask_hash_key")?
            .expose()
            .trim()
            .as_bytes()
            .to_vec();
        anyhow::ensure!(
            key.len() >= 32,
            "mask_hash_key must hold at least 32 bytes (it has {})",
            key.len()
        );
        return Ok(key);
    }

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

/// The audit signing key's file in the data dir.
pub const AUDIT_SIGNING_KEY_FILE: &str = "audit-signing-key.pem";

/// The key that signs the audit trail's checkpoints: `audit-signing-key.pem` in the data
/// dir (PKCS#8 PEM, mode 0600, what `openssl pkey` reads), created on first use.
///
/// The key is written to a private temporary file and linked into place, so another
/// process never reads half a key, and when two processes create one at the same time
/// both end up with the one that was linked first.
pub fn audit_signer(config: &Config) -> Result<sluice_audit::CheckpointSigner> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};

    if let Some(signer) = load_audit_signer(config)? {
        return Ok(signer);
    }
    let dir = config.data_dir();
    let path = dir.join(AUDIT_SIGNING_KEY_FILE);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let signer = sluice_audit::CheckpointSigner::generate();
    let pem = signer
        .to_pkcs8_pem()
        .context("encoding the new audit signing key")?;
    let temporary = dir.join(format!(".{AUDIT_SIGNING_KEY_FILE}.{}", std::process::id()));
    // A leftover of a process with our id that died half-way.
    let _ = std::fs::remove_file(&temporary);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        })
        .with_context(|| format!("writing {}", temporary.display()));
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, &path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    });
    let _ = std::fs::remove_file(&temporary);
    if linked? {
        tracing::info!(path = %path.display(), "generated the audit signing key");
        Ok(signer)
    } else {
        load_audit_signer(config)?
            .with_context(|| format!("{} vanished while it was being read", path.display()))
    }
}

/// The data dir's audit signing key, or `None` if there is none yet (nothing is created).
pub fn load_audit_signer(config: &Config) -> Result<Option<sluice_audit::CheckpointSigner>> {
    let path = config.data_dir().join(AUDIT_SIGNING_KEY_FILE);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => sluice_audit::Zeroizing::new(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    sluice_audit::CheckpointSigner::from_pkcs8_pem(&pem)
        .map(Some)
        .with_context(|| format!("reading the audit signing key {}", path.display()))
}

/// The caps against abuse `limits:` sets, over the defaults.
pub fn limits(config: &Config) -> Arc<sluice_limits::Limits> {
    let l = &config.limits;
    let mut settings = sluice_limits::LimitSettings::default();
    if let Some(n) = l.sessions_per_principal {
        settings.sessions_per_principal = n;
    }
    if let Some(n) = l.auth_failures_per_address {
        settings.auth_failures_per_address = n;
    }
    if let Some(d) = l.auth_failure_window {
        settings.auth_failure_window = d.0;
    }
    if let Some(n) = l.statements_per_query {
        settings.statements_per_query = n;
    }
    if let Some(n) = l.pending_approvals_per_principal {
        settings.pending_approvals_per_principal = n;
    }
    sluice_limits::Limits::new(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal config at `path` with its data dir beside it, plus `extra` lines.
    fn config_in(path: &Path, extra: &str) -> Config {
        std::fs::write(
            path,
            format!(
                "listen: {{ admin: \"127.0.0.1:0\" }}\ndata_dir: data\n{extra}identity: {{ providers: [ {{ name: local, local: {{}} }} ] }}\n"
            ),
        )
        .unwrap();
        load_config(path).unwrap()
    }

    #[test]
    fn the_mask_hash_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sluice.yaml");
        let config = config_in(&config_path, "");
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

        // A key in the config wins over the data dir's.
        std::fs::write(dir.path().join("hash.key"), "k".repeat(40)).unwrap();
        let config = config_in(&config_path, "mask_hash_key: { file: hash.key }\n");
        assert_eq!(mask_hash_key(&config).unwrap(), "k".repeat(40).into_bytes());
        std::fs::write(dir.path().join("hash.key"), "too short").unwrap();
        assert!(mask_hash_key(&config).is_err());
    }

    #[test]
    fn the_audit_signing_key_is_made_once_private_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sluice.yaml");
        let config = config_in(&config_path, "");
        assert!(load_audit_signer(&config).unwrap().is_none());

        let first = audit_signer(&config).unwrap();
        let path = dir.path().join("data").join(AUDIT_SIGNING_KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(
            audit_signer(&config).unwrap().public_key(),
            first.public_key()
        );
        let loaded = load_audit_signer(&config).unwrap().unwrap();
        assert_eq!(loaded.public_key(), first.public_key());
        // Nothing but the key is left behind in the data dir.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [AUDIT_SIGNING_KEY_FILE]);

        std::fs::write(&path, "not a key").unwrap();
        let error = audit_signer(&config).unwrap_err();
        assert!(
            format!("{error:#}").contains(AUDIT_SIGNING_KEY_FILE),
            "{error:#}"
        );
    }
}
