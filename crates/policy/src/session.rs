//! The policies of one principal on one connection, fixed when the session starts.
//!
//! Sessions judge many statements under the same identity, so matching principals to
//! policies happens once here and each decision only walks the rules that apply.

use std::sync::Arc;

use crate::compile::{CompiledMask, CompiledPolicy};
use crate::decision::EffectiveLimits;

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
}

fn min_some<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
