//! The web console's approval page: where the links in an agent's notice and in webhook
//! messages lead (`/approvals/{id}`).
//!
//! A static page; it holds nothing and grants nothing. The approver signs in by pasting
//! their own token (kept in the tab's session storage only), and the page calls the same
//! `/api/v1/approvals` routes as `sluice approvals`, so every check is the API's.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("console/approval.html");

pub async fn approval_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
}
