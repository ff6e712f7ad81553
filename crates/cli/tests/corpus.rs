//! The shared policy corpus through `sluice policy explain`: every case of refuse.yaml is
//! refused (exit 1) and every case of allow.yaml allowed (exit 0), for subject agent-1 with
//! role reader on connection app, as the corpus README prescribes; every case of mask.yaml,
//! for subject agent-2 with role masked-reader, is masked or refused as it expects.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Case {
    sql: String,
    why: String,
}

#[derive(Debug, Deserialize)]
struct MaskCase {
    sql: String,
    expect: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres")
}

fn cases(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join(file)).expect("corpus file");
    serde_saphyr::from_str(&text).expect("corpus YAML")
}

fn explain(sql: &str) -> (i32, String) {
    explain_as(sql, "agent-1", "reader", &[])
}

fn explain_as(sql: &str, subject: &str, role: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(corpus_dir().join("sluice.yaml"))
        .args([
            "policy",
            "explain",
            "--connection",
            "app",
            "--subject",
            subject,
            "--roles",
            role,
        ])
        .args(extra)
        // `--sql=...` so that statements starting with `--` are not taken for flags.
        .arg(format!("--sql={sql}"))
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn every_refuse_case_is_refused() {
    let cases = cases("refuse.yaml");
    assert!(cases.len() >= 40, "corpus shrank to {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let (code, out) = explain(&case.sql);
            (code != 1).then(|| format!("exit {code} for {:?} ({}):\n{out}", case.sql, case.why))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) not refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_allow_case_is_allowed() {
    let cases = cases("allow.yaml");
    assert!(cases.len() >= 20, "corpus shrank to {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let (code, out) = explain(&case.sql);
            (code != 0).then(|| format!("exit {code} for {:?} ({}):\n{out}", case.sql, case.why))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) not allowed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `masked`: allowed, with masked result columns; `masked-or-refused`: refused, or allowed
/// with masked result columns; `clear`: allowed with none. (Which flows are direct is checked
/// against the same corpus in the policy crate's tests.)
#[test]
fn every_mask_case_is_masked_or_refused() {
    let text = std::fs::read_to_string(corpus_dir().join("mask.yaml")).expect("mask.yaml");
    let cases: Vec<MaskCase> = serde_saphyr::from_str(&text).expect("corpus YAML");
    assert!(cases.len() >= 10, "corpus shrank to {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let (code, out) = explain_as(&case.sql, "agent-2", "masked-reader", &["--json"]);
            // Per statement, how many result columns the data path will mask.
            let masked: Vec<usize> = serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|doc| {
                    doc["statements"].as_array().map(|statements| {
                        statements
                            .iter()
                            .map(|s| s["masked_columns"].as_array().map_or(0, Vec::len))
                            .collect()
                    })
                })
                .unwrap_or_default();
            let ok = match (case.expect.as_str(), code) {
                ("masked" | "masked-or-refused", 0) => {
                    !masked.is_empty() && masked.iter().all(|n| *n > 0)
                }
                ("masked-or-refused", 1) => true,
                ("clear", 0) => masked.iter().all(|n| *n == 0),
                _ => false,
            };
            (!ok).then(|| {
                format!(
                    "exit {code} for {:?} (expect {}):\n{out}",
                    case.sql, case.expect
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) not as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The corpus is shared data; the copy in the repository must follow it. Where the shared
/// folder is not beside the checkout (a clone on its own), there is nothing to compare.
#[test]
fn repository_copy_matches_shared_corpus() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/postgres");
    if !shared.is_dir() {
        eprintln!(
            "no shared corpus at {}; skipping the comparison",
            shared.display()
        );
        return;
    }
    for entry in std::fs::read_dir(&shared).expect("shared corpus") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let ours = corpus_dir().join(&name);
        let theirs = std::fs::read(entry.path()).expect("shared file");
        let mine = std::fs::read(&ours).unwrap_or_default();
        assert!(
            mine == theirs,
            "tests/corpus/postgres/{} differs from the shared corpus; copy it again (cp -r ../shared/corpus/postgres tests/corpus/)",
            name.to_string_lossy()
        );
    }
}
