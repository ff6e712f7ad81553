//! The HTTP listener's state and its one handler: every request to `/c/<connection>/...`
//! is authenticated, read strictly, judged, recorded, held or ticketed when its rule says
//! so, and forwarded to the connection's upstream with the gateway's own credential; the
//! response comes back masked when a mask applies.
//!
//! A client connection is recorded as one session per principal and resource: opened on
//! its first request, each request with its decision and its response as the agent saw
//! it, closed when the connection ends (keep-alive clients make long sessions, one-shot
//! clients short ones).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use sluice_approvals::{Broker, NewApproval};
use sluice_config::secret::SecretValue;
use sluice_config::{Config, ConnectionKind};
use sluice_core::{ApprovalMode, ApprovalStatus, Principal};
use sluice_identity::Authenticator;
use sluice_mask::{DetectorSet, Masker};
use sluice_policy::{Decision, MaskSpec, PolicySet, Verdict};

use sluice_admin::tls::TlsListener;

use crate::json_mask;
use crate::kube;
use crate::target::HttpTarget;

/// Bytes of a request body kept for an approval (and its fingerprint).
const APPROVAL_BODY_LIMIT: usize = 1 << 20;
/// Bytes of a masked response the gateway will buffer to mask it.
const MASKED_BODY_LIMIT: usize = 16 << 20;
/// Bytes of a response kept in the audit record.
const RECORDED_BODY_LIMIT: usize = 64 << 10;

/// One `kind: http` or `kind: kubernetes` connection, ready to forward to.
pub struct HttpConnection {
    pub name: String,
    pub kind: ConnectionKind,
    /// Base URL; request paths are appended to its path.
    pub upstream: reqwest::Url,
    /// Sent upstream as `Authorization: Bearer`.
    pub token: Option<SecretValue>,
    /// The connection's own client: it trusts the connection's CA (and only it, when one
    /// is set) and presents the connection's client certificate.
    client: reqwest::Client,
    /// The same, HTTP/1.1 only: protocols switch only there.
    upgrade_client: reqwest::Client,
}

impl HttpConnection {
    fn is_kubernetes(&self) -> bool {
        self.kind == ConnectionKind::Kubernetes
    }
}

/// Everything the HTTP listener needs, shared by all requests.
pub struct HttpGateway {
    pub connections: HashMap<String, Arc<HttpConnection>>,
    pub authenticator: Authenticator,
    pub policies: Arc<PolicySet>,
    pub recorder: Option<sluice_recorder::Recorder>,
    pub approvals: Option<Arc<Broker>>,
    pub masker: Masker,
    /// Whether clients reach the listener over TLS (recorded per session).
    pub tls: bool,
    /// Caps against abuse: client connections per principal, failed authentications
    /// per address.
    pub limits: Arc<sluice_limits::Limits>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("connection `{name}`: upstream `{upstream}` is not a URL: {reason}")]
    Upstream {
        name: String,
        upstream: String,
        reason: String,
    },
    #[error("connection `{name}`: {source}")]
    Secret {
        name: String,
        source: sluice_config::SecretError,
    },
    #[error("connection `{name}`: {what} {path}: {reason}")]
    File {
        name: String,
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("policy mask: {0}")]
    MaskPath(#[from] json_mask::PathError),
    #[error("connection `{name}`: HTTP client: {reason}")]
    Client { name: String, reason: String },
}

impl HttpGateway {
    /// Reads every `kind: http` and `kind: kubernetes` connection of `config` (its
    /// upstream, token, CA and client certificate) and checks every JSON mask path now,
    /// so a broken one fails at start.
    pub fn from_config(
        config: &Config,
        authenticator: Authenticator,
        policies: Arc<PolicySet>,
        mask_hash_key: &[u8],
    ) -> Result<Self, HttpSetupError> {
        let mut connections = HashMap::new();
        for conn in config
            .connections
            .iter()
            .map(|c| &c.value)
            .filter(|c| matches!(c.kind, ConnectionKind::Http | ConnectionKind::Kubernetes))
        {
            let connection = connection_from_config(conn)?;
            connections.insert(conn.name.clone(), Arc::new(connection));
        }
        for policy in &policies.policies {
            for mask in &policy.masks {
                if let MaskSpec::Json { path, .. } = &mask.spec {
                    json_mask::check_path(path)?;
                }
            }
        }
        Ok(HttpGateway {
            connections,
            authenticator,
            policies,
            recorder: None,
            approvals: None,
            masker: Masker::new(mask_hash_key),
            tls: config.tls.is_some(),
            limits: Arc::new(sluice_limits::Limits::default()),
        })
    }
}

fn connection_from_config(
    conn: &sluice_config::Connection,
) -> Result<HttpConnection, HttpSetupError> {
    let upstream = reqwest::Url::parse(&conn.upstream).map_err(|e| HttpSetupError::Upstream {
        name: conn.name.clone(),
        upstream: conn.upstream.clone(),
        reason: e.to_string(),
    })?;
    let token = conn
        .token
        .as_ref()
        .map(|s| s.resolve())
        .transpose()
        .map_err(|source| HttpSetupError::Secret {
            name: conn.name.clone(),
            source,
        })?;
    let client = build_client(conn, false)?;
    let upgrade_client = build_client(conn, true)?;
    Ok(HttpConnection {
        name: conn.name.clone(),
        kind: conn.kind,
        upstream,
        token,
        client,
        upgrade_client,
    })
}

