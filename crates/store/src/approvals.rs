//! What the store keeps of just-in-time approval: one [`ApprovalRecord`] per request an
//! `approve` rule made, with the [`ApprovalDecision`]s approvers gave it.
//!
//! The store is where a request's state changes, and every change is one conditional
//! update in one transaction: a decision is recorded only while the request is pending,
//! a ticket is redeemed only once, a withdrawal or an expiry only wins over a decision
//! that has not been recorded yet. So two gateway instances, or an approver and the
//! expiry sweeper, never both think they decided the same request. Who may approve
//! (approvers, no self-approval, human principals) is the approvals broker's to judge;
//! the store only refuses a second decision by the same approver.
//!
//! Times are microseconds since the Unix epoch.

use sluice_core::{ApprovalMode, ApprovalStatus, Principal, Subjects, Verdict};

/// One approval request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// `apr_` and random characters; what the agent is told and approvers name.
    pub id: String,
    pub mode: ApprovalMode,
    pub status: ApprovalStatus,
    /// Who asked: the agent's principal as its session had it.
    pub requester: Principal,
    /// The connection the statement was for.
    pub connection: String,
    /// The protocol's name as the audit trail spells it (`postgres`).
    pub protocol: String,
    /// The requesting session's id in the audit trail, when it is recorded.
    pub session_id: Option<String>,
    /// The statement (or request) as the agent sent it.
    pub statement: String,
    /// Values bound to its parameters (extended protocol), `None` for NULL.
    pub parameters: Vec<Option<String>>,
    /// What a ticket is redeemed against: the normalized statement and its parameters,
    /// hashed. Equal for the same statement whatever its spacing, case or comments.
    pub fingerprint: String,
    /// Why approval is needed, as the agent was told (`delete on public.orders requires
    /// approval`).
    pub reason: String,
    /// The rule that asked for approval (`policy operations, approve rule 1`).
    pub rule: String,
    /// Who may approve.
    pub approvers: Subjects,
    /// Approvals needed (at least 1); one denial ends the request.
    pub min_approvals: u32,
    pub requested_at: i64,
    /// Decisions are taken until then; a request still pending after it is expired.
    pub expires_at: i64,
    /// Ticket mode: how long an approved ticket stays redeemable, from its approval.
    pub grant_window: Option<i64>,
    /// Ticket mode, once approved: redeemable until then.
    pub grant_expires_at: Option<i64>,
    /// When the request left `pending`.
    pub resolved_at: Option<i64>,
    /// Ticket mode: when the statement ran under it.
    pub redeemed_at: Option<i64>,
    /// Every decision recorded for it, in the order they were recorded.
    pub decisions: Vec<ApprovalDecision>,
}

/// One approver's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    pub approver: Principal,
    pub verdict: Verdict,
    /// Why, in the approver's words (required: every decision carries a reason).
    pub reason: String,
    pub at: i64,
}

/// Which requests [`Store::list_approvals`](crate::Store::list_approvals) returns, newest
/// first; fields left `None` match all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    pub connection: Option<String>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

/// What [`Store::decide_approval`](crate::Store::decide_approval) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// The decision is recorded; the request as it stands now: `approved` once
    /// `min_approvals` distinct approvers approved (a ticket's grant window starts then),
    /// `denied` on a denial, else still `pending`.
    Recorded(ApprovalRecord),
    /// No request has this id.
    NotFound,
    /// The request is no longer pending (as it stands, given back); nothing was recorded.
    /// A request found pending past its `expires_at` is marked `expired` first and given
    /// back here.
    NotPending(ApprovalRecord),
    /// This approver (same provider and subject) has already decided; nothing recorded.
    AlreadyDecided(ApprovalRecord),
}

/// How a pending request leaves `pending` when a decision is recorded on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolution {
    pub(crate) status: ApprovalStatus,
    pub(crate) resolved_at: i64,
    /// Ticket mode, once approved: `resolved_at` plus the grant window.
    pub(crate) grant_expires_at: Option<i64>,
}

impl ApprovalRecord {
    /// Whether this approver (same provider and subject) has decided already.
    pub(crate) fn decided_by(&self, approver: &Principal) -> bool {
        self.decisions
            .iter()
            .any(|d| same_person(&d.approver, approver))
    }

