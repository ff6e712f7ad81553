//! Benchmarks only: this crate holds no library code.
//!
//! The criterion benches under `benches/` measure the gateway's per-request hot path:
//!
//! - `classify`: classifying a three-table join, cold (`sluice_sql::classify`, and a
//!   `sluice_sql::Classifier` cache miss) and cached (a cache hit);
//! - `decide`: a policy decision for that statement, and the cached classification plus
//!   the decision together, the per-statement cost once a session is open;
//! - `token`: validating a local-issuer ES256 token, cold (signature verified) and cached.
//!
//! Run them with `bench/run.sh` (or `cargo bench -p sluice-bench`); `bench/README.md`
//! keeps the last measured figures. The crate is not published and nothing depends on it.