fn build_client(
    conn: &sluice_config::Connection,
    http1_only: bool,
) -> Result<reqwest::Client, HttpSetupError> {
    let file_error =
        |what: &'static str, path: &std::path::Path, reason: String| HttpSetupError::File {
            name: conn.name.clone(),
            what,
            path: path.display().to_string(),
            reason,
        };
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| file_error(what, path, e.to_string()))
    };
    let mut client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if http1_only {
        client = client.http1_only();
    }
    if let Some(ca) = &conn.ca {
        let pem = read("CA", ca)?;
        // A connection with its own CA trusts that CA only.
        client = client.tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| file_error("CA", ca, e.to_string()))?,
        );
    }
    if let (Some(cert), Some(key)) = (&conn.client_cert, &conn.client_key) {
        let mut pem = read("client certificate", cert)?;
        pem.push(b'\n');
        pem.extend_from_slice(&read("client key", key)?);
        client = client.identity(
            reqwest::Identity::from_pem(&pem)
                .map_err(|e| file_error("client certificate", cert, e.to_string()))?,
        );
    }
    client.build().map_err(|e| HttpSetupError::Client {
        name: conn.name.clone(),
        reason: e.to_string(),
    })
}

/// The listener's routes: everything goes through [`handle`].
pub fn router(gateway: Arc<HttpGateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gateway)
}

/// A refusal in HTTP terms: a status and `{"error": "sluice: ..."}`, plus what an
/// approval adds.
struct Refusal {
    status: StatusCode,
    message: String,
    approval: Option<serde_json::Value>,
    /// Said as a Kubernetes `Status` object (a refusal on a `kind: kubernetes`
    /// connection).
    kubernetes: bool,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            approval: None,
            kubernetes: false,
            retry_after: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = if self.kubernetes {
            kube::status::status_body(self.status, &self.message, self.approval.as_ref())
        } else {
            let mut body = serde_json::json!({ "error": self.message });
            if let Some(approval) = self.approval {
                body["approval"] = approval;
            }
            body
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice\""),
            );
        }
        response
    }
}

/// One client connection, as the listener accepted it: its address, and the audit
/// sessions its requests are recorded in. Serve the router with
/// `into_make_service_with_connect_info::<ClientConnection>()`: hyper makes one per
/// accepted connection and drops it when the connection ends, which closes its sessions.
#[derive(Clone)]
pub struct ClientConnection {
    pub addr: SocketAddr,
    sessions: Arc<ConnectionSessions>,
}

/// A keep-alive connection is one recorded session per principal and resource (a client
/// may send several tokens, or call several connections, over one socket).
#[derive(Default)]
struct ConnectionSessions {
    open: std::sync::Mutex<HashMap<(String, String, String), sluice_recorder::SessionRecorder>>,
    /// Each principal seen on this connection counts one session against its cap
    /// until the connection ends.
    permits: std::sync::Mutex<HashMap<(String, String), sluice_limits::SessionPermit>>,
}

impl Drop for ConnectionSessions {
    fn drop(&mut self) {
        let open: Vec<_> = self
            .open
            .get_mut()
            .map(|open| open.drain().map(|(_, session)| session).collect())
            .unwrap_or_default();
        if open.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for session in open {
                    session.close("client connection closed").await;
                }
            });
        }
    }
}

impl ClientConnection {
    fn new(addr: SocketAddr) -> Self {
        ClientConnection {
            addr,
            sessions: Arc::default(),
        }
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientConnection
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientConnection::new(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for ClientConnection
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        ClientConnection::new(*stream.remote_addr())
    }
}

async fn handle(
    State(gateway): State<Arc<HttpGateway>>,
    ConnectInfo(client): ConnectInfo<ClientConnection>,
    request: Request,
) -> Response {
    match proxy(&gateway, &client, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    }
}

/// The audit session a request is recorded in.
struct Recording {
    session: sluice_recorder::SessionRecorder,
}

/// The session of `principal` on `connection` over this client connection, opened on its
/// first request.
fn recording_for(
    gateway: &HttpGateway,
    client: &ClientConnection,
    principal: &Principal,
    connection: &str,
) -> Result<Option<Recording>, Refusal> {
    let Some(recorder) = &gateway.recorder else {
        return Ok(None);
    };
    let key = (
        principal.provider.clone(),
        principal.subject.clone(),
        connection.to_string(),
    );
    let mut open = client.sessions.open.lock().expect("sessions lock");
    if let Some(session) = open.get(&key) {
        return Ok(Some(Recording {
            session: session.clone(),
        }));
    }
    let session = recorder
        .open_session(sluice_audit::SessionOpened {
            principal: principal.into(),
            client_addr: client.addr.to_string(),
            connection: connection.to_string(),
            protocol: sluice_audit::Protocol::Http,
            tls: gateway.tls,
        })
        .map_err(|e| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("sluice: the audit trail cannot take this request: {e}"),
            )
        })?;
    open.insert(key, session.clone());
    Ok(Some(Recording { session }))
}

