//! The policies of one principal on one connection, fixed when the session starts.
//!
//! Sessions judge many statements under the same identity, so matching principals to
//! policies happens once here and each decision only walks the rules that apply.

use std::sync::Arc;

use crate::compile::{CompiledMask, CompiledPolicy, CompiledRule};
use crate::decision::{Decision, EffectiveLimits, MaskSpec};

/// What applies to one session.
#[derive(Debug, Clone, Default)]
pub struct SessionPolicy {
    pub policies: Vec<Arc<CompiledPolicy>>,
    pub limits: EffectiveLimits,
}

impl SessionPolicy {
    pub fn new(policies: Vec<Arc<CompiledPolicy>>) -> Self {
        let limits = policies
            .iter()
            .fold(EffectiveLimits::default(), |acc, p| EffectiveLimits {
                max_rows: min_some(acc.max_rows, p.limits.max_rows),
                statement_timeout: min_some(acc.statement_timeout, p.limits.statement_timeout),
            });
        SessionPolicy { policies, limits }
    }

    /// No policy applies: every request will be refused. Protocols refuse the session at
    /// login with this, rather than let it in to fail on every statement.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn policy_names(&self) -> Vec<&str> {
        self.policies.iter().map(|p| p.name.as_str()).collect()
    }

    /// Every mask of every applicable policy.
    pub fn masks(&self) -> impl Iterator<Item = &CompiledMask> {
        self.policies.iter().flat_map(|p| p.masks.iter())
    }

    /// The masks a response body gets (HTTP, Kubernetes): JSON paths and detectors of
    /// every applicable policy.
    pub(crate) fn body_masks(&self) -> Vec<MaskSpec> {
        self.masks()
            .map(|m| m.spec.clone())
            .filter(|spec| matches!(spec, MaskSpec::Json { .. } | MaskSpec::Detect { .. }))
            .collect()
    }

    /// The rule that rules a request, in the order every judgement follows: the first deny
    /// rule that `matches`, else the first allow rule, else the first approve rule.
    pub(crate) fn ruling(&self, matches: impl Fn(&CompiledRule) -> bool) -> Ruling<'_> {
        let first = |rules: fn(&CompiledPolicy) -> &[CompiledRule]| {
            self.policies
                .iter()
                .flat_map(|p| rules(p).iter())
                .find(|r| matches(r))
        };
        if let Some(rule) = first(|p| &p.deny) {
            Ruling::Deny(rule)
        } else if let Some(rule) = first(|p| &p.allow) {
            Ruling::Allow(rule)
        } else if let Some(rule) = first(|p| &p.approve) {
            Ruling::Approve(rule)
        } else {
            Ruling::None
        }
    }
}

/// Which rule rules a request (see [`SessionPolicy::ruling`]).
pub(crate) enum Ruling<'a> {
    Deny(&'a CompiledRule),
    Allow(&'a CompiledRule),
    Approve(&'a CompiledRule),
    None,
}

impl Ruling<'_> {
    /// The decision, with `request` (as the reasons name it) for the messages; `None`
    /// leaves the no-rule case to the caller.
    pub(crate) fn decision(&self, request: &str) -> Option<Decision> {
        Some(match self {
            Ruling::Deny(rule) => Decision::Deny {
                reason: format!("{request} is denied"),
                rule: Some(rule.at.clone()),
            },
            Ruling::Allow(rule) => Decision::Allow {
                rules: vec![rule.at.clone()],
            },
            Ruling::Approve(rule) => Decision::Approve {
                reason: format!("{request} requires approval"),
                approval: rule
                    .approval
                    .clone()
                    .expect("approve rules carry an approval"),
            },
            Ruling::None => return None,
        })
    }
}

fn min_some<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
