//! Judging HTTP requests (`kind: http` connections): a method and a decoded path against
//! `methods` and `paths` rules, with the same order as every other judgement: any deny
//! rule refuses; else an allow rule lets it through; else an approve rule holds it; else
//! it is refused. The protocol crate reads the request (and refuses what it cannot read
//! unambiguously) before it gets here; this knows no wire format.

use crate::compile::CompiledRule;
use crate::decision::{Decision, MaskSpec, Section, Verdict};
use crate::session::SessionPolicy;

impl SessionPolicy {
    /// Judges `method` (upper case) on `path` (decoded, starting with `/`).
    pub fn decide_http(&self, method: &str, path: &str) -> Verdict {
        let request = format!("{method} {path}");
        let rules = |section: Section| {
            self.policies
                .iter()
                .flat_map(move |p| match section {
                    Section::Allow => p.allow.iter(),
                    Section::Deny => p.deny.iter(),
                    _ => p.approve.iter(),
                })
                .filter(move |r| http_rule_matches(r, method, path))
        };
        let decision = if let Some(rule) = rules(Section::Deny).next() {
            Decision::Deny {
                reason: format!("{request} is denied"),
                rule: Some(rule.at.clone()),
            }
        } else if let Some(rule) = rules(Section::Allow).next() {
            Decision::Allow {
                rules: vec![rule.at.clone()],
            }
        } else if let Some(rule) = rules(Section::Approve).next() {
            Decision::Approve {
                reason: format!("{request} requires approval"),
                approval: rule
                    .approval
                    .clone()
                    .expect("approve rules carry an approval"),
            }
        } else {
            Decision::Deny {
                reason: format!("{request} is not allowed"),
                rule: None,
            }
        };
        // Response bodies: JSON paths and detectors of every applicable policy.
        let masks = self
            .masks()
            .map(|m| m.spec.clone())
            .filter(|spec| matches!(spec, MaskSpec::Json { .. } | MaskSpec::Detect { .. }))
            .collect();
        Verdict {
            decision,
            masks,
            limits: self.limits.clone(),
        }
    }
}

fn http_rule_matches(rule: &CompiledRule, method: &str, path: &str) -> bool {
    rule.is_http
        && rule
            .methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m == method))
        && rule
            .paths
            .as_ref()
            .is_none_or(|paths| paths.matches(path, false))
}