async fn proxy(
    gateway: &Arc<HttpGateway>,
    client: &ClientConnection,
    request: Request,
) -> Result<Response, Refusal> {
    let mut request = request;
    // An upgrade (exec, attach, port-forward, WebSocket): the client's side of the
    // stream, taken before the request is split; used only if the request is let through.
    let client_upgrade = wants_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let raw = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let Some(rest) = raw.strip_prefix("/c/") else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "sluice: connections are reached at /c/<connection>/<path>",
        ));
    };
    let (name, target) = match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_string()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_string()),
    };
    let connection = gateway.connections.get(name).cloned().ok_or_else(|| {
        Refusal::new(
            StatusCode::NOT_FOUND,
            format!("sluice: no HTTP or Kubernetes connection named `{name}`"),
        )
    })?;
    let kubernetes = connection.is_kubernetes();
    proxy_to(
        gateway,
        client,
        connection,
        parts,
        body,
        &target,
        client_upgrade,
    )
    .await
    .map_err(|mut refusal| {
        refusal.kubernetes = kubernetes;
        refusal
    })
}

/// What the policy made of a request, and what that means for its response.
struct Judgement {
    verdict: Verdict,
    /// Recorded as the request's classification.
    classification: serde_json::Value,
    /// Kubernetes: mask Secret values in the response.
    mask_secrets: bool,
    /// Kubernetes: a watch, whose response is a stream of JSON documents.
    watch: bool,
}

impl Judgement {
    fn masks_response(&self) -> bool {
        self.mask_secrets || !self.verdict.masks.is_empty()
    }
}

async fn proxy_to(
    gateway: &Arc<HttpGateway>,
    client: &ClientConnection,
    connection: Arc<HttpConnection>,
    parts: axum::http::request::Parts,
    body: Body,
    target: &str,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, Refusal> {
    let target = HttpTarget::parse(parts.method.as_str(), target)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("sluice: {e}")))?;
    let kube_request = connection
        .is_kubernetes()
        .then(|| kube::request_info(&target))
        .transpose()
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, format!("sluice: {e}")))?;

    refuse_ambiguous_headers(&parts.headers, connection.is_kubernetes())?;
    let principal = authenticate(gateway, client.addr.ip(), &parts.headers).await?;
    count_session(gateway, client, &principal)?;
    let session = gateway.policies.for_session(&principal, &connection.name);
    if session.is_empty() {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "sluice: no policy gives {} access to connection `{}`",
                principal.subject, connection.name
            ),
        ));
    }
    let judgement = match &kube_request {
        None => Judgement {
            verdict: session.decide_http(&target.method, &target.path),
            classification: serde_json::json!({
                "method": target.method, "path": target.path, "query": target.query,
            }),
            mask_secrets: false,
            watch: false,
        },
        Some(request) => {
            if client_upgrade.is_some() && !upgrades_on_kubernetes(request) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("sluice: {request} does not switch protocols; only exec, attach, port-forward and proxy do"),
                ));
            }
            let verdict = session.decide_kubernetes(request);
            let mut classification = serde_json::to_value(request).unwrap_or_default();
            classification["method"] = target.method.clone().into();
            classification["path"] = target.path.clone().into();
            let mask_secrets = request.is_secret() && !verdict.reveal_secret_data;
            let mut verdict = verdict.verdict;
            if mask_secrets && verdict.decision.is_allow() && is_json_patch(&parts.headers) {
                // `copy` and `move` would put values where the masks do not look, and
                // `test` would tell them one guess at a time.
                verdict.decision = Decision::Deny {
                    reason: format!("{request} as a JSON patch could copy the Secret's values where they are not masked; send a merge patch or a server-side apply"),
                    rule: None,
                };
            }
            Judgement {
                mask_secrets,
                verdict,
                classification,
                watch: request.verb == "watch",
            }
        }
    };

    let recording = recording_for(gateway, client, &principal, &connection.name)?;
    judge_and_forward(
        gateway,
        &connection,
        &principal,
        &target,
        judgement,
        parts.headers,
        body,
        client_upgrade,
        recording.as_ref(),
    )
    .await
}

/// Kubernetes requests that may switch protocols: streams into a container, and proxies.
fn upgrades_on_kubernetes(request: &sluice_policy::KubeRequest) -> bool {
    request.verb == "proxy"
        || request
            .resource_path()
            .and_then(|r| r.split_once('/').map(|(_, sub)| sub.to_string()))
            .is_some_and(|sub| sub == "proxy" || kube::request_info::is_streaming_subresource(&sub))
}

fn is_json_patch(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json-patch")
        })
}

/// Headers that would make the resource do something other than what was judged: a
/// method override (some frameworks run `X-HTTP-Method-Override: DELETE` on a `POST`),
/// and on Kubernetes connections impersonation (the API server would act as another
/// user with the gateway's own credential). Refused, not stripped, so the agent learns
/// why its request did not run as sent.
fn refuse_ambiguous_headers(headers: &HeaderMap, kubernetes: bool) -> Result<(), Refusal> {
    for name in headers.keys() {
        let name = name.as_str();
        let overrides = matches!(
            name,
            "x-http-method-override" | "x-http-method" | "x-method-override"
        );
        // Impersonation, and the front proxy's identity headers (an API server that
        // trusts the connection's client certificate as its front proxy would take them
        // as the caller).
        let impersonates =
            kubernetes && (name.starts_with("impersonate-") || name.starts_with("x-remote-"));
        if overrides || impersonates {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("sluice: the `{name}` header is not accepted: the resource would act on something other than the request judged"),
            ));
        }
    }
    Ok(())
}

