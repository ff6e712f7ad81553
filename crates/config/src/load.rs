//! Reading `sluice.yaml`: YAML errors become [`Diagnostic`]s, relative paths are resolved
//! against the file's folder (as `certs/gw.pem` in DESIGN.md §1 implies), and the result
//! is validated.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::Config;
use crate::secret::Secret;

/// Loads, resolves and validates the config at `path`.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read config: {e}"),
        }])
    })?;
    load_str(&text, path)
}

/// Loads config text as if it came from `path` (used for messages and relative paths).
pub fn load_str(text: &str, path: &Path) -> Result<Config, Diagnostics> {
    let mut config: Config =
        serde_saphyr::from_str(text).map_err(|e| Diagnostics(vec![yaml_diagnostic(&e, path)]))?;
    config.source = path.to_path_buf();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    resolve_paths(&mut config, &base);
    crate::validate::validate(&config)?;
    Ok(config)
}

fn yaml_diagnostic(err: &serde_saphyr::Error, path: &Path) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    // The crate's own rendering adds a source snippet and the position; keep the first
    // line, which is the message itself.
    let rendered = err.without_snippet().to_string();
    let message = rendered.lines().next().unwrap_or("invalid YAML").trim();
    let message = strip_position(message);
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        message: message.to_string(),
    }
}

/// Drops a trailing " at line N column M" that would repeat the position.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

fn resolve_paths(config: &mut Config, base: &Path) {
    let join = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    if let Some(tls) = config.tls.as_mut() {
        join(&mut tls.cert);
        join(&mut tls.key);
    }
    for conn in &mut config.connections {
        if let Some(ca) = conn.value.ca.as_mut() {
            join(ca);
        }
        for secret in [conn.value.password.as_mut(), conn.value.token.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Secret::File(p) = secret {
                join(p);
            }
        }
    }
    if let Some(Secret::File(p)) = config.mask_hash_key.as_mut() {
        join(p);
    }
    if let Some(rest) = config.store.strip_prefix("sqlite://") {
        let db = Path::new(rest);
        if !rest.is_empty() && db.is_relative() {
            config.store = format!("sqlite://{}", base.join(db).display());
        }
    }
    match config.data_dir.as_mut() {
        Some(dir) => join(dir),
        None => {
            let dir = config
                .store
                .strip_prefix("sqlite://")
                .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| base.join("sluice-data"));
            config.data_dir = Some(dir);
        }
    }
}

impl Config {
    /// The data directory (always set after loading).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.as_deref().unwrap_or(Path::new("sluice-data"))
    }

    /// The threads that run listeners and sessions: `workers`, else half the CPUs (at
    /// least one). A relay spends most of its time handing bytes between sockets, and
    /// every worker beyond what the load needs adds a thread woken to look for work on
    /// each statement: measured with pgbench on 2 cores (bench/README.md), one worker
    /// spent 3 to 12% less CPU per transaction than two, with as much throughput. Work
    /// that blocks (the store, the audit writer) has threads of its own either way.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() / 2)
                .unwrap_or(1)
                .max(1)
        })
    }

    pub fn connection(&self, name: &str) -> Option<&crate::model::Connection> {
        self.connections
            .iter()
            .map(|c| &c.value)
            .find(|c| c.name == name)
    }
}
