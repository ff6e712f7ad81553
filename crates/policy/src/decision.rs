//! What the engine answers.

use std::time::Duration;

use serde::Serialize;
use sluice_config::{ApprovalMode, Detector, MaskStrategy, Subjects};

/// Which list of a policy a rule sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Allow,
    Deny,
    Approve,
    /// A mask rule refuses statements that would carry its column out unmasked.
    Mask,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Allow => "allow",
            Section::Deny => "deny",
            Section::Approve => "approve",
            Section::Mask => "mask",
        }
    }
}

/// A rule by its place: policy name, section, 1-based index in the section, and the line
/// of the config file it starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: String,
    pub section: Section,
    pub index: usize,
    pub line: u32,
}

impl std::fmt::Display for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "policy {}, {} rule {}",
            self.policy,
            self.section.as_str(),
            self.index
        )
    }
}

/// How an `approve` decision is to be carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    pub rule: RuleRef,
    pub approvers: Subjects,
    pub mode: ApprovalMode,
    #[serde(with = "secs")]
    pub timeout: Duration,
    pub min_approvals: u32,
}

/// The decision for one statement or request.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    /// Run it. `rules` are the allow rules that covered its accesses (empty for transaction
    /// control, which is always allowed).
    Allow { rules: Vec<RuleRef> },
    /// Refuse it, with a reason for the client and the deciding rule (`None` when no rule
    /// allowed it: the default deny).
    Deny {
        reason: String,
        rule: Option<RuleRef>,
    },
    /// Hold it for a human, or refuse it with a ticket.
    Approve { reason: String, approval: Approval },
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    pub fn is_deny(&self) -> bool {
        matches!(self, Decision::Deny { .. })
    }

    /// The message a refused client sees: the reason and, when a rule decided, which one
    /// (`... (policy readers, deny rule 1)`).
    pub fn client_message(&self) -> Option<String> {
        match self {
            Decision::Allow { .. } => None,
            Decision::Deny {
                reason,
                rule: Some(rule),
            } => Some(format!("{reason} ({rule})")),
            Decision::Deny { reason, rule: None } => {
                Some(format!("{reason} (no policy rule allows it)"))
            }
            Decision::Approve { reason, approval } => Some(format!("{reason} ({})", approval.rule)),
        }
    }
}

/// A mask that applies to what a statement returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MaskSpec {
    /// Result columns matching `column` (`schema.table.column`, globs) are masked.
    Column {
        column: String,
        with: MaskStrategy,
        policy: String,
    },
    /// Values found by the detectors are masked wherever they appear.
    Detect {
        detectors: Vec<Detector>,
        with: MaskStrategy,
        policy: String,
    },
    /// JSON response bodies: values at `path` are masked.
    Json {
        path: String,
        with: MaskStrategy,
        policy: String,
    },
}

/// The most restrictive limits of all matching policies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EffectiveLimits {
    pub max_rows: Option<u64>,
    #[serde(with = "opt_secs")]
    pub statement_timeout: Option<Duration>,
}

/// The decision with what comes with it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub decision: Decision,
    pub masks: Vec<MaskSpec>,
    pub limits: EffectiveLimits,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}