/// The first request of a principal on a client connection counts a session against
/// its cap (`limits.sessions_per_principal`), held until the connection ends.
fn count_session(
    gateway: &HttpGateway,
    client: &ClientConnection,
    principal: &Principal,
) -> Result<(), Refusal> {
    let key = (principal.provider.clone(), principal.subject.clone());
    let mut permits = client.sessions.permits.lock().expect("permits lock");
    if let std::collections::hash_map::Entry::Vacant(place) = permits.entry(key) {
        let permit = gateway
            .limits
            .open_session(principal)
            .map_err(|e| Refusal::new(StatusCode::TOO_MANY_REQUESTS, format!("sluice: {e}")))?;
        place.insert(permit);
    }
    Ok(())
}

async fn authenticate(
    gateway: &HttpGateway,
    address: std::net::IpAddr,
    headers: &HeaderMap,
) -> Result<Principal, Refusal> {
    // An address that keeps failing is turned away before it may try again.
    if let Err(e) = gateway.limits.may_authenticate(address, Instant::now()) {
        let mut refusal = Refusal::new(StatusCode::TOO_MANY_REQUESTS, format!("sluice: {e}"));
        if let sluice_limits::LimitExceeded::AuthFailures { retry_after } = e {
            refusal.retry_after = Some(retry_after.as_secs().max(1));
        }
        return Err(refusal);
    }
    let failed = |message: String| {
        gateway
            .limits
            .authentication_failed(address, Instant::now());
        Refusal::new(StatusCode::UNAUTHORIZED, message)
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(failed(
            "sluice: send exactly one `Authorization: Bearer <token>` header".into(),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| failed("sluice: expected `Authorization: Bearer <token>`".into()))?;
    gateway
        .authenticator
        .authenticate(token)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "HTTP request refused: authentication failed");
            failed(format!("sluice: authentication failed: {e}"))
        })
}

/// The request as recorded and shown to approvers: `METHOD /path?query`, and the body
/// when there is one (text, cut).
fn request_text(target: &HttpTarget, body: Option<&Bytes>) -> String {
    let mut text = format!("{} {}", target.method, target.forwarded());
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        let shown = &body[..body.len().min(4096)];
        text.push_str("\n\n");
        text.push_str(&String::from_utf8_lossy(shown));
        if body.len() > shown.len() {
            text.push_str(&format!("\n… ({} bytes in all)", body.len()));
        }
    }
    text
}

#[allow(clippy::too_many_arguments)]
async fn judge_and_forward(
    gateway: &Arc<HttpGateway>,
    connection: &Arc<HttpConnection>,
    principal: &Principal,
    target: &HttpTarget,
    judgement: Judgement,
    headers: HeaderMap,
    body: Body,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    recording: Option<&Recording>,
) -> Result<Response, Refusal> {
    let verdict = &judgement.verdict;
    let classification = Arc::new(judgement.classification.clone());
    let record_request =
        |decision, rule: Option<String>, approval_id: Option<String>, text: String| {
            let classification = classification.clone();
            async move {
                let Some(recording) = recording else {
                    return Ok(None);
                };
                let request = sluice_audit::Request {
                    text,
                    classification,
                    decision,
                    rule,
                    approval_id,
                    parameters: Vec::new(),
                };
                recording
                    .session
                    .request(request)
                    .await
                    .map(Some)
                    .map_err(|e| {
                        Refusal::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("sluice: the audit trail cannot take this request: {e}"),
                        )
                    })
            }
        };
    let refuse = |status: StatusCode, message: String, seq: Option<u64>, started: Instant| async move {
        if let (Some(recording), Some(seq)) = (recording, seq) {
            recording
                .session
                .result(error_result(seq, status, &message, started))
                .await;
        }
        Refusal::new(status, message)
    };
    let started = Instant::now();
    let mut body = Some(body);
    let (rules, approval_id, buffered) = match &verdict.decision {
        Decision::Deny { .. } => {
            let message = format!(
                "sluice: {}",
                verdict.decision.client_message().unwrap_or_default()
            );
            let rule = match &verdict.decision {
                Decision::Deny { rule, .. } => rule.as_ref().map(ToString::to_string),
                _ => None,
            };
            let seq = record_request(
                sluice_audit::Decision::Deny,
                rule,
                None,
                request_text(target, None),
            )
            .await?;
            tracing::info!(principal = %principal.subject, connection = %connection.name, request = %target, "HTTP request refused");
            return Err(refuse(StatusCode::FORBIDDEN, message, seq, started).await);
        }
        Decision::Allow { rules } => (
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            None,
            None,
        ),
        Decision::Approve { reason, approval } => {
            let body = read_limited(
                body.take().expect("the body is read once"),
                APPROVAL_BODY_LIMIT,
            )
            .await
            .map_err(|e| Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("sluice: {e}")))?;
            let id = seek_approval(
                gateway,
                connection,
                principal,
                target,
                reason,
                approval,
                &body,
                verdict,
                recording,
                &record_request,
            )
            .await?;
            (approval.rule.to_string(), Some(id), Some(body))
        }
    };
    let text = request_text(target, buffered.as_ref());
    let seq = record_request(
        sluice_audit::Decision::Allow,
        (!rules.is_empty()).then_some(rules),
        approval_id,
        text,
    )
    .await?;
    if let Some(recording) = recording {
        // The request is durable before anything of its answer reaches the agent.
        let mut session = recording.session.clone();
        session.wait_durable().await.map_err(|e| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("sluice: the audit trail cannot take this request: {e}"),
            )
        })?;
    }
    if let Some(client_upgrade) = client_upgrade {
        if judgement.masks_response() {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "sluice: masks apply to this request, and an upgraded stream (exec, attach, port-forward, WebSocket) cannot be masked".to_string(),
                seq,
                started,
            )
            .await);
        }
        return relay_upgrade(
            gateway,
            connection,
            target,
            &headers,
            client_upgrade,
            &judgement,
            recording,
            seq,
            started,
        )
        .await
        .map_err(|message| Refusal::new(StatusCode::BAD_GATEWAY, message));
    }
    let body = match (buffered, body) {
        (Some(bytes), _) => reqwest::Body::from(bytes),
        (None, Some(body)) => reqwest::Body::wrap_stream(body.into_data_stream()),
        (None, None) => reqwest::Body::from(Bytes::new()),
    };
    let upstream = forward(connection, target, &headers, body, &judgement).await;
    let upstream = match upstream {
        Ok(response) => response,
        Err(message) => return Err(refuse(StatusCode::BAD_GATEWAY, message, seq, started).await),
    };
    respond(gateway, upstream, &judgement, recording, seq, started).await
}

