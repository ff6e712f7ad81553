//! `sluice policy check`: validate config and policies.

use std::path::Path;

use anyhow::Result;

pub fn run(config_path: &Path) -> Result<u8> {
    let config = match sluice_config::load_file(config_path) {
        Ok(config) => config,
        Err(diagnostics) => {
            for d in &diagnostics.0 {
                eprintln!("{d}");
            }
            eprintln!("{} problem(s) found", diagnostics.0.len());
            return Ok(1);
        }
    };
    let set = sluice_policy::PolicySet::compile(&config).map_err(anyhow::Error::msg)?;
    println!(
        "{}: ok ({} policies, {} connections, {} identity providers)",
        config_path.display(),
        set.policies.len(),
        config.connections.len(),
        config.identity.providers.len()
    );
    Ok(0)
}
