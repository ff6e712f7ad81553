//! Judging: accesses in, a decision out.
//!
//! [`SessionPolicy::judge`] is the protocol-neutral core: every access must pass. It is
//! refused if a deny rule matches any access; allowed if allow rules cover every access;
//! held if what allow rules leave uncovered, approve rules cover; refused otherwise.
//! [`SessionPolicy::decide_statement`] adds what SQL needs on top: transaction control is
//! always allowed, `EXECUTE` needs the session's knowledge of its `PREPARE`, a statement
//! that would carry a masked column out unmasked is refused ([`crate::masking`]), and the
//! masks that apply to the tables a statement reads come with the verdict.

use sluice_core::{Access, Action, Object};
use sluice_sql::StatementClass;

use crate::compile::CompiledRule;
use crate::decision::{Approval, Decision, MaskSpec, Section, Verdict};
use crate::session::SessionPolicy;

impl SessionPolicy {
    /// Judges a set of accesses (one statement's, one HTTP request's).
    pub fn judge(&self, accesses: &[Access]) -> Decision {
        // Deny rules first: they win over everything. An access to an object the
        // classifier cannot name "possibly" matches deny rules that name objects; that
        // refuses it only if something would otherwise let it through, so the reason
        // given is the true one.
        let mut possible_denial: Vec<(&Access, &CompiledRule)> = Vec::new();
        for access in accesses {
            let access = &Named::of(access);
            for rule in self.policies.iter().flat_map(|p| p.deny.iter()) {
                match deny_matches(rule, access) {
                    Match::Yes => {
                        return Decision::Deny {
                            reason: format!("{} is denied", access.access),
                            rule: Some(rule.at.clone()),
                        }
                    }
                    Match::Possibly => possible_denial.push((access.access, rule)),
                    Match::No => {}
                }
            }
        }
        if let Some((access, rule)) = possible_denial
            .into_iter()
            .find(|(access, _)| self.covered(access))
        {
            return Decision::Deny {
                reason: format!(
                    "{access} may touch an object a deny rule names, and the gateway cannot tell which object it touches"
                ),
                rule: Some(rule.at.clone()),
            };
        }
        let mut allowed_by = Vec::new();
        let mut uncovered = Vec::new();
        for access in accesses {
            if is_free_setting(access) {
                continue;
            }
            let named = Named::of(access);
            let rule = self
                .policies
                .iter()
                .flat_map(|p| p.allow.iter())
                .find(|r| rule_matches(r, &named, Section::Allow));
            match rule {
                Some(rule) => {
                    if !allowed_by.contains(&rule.at) {
                        allowed_by.push(rule.at.clone());
                    }
                }
                None => uncovered.push(access),
            }
        }
        if uncovered.is_empty() {
            return Decision::Allow { rules: allowed_by };
        }
        let mut approval: Option<Approval> = None;
        for access in &uncovered {
            let named = Named::of(access);
            let rule = self
                .policies
                .iter()
                .flat_map(|p| p.approve.iter())
                .find(|r| rule_matches(r, &named, Section::Approve));
            match rule {
                Some(rule) => {
                    let this = rule
                        .approval
                        .as_ref()
                        .expect("approve rules carry an approval");
                    match &approval {
                        None => approval = Some(this.clone()),
                        // One approval under one rule's approvers must not carry what
                        // another rule keeps for its own (other approvers, more of them).
                        Some(first) if first.rule != this.rule => {
                            return Decision::Deny {
                                reason: format!(
                                    "this statement needs approval under two rules ({} for one part, {} for {access}); split it so each is approved by its own approvers",
                                    first.rule, this.rule
                                ),
                                rule: Some(this.rule.clone()),
                            }
                        }
                        Some(_) => {}
                    }
                }
                None => {
                    return Decision::Deny {
                        reason: refusal(access),
                        rule: None,
                    }
                }
            }
        }
        let approval = approval.expect("at least one uncovered access");
        let what = uncovered
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Decision::Approve {
            reason: format!("{what} requires approval"),
            approval,
        }
    }

    /// Whether an allow or approve rule covers `access`.
    fn covered(&self, access: &Access) -> bool {
        let access = &Named::of(access);
        self.policies.iter().any(|p| {
            p.allow
                .iter()
                .any(|r| rule_matches(r, access, Section::Allow))
                || p.approve
                    .iter()
                    .any(|r| rule_matches(r, access, Section::Approve))
        })
    }

    /// Judges one classified SQL statement.
    pub fn decide_statement(&self, statement: &StatementClass) -> Verdict {
        let decision = self.decide(statement);
        let masks = if decision.is_deny() {
            Vec::new()
        } else {
            self.masks_for(&statement.accesses)
        };
        Verdict {
            decision,
            masks,
            limits: self.limits.clone(),
        }
    }