#[allow(clippy::too_many_arguments)]
async fn seek_approval<F, Fut>(
    gateway: &Arc<HttpGateway>,
    connection: &Arc<HttpConnection>,
    principal: &Principal,
    target: &HttpTarget,
    reason: &str,
    approval: &sluice_policy::Approval,
    body: &Bytes,
    verdict: &Verdict,
    recording: Option<&Recording>,
    record_request: &F,
) -> Result<String, Refusal>
where
    F: Fn(sluice_audit::Decision, Option<String>, Option<String>, String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<u64>, Refusal>>,
{
    let started = Instant::now();
    let Some(broker) = gateway.approvals.clone() else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "sluice: {}; approvals are not running",
                verdict.decision.client_message().unwrap_or_default()
            ),
        ));
    };
    let unavailable = |e: sluice_approvals::BrokerError| match e {
        sluice_approvals::BrokerError::Limit(limit) => Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("sluice: this request needs approval, and {limit}"),
        ),
        e => Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("sluice: this request needs approval, and approvals are unavailable: {e}"),
        ),
    };
    use sha2::Digest;
    let fingerprint = sluice_approvals::fingerprint(
        &format!(
            "{} {}\n-- body sha256 {}\n-- {}\n-- {}",
            target.method,
            target.forwarded(),
            hex::encode(sha2::Sha256::digest(body)),
            approval.rule,
            reason
        ),
        &[],
    );
    let text = request_text(target, Some(body));
    if approval.mode == ApprovalMode::Ticket {
        if let Some(ticket) = broker
            .redeem(principal, &connection.name, &fingerprint)
            .await
            .map_err(unavailable)?
        {
            record_outcome(recording, &ticket).await;
            return Ok(ticket.id);
        }
    }
    let record = broker
        .request(NewApproval {
            requester: principal.clone(),
            connection: connection.name.clone(),
            protocol: "http".into(),
            session_id: recording.map(|r| r.session.session_id().to_string()),
            statement: text.clone(),
            parameters: Vec::new(),
            fingerprint,
            reason: reason.to_string(),
            rule: approval.rule.to_string(),
            approvers: approval.approvers.clone(),
            mode: approval.mode,
            timeout: approval.timeout,
            min_approvals: approval.min_approvals,
        })
        .await
        .map_err(unavailable)?;
    let seq = record_request(
        sluice_audit::Decision::Approve,
        Some(approval.rule.to_string()),
        Some(record.id.clone()),
        text,
    )
    .await?;
    let link = broker.console_link(&record.id);
    let details = serde_json::json!({ "id": record.id, "mode": record.mode, "console_url": link });
    let refusal = |status: StatusCode, message: String| async move {
        if let (Some(recording), Some(seq)) = (recording, seq) {
            recording
                .session
                .result(error_result(seq, status, &message, started))
                .await;
        }
        Refusal {
            status,
            message,
            approval: Some(details.clone()),
            kubernetes: false,
            retry_after: None,
        }
    };
    if record.mode == ApprovalMode::Ticket {
        let grant = broker.settings().grant_window;
        return Err(refusal(
            StatusCode::FORBIDDEN,
            format!(
                "sluice: {reason} ({}): approval {} requested (ticket); once it is approved, send exactly this request again within {}s",
                approval.rule,
                record.id,
                grant.as_secs()
            ),
        )
        .await);
    }
    // Hold: the client waits. If it goes away, this future is dropped: withdraw then.
    let guard = WithdrawOnDrop {
        broker: broker.clone(),
        id: Some(record.id.clone()),
    };
    let outcome = broker.wait(&record.id).await;
    let mut guard = guard;
    guard.id = None;
    let outcome = outcome.map_err(unavailable)?;
    record_outcome(recording, &outcome).await;
    match outcome.status {
        ApprovalStatus::Approved => Ok(outcome.id),
        ApprovalStatus::Denied => {
            let (who, why) = outcome
                .decisions
                .iter()
                .rev()
                .find(|d| d.verdict == sluice_core::Verdict::Deny)
                .map(|d| (d.approver.subject.clone(), d.reason.clone()))
                .unwrap_or_default();
            Err(refusal(
                StatusCode::FORBIDDEN,
                format!("sluice: approval {} denied by {who}: {why}", outcome.id),
            )
            .await)
        }
        ApprovalStatus::Expired => Err(refusal(
            StatusCode::FORBIDDEN,
            format!(
                "sluice: approval {} expired: no decision within {}s",
                outcome.id,
                approval.timeout.as_secs()
            ),
        )
        .await),
        status => Err(refusal(
            StatusCode::FORBIDDEN,
            format!("sluice: approval {} is {status}", outcome.id),
        )
        .await),
    }
}

