//! Judging Kubernetes API requests (`kind: kubernetes` connections) on the attributes the
//! API server itself authorizes on: verb, API group, resource and subresource, namespace
//! and name, or, for paths that are no resource, the path. The protocol crate reads them
//! from the request as the API server does ([`KubeRequest`] is only the result); this
//! judges them in the order of every other judgement: any deny rule refuses; else an
//! allow rule lets the request through; else an approve rule holds it; else it is refused.
//!
//! Two things differ from RBAC on purpose:
//! - Secrets, and what hands out a credential or a way into a container or node
//!   (`pods/exec`, `pods/attach`, `pods/portforward`, any `*/proxy`,
//!   `serviceaccounts/token`), are matched only by a rule that names them in so many
//!   letters: `resources: ["*"]`, `pods/*` or a rule without `resources` never covers
//!   them; the old `proxy` verb only by a rule that lists it.
//!   What a Secret holds is masked in responses unless the rule that let the request
//!   through says `secret_data: reveal`.
//! - Discovery (`GET /api`, `/apis/...` down to a group version, `/version`, `/openapi/...`)
//!   is allowed to every principal with a policy on the connection, as the API server's
//!   own `system:discovery` role does: it tells what kinds exist, not what is in them,
//!   and no client works without it.

use serde::Serialize;
use sluice_config::SecretData;

use crate::compile::CompiledRule;
use crate::decision::{Decision, Verdict};
use crate::session::{Ruling, SessionPolicy};

/// A Kubernetes request's authorization attributes, as the API server reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeRequest {
    /// `get list watch create update patch delete deletecollection`, or a special verb
    /// (`proxy`); for non-resource requests the lower-case method.
    pub verb: String,
    /// What the request is about: a resource, or a path that is none.
    #[serde(flatten)]
    pub target: KubeTarget,
    /// `dryRun=All`: the API server runs admission and validation but persists nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum KubeTarget {
    Resource {
        /// `""` for the core group (`/api/v1`).
        api_group: String,
        api_version: String,
        /// Plural resource name (`pods`).
        resource: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        subresource: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    NonResource {
        path: String,
    },
}

impl KubeRequest {
    /// `pods/exec` for a subresource, `pods` otherwise; `None` for a non-resource path.
    pub fn resource_path(&self) -> Option<String> {
        match &self.target {
            KubeTarget::Resource {
                resource,
                subresource: Some(sub),
                ..
            } => Some(format!("{resource}/{sub}")),
            KubeTarget::Resource { resource, .. } => Some(resource.clone()),
            KubeTarget::NonResource { .. } => None,
        }
    }

    /// Whether this request reads or writes Secrets of the core group.
    pub fn is_secret(&self) -> bool {
        matches!(&self.target, KubeTarget::Resource { api_group, resource, .. }
            if api_group.is_empty() && resource == "secrets")
    }

    /// Whether only a rule naming this resource literally may cover it: Secrets, and
    /// what hands out a credential or a way into a container or node — exec, attach,
    /// port-forward, every `proxy` subresource, service account tokens. No glob and no
    /// rule without `resources` reaches them.
    pub fn needs_literal_rule(&self) -> bool {
        let KubeTarget::Resource {
            api_group,
            resource,
            subresource,
            ..
        } = &self.target
        else {
            return false;
        };
        if self.is_secret() {
            return true;
        }
        match subresource.as_deref() {
            Some("exec" | "attach" | "portforward") => resource == "pods",
            Some("proxy") => true,
            Some("token") => api_group.is_empty() && resource == "serviceaccounts",
            _ => false,
        }
    }

    /// Discovery: what API groups, versions and kinds exist, and the server's version.
    pub fn is_discovery(&self) -> bool {
        let KubeTarget::NonResource { path } = &self.target else {
            return false;
        };
        if self.verb != "get" && self.verb != "head" {
            return false;
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        matches!(
            segments.as_slice(),
            ["api"]
                | ["api", _]
                | ["apis"]
                | ["apis", _]
                | ["apis", _, _]
                | ["version"]
                | ["openapi", ..]
        )
    }
}

impl std::fmt::Display for KubeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            KubeTarget::NonResource { path } => write!(f, "{} {path}", self.verb),
            KubeTarget::Resource {
                api_group,
                namespace,
                name,
                ..
            } => {
                write!(
                    f,
                    "{} {}",
                    self.verb,
                    self.resource_path().unwrap_or_default()
                )?;
                if !api_group.is_empty() {
                    write!(f, ".{api_group}")?;
                }
                if let Some(name) = name {
                    write!(f, " {name}")?;
                }
                if let Some(namespace) = namespace {
                    write!(f, " in namespace {namespace}")?;
                }
                if self.dry_run {
                    write!(f, " (dry run)")?;
                }
                Ok(())
            }
        }
    }
}

