//! What a session records of an approval it asked for: each decision as an
//! `approval_decided` event and how it ended as `approval_resolved`, the same for every
//! protocol (see `sluice_audit::ApprovalDecided`).

use sluice_audit::{ApprovalDecided, ApprovalResolved, Timestamp};
use sluice_store::ApprovalRecord;

/// The events that record `approval`'s decisions and outcome, in order.
pub fn outcome_events(approval: &ApprovalRecord) -> (Vec<ApprovalDecided>, ApprovalResolved) {
    let decisions = approval
        .decisions
        .iter()
        .map(|d| ApprovalDecided {
            approval_id: approval.id.clone(),
            approver: (&d.approver).into(),
            verdict: d.verdict,
            reason: d.reason.clone(),
            // Times the broker took from the clock are always in range.
            decided_at: Timestamp::from_unix_micros(d.at.max(0))
                .or_else(|_| Timestamp::from_unix_micros(0))
                .expect("the epoch is a timestamp"),
        })
        .collect();
    let resolved = ApprovalResolved {
        approval_id: approval.id.clone(),
        status: approval.status,
    };
    (decisions, resolved)
}