/// Withdraws a held request whose client went away while it waited.
struct WithdrawOnDrop {
    broker: Arc<Broker>,
    id: Option<String>,
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let broker = self.broker.clone();
            tokio::spawn(async move {
                if let Err(e) = broker.withdraw(&id).await {
                    tracing::warn!(approval = %id, error = %e, "held HTTP request not withdrawn; it expires at its deadline");
                }
            });
        }
    }
}

async fn record_outcome(recording: Option<&Recording>, approval: &sluice_store::ApprovalRecord) {
    let Some(recording) = recording else { return };
    let (decisions, resolved) = sluice_approvals::outcome_events(approval);
    recording
        .session
        .approval_outcome(decisions, resolved)
        .await;
}

fn error_result(
    seq: u64,
    status: StatusCode,
    message: &str,
    started: Instant,
) -> sluice_audit::StatementResult {
    sluice_audit::StatementResult {
        request_seq: seq,
        columns: Vec::new(),
        rows: Vec::new(),
        truncated: false,
        row_count: 0,
        bytes: 0,
        duration_us: started.elapsed().as_micros() as u64,
        error: Some(sluice_audit::ResultError {
            code: status.as_u16().to_string(),
            message: message.to_string(),
        }),
    }
}

/// Headers that belong to one hop, and the agent's credential: never forwarded.
fn forwardable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "authorization"
            | "content-length"
            // Bodies stay readable: the gateway masks and records what it relays.
            | "accept-encoding"
    )
}

/// The resource's URL for `target`: the connection's base path, then the target's path
/// and query exactly as judged.
fn upstream_url(connection: &HttpConnection, target: &HttpTarget) -> reqwest::Url {
    let mut url = connection.upstream.clone();
    let base = url.path().trim_end_matches('/').to_string();
    let forwarded = target.forwarded();
    let (path, query) = match forwarded.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (forwarded, None),
    };
    url.set_path(&format!("{base}{path}"));
    url.set_query(query.as_deref());
    url
}

/// Whether the client asks to switch protocols (`Connection: upgrade` with `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// An allowed upgrade request (exec, attach, port-forward, a WebSocket): asked of the
/// resource over HTTP/1.1; if it switches protocols, the agent gets the 101 and the two
/// streams are joined, each direction recorded (the first bytes kept, all counted) when
/// the stream ends. Any other answer is relayed as an ordinary response.
#[allow(clippy::too_many_arguments)]
async fn relay_upgrade(
    gateway: &Arc<HttpGateway>,
    connection: &HttpConnection,
    target: &HttpTarget,
    headers: &HeaderMap,
    client_upgrade: hyper::upgrade::OnUpgrade,
    judgement: &Judgement,
    recording: Option<&Recording>,
    seq: Option<u64>,
    started: Instant,
) -> Result<Response, String> {
    let method =
        Method::from_bytes(target.method.as_bytes()).map_err(|e| format!("sluice: {e}"))?;
    let mut request = connection
        .upgrade_client
        .request(method, upstream_url(connection, target));
    for (name, value) in headers {
        if forwardable(name) || name == header::UPGRADE {
            request = request.header(name, value);
        }
    }
    request = request.header(header::CONNECTION, "Upgrade");
    if let Some(token) = &connection.token {
        request = request.bearer_auth(token.expose());
    }
    let upstream = request.send().await.map_err(|e| {
        format!(
            "sluice: the resource could not be reached: {}",
            e.without_url()
        )
    })?;
    if upstream.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return respond(gateway, upstream, judgement, recording, seq, started)
            .await
            .or_else(|refusal| Ok(refusal.into_response()));
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in upstream.headers() {
        if forwardable(name) || name == header::UPGRADE {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let upstream_io = upstream
        .upgrade()
        .await
        .map_err(|e| format!("sluice: the resource's stream could not be taken over: {e}"))?;
    let session = recording.map(|r| r.session.clone());
    tokio::spawn(async move {
        let client_io = match client_upgrade.await {
            Ok(upgraded) => hyper_util::rt::TokioIo::new(upgraded),
            Err(e) => {
                tracing::info!(error = %e, "the agent's side of an upgraded stream never came");
                return;
            }
        };
        let (sent, received) = join_streams(client_io, upstream_io).await;
        if let (Some(session), Some(seq)) = (session, seq) {
            session
                .result(stream_result(seq, &sent, &received, started))
                .await;
        }
    });
    Ok(response)
}

/// What one direction of an upgraded stream carried: its first bytes, and how many in all.
#[derive(Default)]
struct Carried {
    kept: Vec<u8>,
    total: u64,
}

/// Copies both ways until both directions end; a direction that ends closes the other
/// side's writing half, as a TCP proxy does.
async fn join_streams<A, B>(agent: A, resource: B) -> (Carried, Carried)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (agent_read, agent_write) = tokio::io::split(agent);
    let (resource_read, resource_write) = tokio::io::split(resource);
    tokio::join!(
        copy_carried(agent_read, resource_write),
        copy_carried(resource_read, agent_write)
    )
}

async fn copy_carried<R, W>(mut from: R, mut to: W) -> Carried
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut carried = Carried::default();
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = RECORDED_BODY_LIMIT.saturating_sub(carried.kept.len());
        carried.kept.extend_from_slice(&buffer[..n.min(room)]);
        carried.total += n as u64;
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    carried
}

