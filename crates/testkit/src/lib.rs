//! Test support shared by Sluice's integration tests. Not published, never a dependency of
//! the shipped binaries: add it under `[dev-dependencies]` only.
//!
//! - [`pg`]: [`pg::PgCluster`], a throwaway PostgreSQL server (initdb + pg_ctl from the
//!   locally installed PostgreSQL) on a free 127.0.0.1 port, with SCRAM password
//!   authentication, and helpers to create databases and roles and run SQL through `psql`.

pub mod pg;