    /// What recording `decision` on this pending request does to its status, the same in
    /// both stores: `denied` on a denial; `approved` once `min_approvals` distinct
    /// approvers (provider and subject) approved, a ticket's grant window starting then;
    /// `None` while it stays pending.
    pub(crate) fn resolution(&self, decision: &ApprovalDecision) -> Option<Resolution> {
        let at = decision.at;
        match decision.verdict {
            Verdict::Deny => Some(Resolution {
                status: ApprovalStatus::Denied,
                resolved_at: at,
                grant_expires_at: None,
            }),
            Verdict::Approve => {
                let mut approvers: Vec<&Principal> = Vec::new();
                let approvals = self
                    .decisions
                    .iter()
                    .filter(|d| d.verdict == Verdict::Approve)
                    .map(|d| &d.approver)
                    .chain([&decision.approver]);
                for approver in approvals {
                    if !approvers.iter().any(|a| same_person(a, approver)) {
                        approvers.push(approver);
                    }
                }
                let enough = u32::try_from(approvers.len()).unwrap_or(u32::MAX);
                (enough >= self.min_approvals).then(|| Resolution {
                    status: ApprovalStatus::Approved,
                    resolved_at: at,
                    grant_expires_at: match self.mode {
                        ApprovalMode::Ticket => {
                            self.grant_window.map(|window| at.saturating_add(window))
                        }
                        ApprovalMode::Hold => None,
                    },
                })
            }
        }
    }
}

/// One approver, as the store tells approvers apart: by provider and subject.
fn same_person(a: &Principal, b: &Principal) -> bool {
    a.provider == b.provider && a.subject == b.subject
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::PrincipalKind;

    fn principal(provider: &str, subject: &str) -> Principal {
        Principal {
            provider: provider.into(),
            subject: subject.into(),
            tenant_id: None,
            display_name: subject.into(),
            kind: PrincipalKind::User,
            roles: vec![],
            groups: vec![],
            token_id: None,
            expires_at: None,
        }
    }

    fn decision(provider: &str, subject: &str, verdict: Verdict, at: i64) -> ApprovalDecision {
        ApprovalDecision {
            approver: principal(provider, subject),
            verdict,
            reason: "because".into(),
            at,
        }
    }

    fn request(
        mode: ApprovalMode,
        min_approvals: u32,
        grant_window: Option<i64>,
    ) -> ApprovalRecord {
        ApprovalRecord {
            id: "apr_1".into(),
            mode,
            status: ApprovalStatus::Pending,
            requester: principal("entra", "agent"),
            connection: "c".into(),
            protocol: "postgres".into(),
            session_id: None,
            statement: "DELETE FROM t".into(),
            parameters: vec![],
            fingerprint: "fp".into(),
            reason: "r".into(),
            rule: "rule".into(),
            approvers: Subjects::default(),
            min_approvals,
            requested_at: 0,
            expires_at: 100,
            grant_window,
            grant_expires_at: None,
            resolved_at: None,
            redeemed_at: None,
            decisions: vec![],
        }
    }

    #[test]
    fn approvals_are_counted_by_distinct_provider_and_subject() {
        let mut r = request(ApprovalMode::Hold, 3, None);
        // The same approver twice (which the store never records) counts once.
        r.decisions = vec![
            decision("entra", "alice", Verdict::Approve, 1),
            decision("entra", "alice", Verdict::Approve, 2),
        ];
        assert_eq!(
            r.resolution(&decision("entra", "alice", Verdict::Approve, 3)),
            None
        );
        assert_eq!(
            r.resolution(&decision("okta", "bob", Verdict::Approve, 3)),
            None
        );
        r.decisions
            .push(decision("okta", "alice", Verdict::Approve, 3));
        assert_eq!(
            r.resolution(&decision("entra", "bob", Verdict::Approve, 4)),
            Some(Resolution {
                status: ApprovalStatus::Approved,
                resolved_at: 4,
                grant_expires_at: None,
            })
        );
        assert!(r.decided_by(&principal("okta", "alice")));
        assert!(!r.decided_by(&principal("okta", "bob")));
    }

    #[test]
    fn a_denial_resolves_at_once_and_a_grant_window_cannot_overflow() {
        let r = request(ApprovalMode::Ticket, 5, Some(i64::MAX));
        assert_eq!(
            r.resolution(&decision("entra", "bob", Verdict::Deny, 7)),
            Some(Resolution {
                status: ApprovalStatus::Denied,
                resolved_at: 7,
                grant_expires_at: None,
            })
        );
        let r = request(ApprovalMode::Ticket, 1, Some(i64::MAX));
        assert_eq!(
            r.resolution(&decision("entra", "bob", Verdict::Approve, 7))
                .and_then(|res| res.grant_expires_at),
            Some(i64::MAX)
        );
    }
}
