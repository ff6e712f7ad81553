//! What can go wrong asking for, waiting on or deciding an approval.

use sluice_core::ApprovalStatus;

/// The broker could not do what it was asked; the store's error says which operation
/// failed and whether the store is unavailable (callers fail closed on either).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
    #[error("approval {0} does not exist")]
    NotFound(String),
    /// The requester already has as many requests pending as it may.
    #[error(transparent)]
    Limit(#[from] sluice_limits::LimitExceeded),
}

impl BrokerError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, BrokerError::Store(e) if e.is_unavailable())
    }
}

/// Why a decision was not recorded. Each maps onto an HTTP status in the admin API.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("approval {0} does not exist")]
    NotFound(String),
    /// The caller may not decide this request (not an approver, their own request, not a
    /// person).
    #[error("{0}")]
    Forbidden(String),
    /// The request is no longer pending, or this approver already decided.
    #[error("approval {id} is {status}; {what}")]
    Conflict {
        id: String,
        status: ApprovalStatus,
        what: String,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
}
