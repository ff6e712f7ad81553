//! Refusals in the API server's own terms: a `Status` object (`kind: Status`, `status:
//! Failure`, a `reason` and the `code`), which kubectl and client-go print as the error
//! (`Error from server (Forbidden): sluice: ...`) instead of a bare HTTP status.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// The `Status` body for a refusal with `status` and `message`; `approval` (id, mode,
/// console link) rides along as an extra field clients ignore.
pub fn status_body(status: StatusCode, message: &str, approval: Option<&Value>) -> Value {
    let reason = match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequests",
        502 | 503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status.as_u16(),
    });
    if let Some(approval) = approval {
        body["details"] = json!({ "causes": [
            { "reason": "ApprovalRequested", "message": approval.to_string() }
        ]});
        body["approval"] = approval.clone();
    }
    body
}
