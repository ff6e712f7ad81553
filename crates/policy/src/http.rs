//! Judging HTTP requests (`kind: http` connections): a method and a decoded path against
//! `methods` and `paths` rules, with the same order as every other judgement: any deny
//! rule refuses; else an allow rule lets it through; else an approve rule holds it; else
//! it is refused. The protocol crate reads the request (and refuses what it cannot read
//! unambiguously) before it gets here; this knows no wire format.

use crate::compile::CompiledRule;
use crate::decision::{Decision, Verdict};
use crate::session::SessionPolicy;

impl SessionPolicy {
    /// Judges `method` (upper case) on `path` (decoded, starting with `/`).
    pub fn decide_http(&self, method: &str, path: &str) -> Verdict {
        let request = format!("{method} {path}");
        let decision = self
            .ruling(|rule| http_rule_matches(rule, method, path))
            .decision(&request)
            .unwrap_or_else(|| Decision::Deny {
                reason: format!("{request} is not allowed"),
                rule: None,
            });
        Verdict {
            decision,
            masks: self.body_masks(),
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