fn stream_result(
    seq: u64,
    sent: &Carried,
    received: &Carried,
    started: Instant,
) -> sluice_audit::StatementResult {
    let row = |direction: &str, carried: &Carried| {
        vec![
            Some(direction.to_string()),
            Some(String::from_utf8_lossy(&carried.kept).into_owned()),
        ]
    };
    sluice_audit::StatementResult {
        request_seq: seq,
        columns: vec!["stream".into(), "bytes".into()],
        rows: vec![
            row("agent to resource", sent),
            row("resource to agent", received),
        ],
        truncated: (sent.kept.len() as u64) < sent.total
            || (received.kept.len() as u64) < received.total,
        row_count: 2,
        bytes: sent.total + received.total,
        duration_us: started.elapsed().as_micros() as u64,
        error: None,
    }
}

/// The JSON media types of an `Accept` header (`application/json;as=Table;...` stays),
/// or plain `application/json` when it names none.
fn json_only(accept: Option<&HeaderValue>) -> HeaderValue {
    let kept: Vec<&str> = accept
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| {
            let media = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == "application/json"
        })
        .collect();
    if kept.is_empty() {
        HeaderValue::from_static("application/json")
    } else {
        HeaderValue::from_str(&kept.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("application/json"))
    }
}

async fn forward(
    connection: &HttpConnection,
    target: &HttpTarget,
    headers: &HeaderMap,
    body: reqwest::Body,
    judgement: &Judgement,
) -> Result<reqwest::Response, String> {
    let method =
        Method::from_bytes(target.method.as_bytes()).map_err(|e| format!("sluice: {e}"))?;
    let mut request = connection
        .client
        .request(method, upstream_url(connection, target));
    for (name, value) in headers {
        // The length the client declared (its body arrives as declared, or not at all)
        // goes on: servers that read no chunked request bodies need it.
        if forwardable(name) || name == header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    if judgement.masks_response() {
        // The gateway reads what it masks: JSON (tables included), never protobuf.
        request = request.header(header::ACCEPT, json_only(headers.get(header::ACCEPT)));
    }
    if let Some(token) = &connection.token {
        request = request.bearer_auth(token.expose());
    }
    request.body(body).send().await.map_err(|e| {
        format!(
            "sluice: the resource could not be reached: {}",
            e.without_url()
        )
    })
}

async fn respond(
    gateway: &Arc<HttpGateway>,
    upstream: reqwest::Response,
    judgement: &Judgement,
    recording: Option<&Recording>,
    seq: Option<u64>,
    started: Instant,
) -> Result<Response, Refusal> {
    let status = upstream.status();
    let mut headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if forwardable(name) || name == header::CONTENT_LENGTH {
            headers.append(name.clone(), value.clone());
        }
    }
    let status_code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let withhold = |message: String| async move {
        let message = format!("sluice: {message}");
        if let (Some(recording), Some(seq)) = (recording, seq) {
            recording
                .session
                .result(error_result(
                    seq,
                    StatusCode::BAD_GATEWAY,
                    &message,
                    started,
                ))
                .await;
        }
        Refusal::new(StatusCode::BAD_GATEWAY, message)
    };
    let masking = judgement.masks_response().then(|| ResponseMasks {
        gateway: gateway.clone(),
        masks: judgement.verdict.masks.clone(),
        secrets: judgement.mask_secrets,
    });
    let is_json = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/json") || v.contains("+json")
        });
    let body: futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> =
        match masking {
            Some(masking) if !judgement.watch => {
                let body = read_limited_stream(upstream.bytes_stream(), MASKED_BODY_LIMIT).await;
                let masked = match body {
                    Err(e) => Err(e),
                    Ok(body) if body.is_empty() => Ok(body),
                    Ok(_) if !is_json => Err(
                        "this response is not JSON, and masks apply to it; it is withheld"
                            .to_string(),
                    ),
                    Ok(body) => masking.mask_body(&body),
                };
                let body = match masked {
                    Ok(body) => body,
                    Err(e) => return Err(withhold(e).await),
                };
                headers.remove(header::CONTENT_LENGTH);
                if let (Some(recording), Some(seq)) = (recording, seq) {
                    recording
                        .session
                        .result(body_result(
                            seq,
                            status_code,
                            &body,
                            body.len() as u64,
                            started,
                        ))
                        .await;
                }
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = status_code;
                *response.headers_mut() = headers;
                return Ok(response);
            }
            Some(masking) => {
                // A watch: masked one event at a time, as the events come.
                if !is_json {
                    return Err(withhold(
                        "this watch is not JSON, and masks apply to it; it is withheld".into(),
                    )
                    .await);
                }
                headers.remove(header::CONTENT_LENGTH);
                masking.mask_stream(upstream.bytes_stream())
            }
            None => upstream
                .bytes_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other))
                .boxed(),
        };
    // Streamed as it comes; the record keeps the first bytes and counts the rest.
    let capture = Arc::new(std::sync::Mutex::new((Vec::new(), 0u64)));
    let seen = capture.clone();
    let session = recording.map(|r| r.session.clone());
    let stream = body
        .map(move |chunk| {
            if let Ok(bytes) = &chunk {
                let mut kept = seen.lock().expect("capture lock");
                kept.1 += bytes.len() as u64;
                let room = RECORDED_BODY_LIMIT.saturating_sub(kept.0.len());
                kept.0.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            chunk
        })
        .chain(futures_util::stream::once(async move {
            if let (Some(session), Some(seq)) = (session, seq) {
                let (kept, total) = std::mem::take(&mut *capture.lock().expect("capture lock"));
                session
                    .result(body_result(seq, status_code, &kept, total, started))
                    .await;
            }
            Ok(Bytes::new())
        }));
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status_code;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The masks a response gets: JSON paths and detectors from policy, and, on Kubernetes
/// requests about Secrets, their values.
struct ResponseMasks {
    gateway: Arc<HttpGateway>,
    masks: Vec<MaskSpec>,
    secrets: bool,
}

impl ResponseMasks {
    fn mask_document(&self, doc: &mut serde_json::Value) -> Result<(), String> {
        let masker = &self.gateway.masker;
        if self.secrets {
            kube::secrets::mask_secret_values(doc, masker);
            kube::secrets::withhold_status_message(doc);
        }
        for mask in &self.masks {
            match mask {
                MaskSpec::Json { path, with, .. } => {
                    json_mask::mask_path(doc, path, *with, masker).map_err(|e| e.to_string())?
                }
                MaskSpec::Detect {
                    detectors, with, ..
                } => {
                    let set = DetectorSet::new(detectors.iter().copied());
                    json_mask::mask_detected(doc, &set, *with, masker);
                }
                MaskSpec::Column { .. } => {}
            }
        }
        Ok(())
    }

    fn mask_body(&self, body: &[u8]) -> Result<Bytes, String> {
        let mut doc: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| format!("the resource's JSON cannot be read to mask it: {e}"))?;
        self.mask_document(&mut doc)?;
        serde_json::to_vec(&doc)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }

    /// Masks a stream of JSON documents one by one; a document that cannot be read or
    /// masked ends the stream with an error (the client sees a cut response), never
    /// with the document unmasked.
    fn mask_stream(
        self,
        upstream: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    ) -> futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
        let documents = kube::stream::DocumentStream::new(MASKED_BODY_LIMIT);
        let state = (Box::pin(upstream), documents, self, false);
        futures_util::stream::unfold(
            state,
            |(mut upstream, mut documents, masks, done)| async move {
                if done {
                    return None;
                }
                let fail = |e: String| std::io::Error::other(format!("sluice: {e}"));
                loop {
                    let chunk = match upstream.next().await {
                        None => {
                            let end = documents.finish().map_err(|e| fail(e.to_string()));
                            return match end {
                                Ok(()) => None,
                                Err(e) => Some((Err(e), (upstream, documents, masks, true))),
                            };
                        }
                        Some(Err(e)) => {
                            return Some((
                                Err(fail(e.to_string())),
                                (upstream, documents, masks, true),
                            ))
                        }
                        Some(Ok(chunk)) => chunk,
                    };
                    let masked =
                        documents
                            .push(&chunk)
                            .map_err(|e| e.to_string())
                            .and_then(|docs| {
                                let mut out = Vec::new();
                                for mut doc in docs {
                                    masks.mask_document(&mut doc)?;
                                    serde_json::to_writer(&mut out, &doc)
                                        .map_err(|e| e.to_string())?;
                                    out.push(b'\n');
                                }
                                Ok(out)
                            });
                    match masked {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => {
                            return Some((
                                Ok(Bytes::from(out)),
                                (upstream, documents, masks, false),
                            ))
                        }
                        Err(e) => return Some((Err(fail(e)), (upstream, documents, masks, true))),
                    }
                }
            },
        )
        .boxed()
    }
}

