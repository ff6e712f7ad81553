//! The HTTP data path (`kind: http` connections), protocol-side: what an HTTP request is
//! in the policy's terms.
//!
//! A request is judged on its method and its path, and the path judged must be the path
//! the resource receives: [`target`] reads a request target strictly (percent-encoding
//! checked, encoded slashes, dot segments, empty segments and NUL refused rather than
//! interpreted) and gives back the [`HttpTarget`] the policy judges and the gateway
//! forwards, so the gateway and the resource can never read one request two ways.
//!
//! Layout:
//! - [`target`]: request targets: parsing and the refusals, [`HttpTarget`].
//!
//! Architecture invariants:
//! - Refuse, never repair: a target that could be read two ways (`%2F`, `..`, `//`,
//!   `\`) is a 400, not a guess.
//! - What is judged is what is forwarded: the gateway sends the resource
//!   [`HttpTarget::path`] and [`HttpTarget::query`] exactly as judged.

pub mod target;

pub use target::{HttpTarget, TargetError};
