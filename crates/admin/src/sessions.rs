//! `/api/v1/sessions`: the recorded audit trail, as `sluice sessions` shows it.
//!
//! - `GET /api/v1/sessions?principal=P&connection=C&since=T`: summaries, oldest first;
//! - `GET /api/v1/sessions/{id}`: the summary and every event exactly as stored;
//! - `GET /api/v1/sessions/{id}/verify`: the session's chain checked
//!   (`{"ok": true, "events": n}` or `{"ok": false, "broken": {...}}`); checkpoints are
//!   the auditor's to check with `sluice sessions verify` and the exported public key;
//! - `GET /api/v1/sessions/export?since=T`: every event as JSON Lines, ordered by time.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sluice_store::{SessionFilter, Store};

use crate::auth::admin;
use crate::since::parse_since;
use crate::views::session_summary;
use crate::{AdminState, ApiError};

/// Sessions read from the store per page when exporting.
const PAGE: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub principal: Option<String>,
    pub connection: Option<String>,
    pub since: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub since: Option<String>,
}

fn since(text: Option<&str>) -> Result<Option<sluice_audit::Timestamp>, ApiError> {
    text.map(|t| parse_since(t, time::OffsetDateTime::now_utc()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("since: {e}")))
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    call: impl FnOnce(&dyn Store) -> Result<T, sluice_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&*store))
        .await
        .map_err(|e| ApiError::BadRequest(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}

pub async fn list(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin(&state, &headers).await?;
    let filter = SessionFilter {
        principal: query.principal,
        connection: query.connection,
        since: since(query.since.as_deref())?,
    };
    let sessions = blocking(&state.store, move |s| s.list_sessions(&filter)).await?;
    Ok(Json(serde_json::Value::Array(
        sessions.iter().map(session_summary).collect(),
    )))
}

pub async fn show(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin(&state, &headers).await?;
    let lookup = id.clone();
    let (events, summary) = blocking(&state.store, move |s| {
        let events = s.session_events(&lookup)?;
        // The summary index is kept beside the events; a purge record has none.
        let summary = s
            .list_sessions(&SessionFilter::default())?
            .into_iter()
            .find(|summary| summary.session_id == lookup);
        Ok((events, summary))
    })
    .await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!("no recorded session {id}")));
    }
    Ok(Json(serde_json::json!({
        "session": summary.as_ref().map(session_summary),
        "events": events,
    })))
}

pub async fn verify(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin(&state, &headers).await?;
    let lookup = id.clone();
    let events = blocking(&state.store, move |s| s.session_events(&lookup)).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(format!("no recorded session {id}")));
    }
    Ok(Json(match sluice_audit::verify_session(&events) {
        Ok(()) => serde_json::json!({ "ok": true, "events": events.len() }),
        Err(broken) => serde_json::json!({
            "ok": false,
            "broken": { "session_id": broken.session_id, "seq": broken.seq, "problem": broken.problem.to_string() },
        }),
    }))
}

/// Every recorded event at or after `since` (all of them without it), exactly as stored,
/// ordered by time, then session and position: what `sessions export` and
/// `/api/v1/sessions/export` write.
pub fn events_since(
    store: &dyn Store,
    since: Option<sluice_audit::Timestamp>,
) -> Result<Vec<sluice_audit::Event>, sluice_store::StoreError> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let ids = store.session_ids(after.as_deref(), PAGE)?;
        for id in &ids {
            events.extend(
                store
                    .session_events(id)?
                    .into_iter()
                    .filter(|e| since.is_none_or(|since| e.at >= since)),
            );
        }
        match ids.last() {
            Some(last) if ids.len() == PAGE => after = Some(last.clone()),
            _ => break,
        }
    }
    events.sort_by(|a, b| (a.at, &a.session_id, a.seq).cmp(&(b.at, &b.session_id, b.seq)));
    Ok(events)
}

pub async fn export(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    admin(&state, &headers).await?;
    let since = since(query.since.as_deref())?;
    let events = blocking(&state.store, move |s| events_since(s, since)).await?;
    let mut body = String::new();
    for event in &events {
        body.push_str(
            &serde_json::to_string(event).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        );
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
