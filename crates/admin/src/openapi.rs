//! The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json` without
//! authentication (it describes, it grants nothing).

use axum::Json;

pub async fn document() -> Json<serde_json::Value> {
    Json(spec())
}

/// The document itself; a test checks every route of [`crate::router`] is in it.
pub fn spec() -> serde_json::Value {
    let error = serde_json::json!({ "$ref": "#/components/responses/Error" });
    let since = serde_json::json!({
        "name": "since", "in": "query", "required": false,
        "description": "RFC 3339 time, or a duration back from now (24h, 7d)",
        "schema": { "type": "string" }
    });
    let id = serde_json::json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let errors = serde_json::json!({ "401": error, "403": error, "503": error });
    let decide_body = serde_json::json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "properties": { "reason": { "type": "string", "description": "why; required" } },
        "required": ["reason"], "additionalProperties": false } } } });
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "Sluice admin API", "version": env!("CARGO_PKG_VERSION") },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/sessions": { "get": {
                "summary": "Recorded sessions, oldest first",
                "parameters": [
                    { "name": "principal", "in": "query", "required": false, "description": "subject or display name", "schema": { "type": "string" } },
                    { "name": "connection", "in": "query", "required": false, "schema": { "type": "string" } },
                    since
                ],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "session summaries",
                    "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/SessionSummary" } } } } } }))
            }},
            "/api/v1/sessions/{id}": { "get": {
                "summary": "One session: its summary and every event as stored",
                "parameters": [id],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "the session" }, "404": error }))
            }},
            "/api/v1/sessions/{id}/verify": { "get": {
                "summary": "The session's hash chain checked; names the first broken link",
                "parameters": [id],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "{ok: true} or {ok: false, broken}" }, "404": error }))
            }},
            "/api/v1/approvals": { "get": {
                "summary": "Approval requests that concern the caller (theirs, those they may decide; admins: all), newest first",
                "parameters": [
                    { "name": "status", "in": "query", "required": false, "description": "all (default), pending, approved, denied, expired, withdrawn, redeemed", "schema": { "type": "string" } },
                    { "name": "connection", "in": "query", "required": false, "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "required": false, "description": "at most this many (default 100, at most 1000)", "schema": { "type": "integer" } }
                ],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "approval requests",
                    "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Approval" } } } } } }))
            }},
            "/api/v1/approvals/{id}": { "get": {
                "summary": "One approval request with its decisions",
                "parameters": [id],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "the request",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Approval" } } } }, "404": error }))
            }},
            "/api/v1/approvals/{id}/approve": { "post": {
                "summary": "Approve a pending request (a person named by the rule's approvers, not the requester)",
                "parameters": [id],
                "requestBody": decide_body.clone(),
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "the request as it now stands",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Approval" } } } },
                    "400": error, "404": error, "409": error }))
            }},
            "/api/v1/approvals/{id}/deny": { "post": {
                "summary": "Deny a pending request",
                "parameters": [id],
                "requestBody": decide_body,
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "the request as it now stands",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Approval" } } } },
                    "400": error, "404": error, "409": error }))
            }},
            "/api/v1/sessions/export": { "get": {
                "summary": "Every recorded event as JSON Lines, ordered by time",
                "parameters": [since],
                "responses": merge(&errors, serde_json::json!({ "200": { "description": "one event per line",
                    "content": { "application/x-ndjson": {} } } }))
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "a token from a configured identity provider, or an API key; the sessions routes are for callers `admins` names, the approvals routes for anyone, each seeing what concerns them" } },
            "responses": { "Error": { "description": "an error",
                "content": { "application/json": { "schema": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] } } } } },
            "schemas": { "Approval": { "type": "object", "properties": {
                "id": { "type": "string" },
                "status": { "enum": ["pending", "approved", "denied", "expired", "withdrawn", "redeemed"] },
                "mode": { "enum": ["hold", "ticket"] },
                "principal": { "type": "object" }, "connection": { "type": "string" },
                "protocol": { "type": "string" }, "session_id": { "type": ["string", "null"] },
                "statement": { "type": "string" }, "parameters": { "type": "array" },
                "reason": { "type": "string" }, "rule": { "type": "string" },
                "approvers": { "type": "object" }, "min_approvals": { "type": "integer" },
                "approvals": { "type": "integer" }, "requested_at": { "type": "string" },
                "expires_at": { "type": "string" }, "grant_expires_at": { "type": ["string", "null"] },
                "resolved_at": { "type": ["string", "null"] }, "redeemed_at": { "type": ["string", "null"] },
                "decisions": { "type": "array" }, "console_url": { "type": "string" } } },
              "SessionSummary": { "type": "object", "properties": {
                "session_id": { "type": "string" }, "opened_at": { "type": "string" },
                "principal": { "type": ["object", "null"] }, "connection": { "type": "string" },
                "protocol": { "type": "string" }, "client_addr": { "type": "string" },
                "tls": { "type": "boolean" }, "events": { "type": "integer" },
                "status": { "enum": ["open", "closed", "login_refused"] },
                "closed_at": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] }
            } } }
        }
    })
}

fn merge(base: &serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut merged = base.clone();
    if let (Some(into), serde_json::Value::Object(from)) = (merged.as_object_mut(), extra) {
        into.extend(from);
    }
    merged
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_every_session_route() {
        let spec = super::spec();
        for path in [
            "/api/v1/sessions",
            "/api/v1/sessions/{id}",
            "/api/v1/sessions/{id}/verify",
            "/api/v1/sessions/export",
        ] {
            assert!(spec["paths"][path]["get"].is_object(), "{path}");
        }
    }
}