fn body_result(
    seq: u64,
    status: StatusCode,
    kept: &[u8],
    total: u64,
    started: Instant,
) -> sluice_audit::StatementResult {
    sluice_audit::StatementResult {
        request_seq: seq,
        columns: vec!["status".into(), "body".into()],
        rows: vec![vec![
            Some(status.as_u16().to_string()),
            Some(String::from_utf8_lossy(kept).into_owned()),
        ]],
        truncated: (kept.len() as u64) < total,
        row_count: 1,
        bytes: total,
        duration_us: started.elapsed().as_micros() as u64,
        error: (status.is_client_error() || status.is_server_error()).then(|| {
            sluice_audit::ResultError {
                code: status.as_u16().to_string(),
                message: status.canonical_reason().unwrap_or("").to_string(),
            }
        }),
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, String> {
    read_limited_stream(
        body.into_data_stream()
            .map(|c| c.map_err(|e| e.to_string())),
        limit,
    )
    .await
}

async fn read_limited_stream<E: std::fmt::Display>(
    stream: impl futures_util::Stream<Item = Result<Bytes, E>>,
    limit: usize,
) -> Result<Bytes, String> {
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the body: {e}"))?;
        if out.len() + chunk.len() > limit {
            return Err(format!(
                "the body is larger than the {limit} bytes the gateway reads here"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}
