//! The configuration loader on arbitrary text: `sluice_config::load_str` (YAML parsing
//! with serde-saphyr, path resolution, validation with file:line:column diagnostics), and
//! for a config that loads, `PolicySet::compile` (the policies as the gateway runs them).
//!
//! Invariants: nothing panics (a bad config is a list of diagnostics); and validation
//! accepts only what compiles: a config that `load_str` accepts never fails
//! `PolicySet::compile`, which `sluice serve` would otherwise only discover at start.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match sluice_config::load_str(text, Path::new("fuzz.yaml")) {
        Ok(config) => {
            if let Err(e) = sluice_policy::PolicySet::compile(&config) {
                panic!("a config that validates does not compile: {e}");
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.0.is_empty(), "a refusal says why");
            let _ = diagnostics.to_string();
        }
    }
});