    /// The decision alone, for a data path that has its session's masks and limits
    /// already (the PostgreSQL relay, once per statement): what
    /// [`decide_statement`](Self::decide_statement) decides, without collecting the masks
    /// that apply or copying the limits.
    pub fn decide(&self, statement: &StatementClass) -> Decision {
        let decision = if let Some(name) = &statement.executes {
            Decision::Deny {
                reason: format!("EXECUTE {name} runs a statement prepared earlier in the session; it cannot be judged on its own"),
                rule: None,
            }
        } else if statement.is_transaction_control() {
            Decision::Allow { rules: Vec::new() }
        } else if statement.accesses.is_empty() {
            // `SELECT 1`, `VALUES (...)`: a read of nothing, allowed by any select rule.
            self.judge(&[Access::new(Action::Select, Object::None)])
        } else {
            self.judge(&statement.accesses)
        };
        // Masking refuses what rules would allow or hold: an approver cannot unmask.
        match decision {
            Decision::Deny { .. } => decision,
            _ => self.mask_refusal(statement).unwrap_or(decision),
        }
    }

    /// The masks that can apply to what these accesses return: column masks whose table
    /// part matches a table read, every detector mask, and no JSON masks (those are for
    /// HTTP responses).
    pub fn masks_for(&self, accesses: &[Access]) -> Vec<MaskSpec> {
        let tables: Vec<String> = accesses
            .iter()
            .filter_map(|a| match (&a.action, &a.object) {
                (Action::Select | Action::CopyOut, Object::Table(n)) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        self.masks()
            .filter(|m| m.applies_to(&tables))
            .map(|m| m.spec.clone())
            .collect()
    }
}

/// `SET`/`SHOW` of a formatting parameter: allowed without a rule (deny rules still apply).
fn is_free_setting(access: &Access) -> bool {
    matches!((&access.action, &access.object), (Action::Set, Object::Setting(name)) if !access.explicit_only && crate::session_settings::is_format_setting(name))
}

/// The reason given when nothing allows an access.
fn refusal(access: &Access) -> String {
    match (&access.object, access.explicit_only) {
        (Object::Function(name), true) => format!("calling {name} needs a rule that names it"),
        (Object::Setting(name), true) => format!("SET {name} needs a rule that names it"),
        (Object::None, _) if access.action == Action::Select => {
            "no rule allows reading".to_string()
        }
        _ => format!("{access} is not allowed"),
    }
}

enum Match {
    Yes,
    Possibly,
    No,
}

/// An access with its object's name as patterns see it (`schema.table`), written once
/// per access rather than once per rule it is held against.
struct Named<'a> {
    access: &'a Access,
    /// Empty for objects without a name.
    name: std::borrow::Cow<'a, str>,
}

impl<'a> Named<'a> {
    fn of(access: &'a Access) -> Self {
        let name = match &access.object {
            Object::Table(name) | Object::Function(name) => name.to_string().into(),
            Object::Setting(name) => name.as_str().into(),
            _ => "".into(),
        };
        Named { access, name }
    }
}

/// Whether a deny rule applies to `access`: [`rule_matches`], except that an unknown
/// object only possibly matches a rule that names objects.
fn deny_matches(rule: &CompiledRule, access: &Named<'_>) -> Match {
    if let Object::Unknown(_) = access.access.object {
        if rule.is_sql
            && rule.has_object_constraints()
            && rule
                .actions
                .as_ref()
                .is_none_or(|a| a.contains(&access.access.action))
        {
            return Match::Possibly;
        }
    }
    if rule_matches(rule, access, Section::Deny) {
        Match::Yes
    } else {
        Match::No
    }
}

/// Whether `rule` (in `section`) applies to `access`.
///
/// - An access to a table needs the action listed and, if the rule lists tables, a
///   matching table; a rule without `actions` (deny only) applies to every action but
///   only to the objects it names.
/// - Functions, procedures and settings follow the same shape with `functions` and
///   `settings`; a rule with `functions` and no `actions` is a rule about calling them.
///   Accesses marked explicit-only are covered only by a pattern that spells their name.
/// - An unknown object is covered by allow and approve rules only if they restrict no
///   object; deny rules that name objects treat it as possibly theirs (fail closed).
/// - An access to nothing (`SELECT 1`, `DO`) needs the action only; deny rules that name
///   objects do not apply to it.
fn rule_matches(rule: &CompiledRule, named: &Named<'_>, section: Section) -> bool {
    if !rule.is_sql {
        return false;
    }
    let access = named.access;
    let explicit = access.explicit_only;
    let action_listed = |implied: bool| match &rule.actions {
        Some(actions) => actions.contains(&access.action),
        None => implied,
    };
    match &access.object {
        Object::Table(_) => {
            action_listed(rule.tables.is_some())
                && rule
                    .tables
                    .as_ref()
                    .map_or(!explicit, |p| p.matches(&named.name, explicit))
        }
        Object::Function(_) => {
            action_listed(rule.functions.is_some())
                && rule
                    .functions
                    .as_ref()
                    .map_or(!explicit, |p| p.matches(&named.name, explicit))
        }
        Object::Setting(_) => {
            action_listed(rule.settings.is_some())
                && rule
                    .settings
                    .as_ref()
                    .map_or(!explicit, |p| p.matches(&named.name, explicit))
        }
        Object::Unknown(_) => match section {
            Section::Deny => action_listed(true),
            Section::Allow | Section::Approve => {
                action_listed(false) && !rule.has_object_constraints()
            }
            Section::Mask => false,
        },
        Object::None => match section {
            Section::Deny => action_listed(false) && !rule.has_object_constraints(),
            Section::Allow | Section::Approve => action_listed(false),
            Section::Mask => false,
        },
    }
}
