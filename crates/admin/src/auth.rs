//! Who is calling the admin API, and whether they may.
//!
//! The caller sends `Authorization: Bearer <token or API key>`, validated by the gateway's
//! own [`Authenticator`](sluice_identity::Authenticator), exactly as an agent's password
//! is on the data path. The admin API is for the principals `admins` in the config names
//! (any listed subject, role or group); without `admins`, nobody has it.

use axum::http::{header, HeaderMap};
use sluice_core::Principal;

use crate::{AdminState, ApiError};

/// `admins` in the config: who may use the admin API (nobody without it).
#[derive(Debug, Clone, Default)]
pub struct Admins(sluice_core::Subjects);

impl Admins {
    pub fn from_config(admins: Option<&sluice_config::Subjects>) -> Self {
        Admins(admins.cloned().unwrap_or_default())
    }

    pub fn admits(&self, principal: &Principal) -> bool {
        self.0.contains(principal)
    }
}

/// The caller, once authenticated and found to be an admin.
pub async fn admin(state: &AdminState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = caller(state, headers).await?;
    if !state.admins.admits(&principal) {
        tracing::warn!(principal = %principal.subject, "admin API refused: not an admin");
        return Err(ApiError::Forbidden(format!(
            "{} is not an admin of this gateway (`admins` in the config)",
            principal.subject
        )));
    }
    Ok(principal)
}

/// The caller, authenticated, whoever they are (approvers use the API with their own
/// token; what they may see and do is the route's to judge).
pub async fn caller(state: &AdminState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated(
                "send your token or API key as `Authorization: Bearer <token>`".into(),
            )
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
        })?;
    let principal = state
        .authenticator
        .authenticate(token)
        .await
        .map_err(|e| ApiError::Unauthenticated(format!("authentication failed: {e}")))?;
    Ok(principal)
}
