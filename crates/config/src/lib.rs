//! `sluice.yaml`: the one configuration file (DESIGN.md §1).
//!
//! - [`model`]: the file's shape, as serde types; unknown keys are errors everywhere;
//! - [`load`]: reading a file, resolving relative paths against its folder, and turning
//!   YAML errors into [`Diagnostic`]s that name `file:line:column`;
//! - [`validate`]: the checks YAML cannot express (names that must exist, rules that must
//!   fit their connections, listeners that must not be exposed without TLS);
//! - [`secret`]: `{ env: NAME }` / `{ file: path }` values, resolved on demand and never
//!   printed;
//! - [`duration`]: `30s`, `10m`, `90d`.
//!
//! The crate is pure data: it reads the config file and, when asked, a secret, and does no
//! other I/O. The policy engine compiles [`model::Policy`] into its own form.

pub mod diagnostic;
pub mod duration;
pub mod load;
pub mod model;
pub mod secret;
pub mod validate;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{load_file, load_str};
pub use model::*;
pub use secret::{Secret, SecretError};
