//! Kubernetes connections (`kind: kubernetes`): the API server behind the HTTP listener.
//!
//! They ride the HTTP data path whole (routing, authentication, recording, approvals,
//! forwarding with the connection's own credential); what differs is read here:
//! - [`request_info`]: a request's verb, group, resource, namespace and name, read as
//!   the API server reads them, which the policy judges instead of method and path;
//! - [`secrets`]: Secret values masked in every response about Secrets (objects, lists,
//!   tables, watch events, and the `last-applied-configuration` copy kubectl keeps);
//! - [`stream`]: masking a watch, a stream of JSON documents that never ends, one
//!   document at a time;
//! - [`status`]: refusals as the `Status` objects kubectl prints;
//! - [`kubeconfig`]: the kubeconfig that points kubectl at the gateway.

pub mod kubeconfig;
pub mod request_info;
pub mod secrets;
pub mod status;
pub mod stream;

pub use request_info::{request_info, KubeRequestError};
