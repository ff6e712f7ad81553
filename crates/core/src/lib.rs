//! The vocabulary every Sluice crate speaks.
//!
//! Identity produces a [`Principal`]; SQL classification produces [`Action`]s on
//! [`QualifiedName`]s; the policy engine consumes both. Keeping these types here, with no
//! dependencies beyond serde, lets each of those crates stay independent of the others.

pub mod access;
pub mod action;
pub mod api_key;
pub mod approval;
pub mod name;
pub mod principal;

pub use access::{Access, Object};
pub use action::{Action, UnknownAction};
pub use api_key::ApiKeyRecord;
pub use approval::{ApprovalMode, ApprovalStatus, Subjects, Verdict};
pub use name::QualifiedName;
pub use principal::{Principal, PrincipalKind};
