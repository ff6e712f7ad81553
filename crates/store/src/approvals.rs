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
