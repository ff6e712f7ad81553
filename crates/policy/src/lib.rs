//! The policy engine: a principal and what it asks for in, a decision out.
//!
//! DESIGN.md §1 fixes the semantics: default deny; a principal gets every policy whose
//! `match` it satisfies; a request is refused if any `deny` rule matches, else allowed if
//! `allow` rules cover it, else held for approval if `approve` rules cover it, else
//! refused. Masks of all matching policies apply, the most concealing winning.
//!
//! - [`compile`]: config policies into matchers (globs compiled once);
//! - [`session`]: [`SessionPolicy`], the policies that apply to one principal on one
//!   connection, worked out once per session;
//! - [`decide`]: judging accesses, the protocol-neutral core, and SQL statements on top;
//! - [`http`]: judging HTTP requests on their method and path;
//! - [`kubernetes`]: judging Kubernetes API requests on verb, group, resource,
//!   namespace and name ([`KubeRequest`]), Secrets only by a rule that names them;
//! - [`masking`]: refusing statements that would carry a masked column out other than as a
//!   result column of its own, from the classifier's value flows; which result columns the
//!   data path will mask;
//! - [`decision`]: what comes out ([`Verdict`], [`Decision`], [`RuleRef`]);
//! - [`session_settings`]: the formatting parameters any session may set without a rule.
//!
//! Architecture invariant: this crate does no I/O and holds no clock; everything it needs
//! is passed in, so a decision is a pure function of its inputs and the tests of it need
//! nothing running.

pub mod compile;
pub mod decide;
pub mod decision;
pub mod http;
pub mod kubernetes;
pub mod masking;
pub mod session;
pub mod session_settings;

pub use compile::{CompiledMask, CompiledPolicy, PolicySet};
pub use decision::{Approval, Decision, EffectiveLimits, MaskSpec, RuleRef, Section, Verdict};
pub use kubernetes::{KubeRequest, KubeTarget, KubeVerdict};
pub use masking::MaskedColumn;
pub use session::SessionPolicy;