/// A decision on a Kubernetes request, with what it lets the agent see of Secrets.
#[derive(Debug, Clone, Serialize)]
pub struct KubeVerdict {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Whether Secrets in the response keep their values: only when the rule that let the
    /// request through says `secret_data: reveal`.
    pub reveal_secret_data: bool,
}

impl SessionPolicy {
    /// Judges a Kubernetes request.
    pub fn decide_kubernetes(&self, request: &KubeRequest) -> KubeVerdict {
        let ruling = self.ruling(|rule| kube_rule_matches(rule, request));
        let described = request.to_string();
        let (decision, reveal_secret_data) = match ruling {
            // Discovery comes before approval: nobody waits for a person to list kinds.
            Ruling::Approve(_) | Ruling::None if request.is_discovery() => {
                (Decision::Allow { rules: Vec::new() }, false)
            }
            Ruling::Allow(rule) | Ruling::Approve(rule) => (
                ruling.decision(&described).expect("a rule rules"),
                rule.secret_data == SecretData::Reveal,
            ),
            Ruling::Deny(_) => (ruling.decision(&described).expect("a rule rules"), false),
            Ruling::None => {
                let reason = if request.needs_literal_rule() {
                    format!(
                        "{request} is not allowed (`{}` is reached only by a rule that names it)",
                        request.resource_path().unwrap_or_default()
                    )
                } else {
                    format!("{request} is not allowed")
                };
                (Decision::Deny { reason, rule: None }, false)
            }
        };
        KubeVerdict {
            verdict: Verdict {
                decision,
                masks: self.body_masks(),
                limits: self.limits.clone(),
            },
            reveal_secret_data,
        }
    }
}

fn kube_rule_matches(rule: &CompiledRule, request: &KubeRequest) -> bool {
    let Some(kube) = &rule.kubernetes else {
        return false;
    };
    // The old `proxy` verb (`/api/v1/proxy/...`) reaches into whatever it names: only
    // a rule that lists it.
    let verb_ok = kube.verbs.as_ref().is_none_or(|verbs| {
        verbs
            .iter()
            .any(|v| *v == request.verb || (v == "*" && request.verb != "proxy"))
    }) && (request.verb != "proxy" || kube.verbs.is_some());
    if !verb_ok {
        return false;
    }
    match &request.target {
        KubeTarget::NonResource { path } => kube
            .non_resource_urls
            .as_ref()
            .is_some_and(|urls| urls.matches(path, false)),
        KubeTarget::Resource {
            api_group,
            namespace,
            name,
            ..
        } => {
            if kube.non_resource_urls.is_some() {
                return false;
            }
            let resource = request.resource_path().unwrap_or_default();
            // Secrets only by name, never by a glob or by leaving `resources` out.
            let literal_only = request.needs_literal_rule();
            let resource_ok = match &kube.resources {
                Some(resources) => resources.matches(&resource, literal_only),
                None => !literal_only,
            };
            let group_ok = kube
                .api_groups
                .as_ref()
                .is_none_or(|groups| groups.iter().any(|g| g == "*" || g == api_group));
            // A namespace rule covers requests in those namespaces (the namespace object
            // itself included), not cluster-wide ones; a names rule covers requests that
            // name one object, not lists or creates.
            let namespace_ok = match (&kube.namespaces, namespace) {
                (None, _) => true,
                (Some(patterns), Some(namespace)) => patterns.matches(namespace, false),
                (Some(_), None) => false,
            };
            let name_ok = match (&kube.names, name) {
                (None, _) => true,
                (Some(patterns), Some(name)) => patterns.matches(name, false),
                (Some(_), None) => false,
            };
            resource_ok && group_ok && namespace_ok && name_ok
        }
    }
}
