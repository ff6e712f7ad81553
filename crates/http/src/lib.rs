//! The HTTP data path (`kind: http` and `kind: kubernetes` connections): agents call an
//! internal API or a cluster's API server through the
//! gateway at `/c/<connection>/...` with their token; the gateway judges each request,
//! records it, holds or tickets it when a rule says so, and forwards it with the
//! connection's own credential.
//!
//! A request is judged on its method and its path, and the path judged must be the path
//! the resource receives: [`target`] reads a request target strictly (percent-encoding
//! checked, encoded slashes, dot segments, empty segments and NUL refused rather than
//! interpreted) and gives back the [`HttpTarget`] the policy judges and the gateway
//! forwards, so the gateway and the resource can never read one request two ways.
//!
//! Layout:
//! - [`target`]: request targets: parsing and the refusals, [`HttpTarget`];
//! - [`gateway`]: the listener's state ([`HttpGateway`]) and its one handler: routing by
//!   `/c/<connection>/`, authentication, judging, recording, approvals, forwarding with
//!   the connection's own credential, masked responses;
//! - [`json_mask`]: masking JSON bodies by path and by detector;
//! - [`kube`]: what Kubernetes connections add: requests read as the API server reads
//!   them, Secret values masked, watches masked one event at a time, `Status` refusals,
//!   the kubeconfig.
//!
//! Architecture invariants:
//! - Refuse, never repair: a target that could be read two ways (`%2F`, `..`, `//`,
//!   `\`) is a 400, not a guess.
//! - What is judged is what is forwarded: the gateway sends the resource
//!   [`HttpTarget::path`] and [`HttpTarget::query`] exactly as judged.
//! - The agent's `Authorization` never reaches the resource, nor hop-by-hop headers; the
//!   connection's token is sent instead. Redirects are not followed.
//! - No byte of a response reaches the agent before its request is durable in the audit
//!   trail; a response a mask applies to is masked whole or withheld (not JSON, too large,
//!   unreadable), never passed through.

pub mod gateway;
pub mod json_mask;
pub mod kube;
pub mod target;

pub use gateway::{router, ClientConnection, HttpGateway};
pub use target::{HttpTarget, TargetError};
