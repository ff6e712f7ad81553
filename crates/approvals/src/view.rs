//! The JSON shape of an approval request, with stable field names (DESIGN.md §1): what
//! `GET /api/v1/approvals` returns, what `sluice approvals ... --json` prints, and the
//! `approval` object of every webhook.

use serde::{Deserialize, Serialize};
use sluice_core::{ApprovalMode, ApprovalStatus, Principal, Subjects, Verdict};
use sluice_store::{ApprovalDecision, ApprovalRecord};

/// One approval request as people and tools see it. Times are RFC 3339 in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub id: String,
    pub status: ApprovalStatus,
    pub mode: ApprovalMode,
    /// Who asked.
    pub principal: PrincipalView,
    pub connection: String,
    pub protocol: String,
    pub session_id: Option<String>,
    pub statement: String,
    pub parameters: Vec<Option<String>>,
    /// Why approval is needed.
    pub reason: String,
    pub rule: String,
    pub approvers: Subjects,
    pub min_approvals: u32,
    /// Approvals recorded so far.
    pub approvals: u32,
    pub requested_at: String,
    /// Decisions are taken until then.
    pub expires_at: String,
    /// Ticket mode, once approved: the statement may be run once until then.
    pub grant_expires_at: Option<String>,
    pub resolved_at: Option<String>,
    pub redeemed_at: Option<String>,
    pub decisions: Vec<DecisionView>,
    /// Where an approver reads and decides it.
    pub console_url: String,
}

/// Who asked or who decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalView {
    pub provider: String,
    pub subject: String,
    pub display_name: String,
}

impl From<&Principal> for PrincipalView {
    fn from(p: &Principal) -> Self {
        PrincipalView {
            provider: p.provider.clone(),
            subject: p.subject.clone(),
            display_name: p.display_name.clone(),
        }
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionView {
    pub approver: PrincipalView,
    pub verdict: Verdict,
    pub reason: String,
    pub at: String,
}

impl From<&ApprovalDecision> for DecisionView {
    fn from(d: &ApprovalDecision) -> Self {
        DecisionView {
            approver: (&d.approver).into(),
            verdict: d.verdict,
            reason: d.reason.clone(),
            at: rfc3339(d.at),
        }
    }
}

impl ApprovalView {
    pub fn new(record: &ApprovalRecord, console_url: String) -> Self {
        ApprovalView {
            id: record.id.clone(),
            status: record.status,
            mode: record.mode,
            principal: (&record.requester).into(),
            connection: record.connection.clone(),
            protocol: record.protocol.clone(),
            session_id: record.session_id.clone(),
            statement: record.statement.clone(),
            parameters: record.parameters.clone(),
            reason: record.reason.clone(),
            rule: record.rule.clone(),
            approvers: record.approvers.clone(),
            min_approvals: record.min_approvals,
            approvals: record
                .decisions
                .iter()
                .filter(|d| d.verdict == Verdict::Approve)
                .count() as u32,
            requested_at: rfc3339(record.requested_at),
            expires_at: rfc3339(record.expires_at),
            grant_expires_at: record.grant_expires_at.map(rfc3339),
            resolved_at: record.resolved_at.map(rfc3339),
            redeemed_at: record.redeemed_at.map(rfc3339),
            decisions: record.decisions.iter().map(DecisionView::from).collect(),
            console_url,
        }
    }
}

/// Microseconds since the epoch as RFC 3339, as the audit trail writes times.
pub fn rfc3339(unix_micros: i64) -> String {
    match sluice_audit::Timestamp::from_unix_micros(unix_micros) {
        Ok(at) => at.to_string(),
        Err(_) => unix_micros.to_string(),
    }
}
