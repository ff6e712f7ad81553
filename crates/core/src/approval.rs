//! The vocabulary of just-in-time approval, shared by the config (rules name approvers and
//! a mode), the policy engine (an `approve` decision carries them), the store (requests and
//! decisions at rest) and the approvals broker.

use serde::{Deserialize, Serialize};

use crate::Principal;

/// A set of principals by subject, role or group (any one suffices): who may approve, or
/// who administers the gateway.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Subjects {
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.roles.is_empty() && self.groups.is_empty()
    }

    /// Whether `principal` is one of them: its subject is named, or it holds a named role
    /// or group.
    pub fn contains(&self, principal: &Principal) -> bool {
        self.subjects.contains(&principal.subject)
            || self.roles.iter().any(|r| principal.has_role(r))
            || self.groups.iter().any(|g| principal.in_group(g))
    }
}

/// How an `approve` decision is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    /// The statement waits for a decision.
    Hold,
    /// Refused at once; once approved, the same principal may run exactly that statement
    /// once within the grant window.
    Ticket,
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Hold => "hold",
            ApprovalMode::Ticket => "ticket",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hold" => Some(ApprovalMode::Hold),
            "ticket" => Some(ApprovalMode::Ticket),
            _ => None,
        }
    }
}

/// Where an approval request stands. `Pending` is the only state a request leaves by a
/// decision; every other state is final, except that an approved ticket becomes
/// `Redeemed` when its statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Enough approvers approved. A held statement runs; a ticket may be redeemed within
    /// its grant window.
    Approved,
    /// An approver denied it.
    Denied,
    /// No decision within the rule's timeout.
    Expired,
    /// The requesting session went away while it waited (hold mode).
    Withdrawn,
    /// An approved ticket was used: its statement ran.
    Redeemed,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 6] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
        ApprovalStatus::Withdrawn,
        ApprovalStatus::Redeemed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Withdrawn => "withdrawn",
            ApprovalStatus::Redeemed => "redeemed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Verdict::Approve),
            "deny" => Some(Verdict::Deny),
            _ => None,
        }
    }
}
