//! Approvals (DESIGN.md §5) over HTTP: `GET /api/v1/approvals` (list),
//! `GET /api/v1/approvals/{id}`, and `POST /api/v1/approvals/{id}/approve` or `/deny`
//! with `{"reason": "..."}`.
//!
//! Any authenticated principal may call these; what they see is what concerns them: the
//! requests they may decide (the rule's `approvers` name them), the requests they made,
//! and, for admins, all. Whether a decision may be made (a person, an approver, not their
//! own request) is the broker's to judge, for every interface alike.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use sluice_approvals::broker::may_see;
use sluice_approvals::{ApprovalView, Broker, BrokerError, DecideError};
use sluice_core::{ApprovalStatus, Verdict};
use sluice_store::ApprovalFilter;

use crate::auth::caller;
use crate::{AdminState, ApiError};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `pending` (what waits for a decision), `approved`, ..., or `all`; default `all`.
    status: Option<String>,
    connection: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    reason: String,
}

fn broker(state: &AdminState) -> Result<&Arc<Broker>, ApiError> {
    state
        .approvals
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("approvals are not running on this gateway".into()))
}

fn store_error(e: BrokerError) -> ApiError {
    match e {
        BrokerError::Store(e) => ApiError::Store(e),
        BrokerError::NotFound(id) => ApiError::NotFound(format!("approval {id} does not exist")),
        BrokerError::Limit(e) => ApiError::Conflict(e.to_string()),
    }
}

pub async fn list(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ApprovalView>>, ApiError> {
    let viewer = caller(&state, &headers).await?;
    let broker = broker(&state)?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status `{s}`: expected all, pending, approved, denied, expired, withdrawn or redeemed"
            ))
        })?),
    };
    let is_admin = state.admins.admits(&viewer);
    let limit = query.limit.unwrap_or(100).min(1000);
    // Filtered by who may see them after the store's filter: fetch more than the page so
    // a busy gateway still fills it.
    let records = broker
        .list(ApprovalFilter {
            status,
            connection: query.connection,
            limit: Some(if is_admin { limit } else { limit * 20 }),
        })
        .await
        .map_err(store_error)?;
    Ok(Json(
        records
            .iter()
            .filter(|r| may_see(&viewer, r, is_admin))
            .take(limit)
            .map(|r| broker.view(r))
            .collect(),
    ))
}

pub async fn show(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let viewer = caller(&state, &headers).await?;
    let broker = broker(&state)?;
    let is_admin = state.admins.admits(&viewer);
    match broker.get(&id).await.map_err(store_error)? {
        // Not told apart from a request that does not exist: ids are not for guessing.
        Some(record) if may_see(&viewer, &record, is_admin) => Ok(Json(broker.view(&record))),
        _ => Err(ApiError::NotFound(format!("approval {id} does not exist"))),
    }
}

pub async fn approve(
    state: State<Arc<AdminState>>,
    headers: HeaderMap,
    id: Path<String>,
    body: Json<DecideBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(state, headers, id, body, Verdict::Approve).await
}

pub async fn deny(
    state: State<Arc<AdminState>>,
    headers: HeaderMap,
    id: Path<String>,
    body: Json<DecideBody>,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(state, headers, id, body, Verdict::Deny).await
}

async fn decide(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<DecideBody>,
    verdict: Verdict,
) -> Result<Json<ApprovalView>, ApiError> {
    let approver = caller(&state, &headers).await?;
    let broker = broker(&state)?;
    // What the caller may not see, it is not told about (nor who may decide it).
    let visible = broker
        .get(&id)
        .await
        .map_err(store_error)?
        .is_some_and(|r| may_see(&approver, &r, state.admins.admits(&approver)));
    if !visible {
        return Err(ApiError::NotFound(format!("approval {id} does not exist")));
    }
    match broker.decide(&approver, &id, verdict, &body.reason).await {
        Ok(record) => Ok(Json(broker.view(&record))),
        Err(DecideError::NotFound(id)) => {
            Err(ApiError::NotFound(format!("approval {id} does not exist")))
        }
        Err(DecideError::Forbidden(why)) => {
            tracing::warn!(approval = %id, approver = %approver.subject, reason = %why, "approval decision refused");
            Err(ApiError::Forbidden(why))
        }
        Err(e @ DecideError::Conflict { .. }) => Err(ApiError::Conflict(e.to_string())),
        Err(DecideError::BadRequest(why)) => Err(ApiError::BadRequest(why)),
        Err(DecideError::Store(e)) => Err(ApiError::Store(e)),
    }
}
