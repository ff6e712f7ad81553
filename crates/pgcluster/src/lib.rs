//! Throw-away PostgreSQL clusters, for `sluice demo` and the integration tests.
//!
//! - [`pg`]: [`pg::PgCluster`], a PostgreSQL server (initdb + pg_ctl from the locally
//!   installed PostgreSQL) on a free 127.0.0.1 port, with SCRAM password authentication,
//!   and helpers to create databases and roles and run SQL through `psql`. It stops, and
//!   its directory is removed, when it is dropped or its process dies.

pub mod pg;
