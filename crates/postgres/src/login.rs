//! A client's way in: TLS negotiation, the startup packet, the token or API key as the
//! password, the session's policies, and the gateway's own login to the resource.
//!
//! Every refusal here is a FATAL ErrorResponse in PostgreSQL's terms (28P01 for a bad
//! credential, 28000 for a principal no policy admits, 3D000 for an unknown connection)
//! followed by closing the connection, and a log line saying why.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use sluice_core::Principal;
use sluice_policy::SessionPolicy;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cancel::{CancelKey, CancelTarget};
use crate::io::BoxIo;
use crate::protocol::backend::{self, Severity};
use crate::protocol::codec::{BodyReader, FrameReader};
use crate::protocol::startup::{read_startup, StartupPacket};
use crate::session::Session;
use crate::upstream::{self, Upstream};
use crate::{PgConnection, PgGateway};

/// Largest message a client may send: statements can be long, COPY rows too.
pub const MAX_FRONTEND_MESSAGE: usize = 64 << 20;

/// The largest message a client may send before it has logged in: a password message
/// holding the largest token the gateway takes, with room to spare. Until the token is
/// checked nobody may make the gateway hold more (the session's own reader takes
/// [`MAX_FRONTEND_MESSAGE`] once logged in).
pub const MAX_LOGIN_MESSAGE: usize = sluice_identity::MAX_TOKEN_BYTES + 1024;

/// Startup parameters relayed to the resource. Others (above all `options`, which can set
/// any parameter, the role included) are not.
const RELAYED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "IntervalStyle",
];

/// Why a login failed, in PostgreSQL's terms.
pub struct LoginRefusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> LoginRefusal {
    LoginRefusal {
        code,
        message: message.into(),
    }
}

/// Handles one client connection from its first byte to its last.
pub async fn handle_client(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<PgGateway>,
    closing: tokio::sync::watch::Receiver<bool>,
) {
    let (mut io, tls, minor, params) = match negotiate(stream, &gateway).await {
        Ok(Some(started)) => started,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "startup failed");
            return;
        }
    };
    match login(&mut io, peer, tls, minor, &params, &gateway).await {
        Ok(logged_in) => {
            tracing::info!(
                %peer,
                principal = %logged_in.principal.subject,
                provider = %logged_in.principal.provider,
                connection = %logged_in.connection.name,
                tls,
                "session opened"
            );
            let reason = logged_in.run(io, gateway, closing).await;
            tracing::info!(%peer, reason = %reason, "session closed");
        }
        Err(refusal) => {
            tracing::warn!(%peer, user = params.get("user").map(String::as_str).unwrap_or(""),
                database = params.get("database").map(String::as_str).unwrap_or(""),
                code = refusal.code, reason = %refusal.message, "login refused");
            if let Some(recorder) = &gateway.recorder {
                recorder.login_refused(sluice_audit::LoginRefused {
                    client_addr: peer.to_string(),
                    connection: params
                        .get("database")
                        .or_else(|| params.get("user"))
                        .cloned()
                        .unwrap_or_default(),
                    protocol: sluice_audit::Protocol::Postgres,
                    reason: refusal.message.clone(),
                });
            }
            let _ = io
                .get_mut()
                .write_all(&backend::error_response(
                    Severity::Fatal,
                    refusal.code,
                    &refusal.message,
                    None,
                ))
                .await;
            let _ = io.get_mut().flush().await;
            let _ = io.get_mut().shutdown().await;
        }
    }
}

type Started = (FrameReader<BoxIo>, bool, i32, BTreeMap<String, String>);

/// TLS and the startup packet. `Ok(None)` for connections that end here (cancel requests).
async fn negotiate(
    mut tcp: TcpStream,
    gateway: &PgGateway,
) -> Result<Option<Started>, Box<dyn std::error::Error + Send + Sync>> {
    let mut packet = read_startup(&mut tcp).await?;
    if let StartupPacket::GssEncRequest = packet {
        tcp.write_all(b"N").await?;
        packet = read_startup(&mut tcp).await?;
    }
    let (mut io, tls): (BoxIo, bool) = match packet {
        StartupPacket::SslRequest => match &gateway.tls {
            Some(config) => {
                tcp.write_all(b"S").await?;
                let stream = tokio_rustls::TlsAcceptor::from(config.clone())
                    .accept(tcp)
                    .await?;
                packet = StartupPacket::GssEncRequest; // placeholder: read again below
                (Box::new(stream), true)
            }
            None => {
                tcp.write_all(b"N").await?;
                packet = read_startup(&mut tcp).await?;
                (Box::new(tcp), false)
            }
        },
        _ => (Box::new(tcp), false),
    };
    if tls {
        packet = read_startup(&mut io).await?;
    }
    match packet {
        StartupPacket::Cancel { pid, secret } => {
            let forwarded = gateway.cancel.cancel(pid, secret).await;
            tracing::debug!(forwarded, "cancel request");
            Ok(None)
        }
        StartupPacket::Startup { minor, params } => Ok(Some((
            FrameReader::new(io, MAX_LOGIN_MESSAGE),
            tls,
            minor,
            params,
        ))),
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            io.write_all(&backend::error_response(
                Severity::Fatal,
                "08P01",
                "sluice: unexpected encryption request",
                None,
            ))
            .await?;
            Ok(None)
        }
    }
}

/// A client that logged in, with its upstream session.
pub struct LoggedIn {
    pub principal: Principal,
    pub policy: SessionPolicy,
    pub connection: Arc<PgConnection>,
    pub upstream: Upstream,
    pub cancel_key: CancelKey,
    pub peer: SocketAddr,
    /// Records the session; `None` when recording is off.
    pub recording: Option<sluice_recorder::SessionRecorder>,
    /// Counts the session against its principal's cap while it lives.
    pub permit: sluice_limits::SessionPermit,
}

async fn login(
    io: &mut FrameReader<BoxIo>,
    peer: SocketAddr,
    tls: bool,
    minor: i32,
    params: &BTreeMap<String, String>,
    gateway: &PgGateway,
) -> Result<LoggedIn, LoginRefusal> {
    let mut out = BytesMut::new();
    if minor > 0 {
        // Newer clients may ask for 3.2; the gateway speaks 3.0, as PostgreSQL 15 does.
        let unrecognized: Vec<String> = params
            .keys()
            .filter(|k| k.starts_with("_pq_."))
            .cloned()
            .collect();
        out.extend_from_slice(&backend::negotiate_protocol_version(0, &unrecognized));
    }
    if params
        .get("replication")
        .is_some_and(|v| !matches!(v.as_str(), "false" | "off" | "no" | "0"))
    {
        return Err(refuse(
            "28000",
            "sluice: replication connections are not allowed",
        ));
    }
    // `options` can set any parameter, the role included: only formatting parameters pass
    // (libpq's PGOPTIONS, e.g. `-c intervalstyle=postgres_verbose`), relayed one by one.
    let option_params = match params.get("options") {
        Some(options) => startup_options(options).map_err(|bad| {
            refuse(
                "28000",
                format!("sluice: startup option `{bad}` is not allowed through the gateway; only formatting parameters (DateStyle, TimeZone, ...) may be set at startup"),
            )
        })?,
        None => Vec::new(),
    };
    if let Some(encoding) = params.get("client_encoding") {
        let normalized = encoding.to_ascii_uppercase().replace(['-', '_'], "");
        if !matches!(normalized.as_str(), "UTF8" | "UNICODE" | "SQLASCII") {
            return Err(refuse(
                "0A000",
                format!("sluice: client_encoding {encoding} is not supported through the gateway; use UTF8"),
            ));
        }
    }
    let user = params.get("user").cloned().unwrap_or_default();
    let database = params
        .get("database")
        .cloned()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user.clone());
    let Some(connection) = gateway.connections.get(&database).cloned() else {
        return Err(refuse("3D000", format!("sluice: no connection named \"{database}\"; the database name selects the connection")));
    };
    if !tls && !peer.ip().is_loopback() {
        // Config validation keeps plaintext listeners on loopback; a client arriving from
        // elsewhere without TLS would be sending its token in the clear.
        return Err(refuse("28000", "sluice: TLS is required off loopback"));
    }

    // An address that keeps failing is turned away before it may try again.
    gateway
        .limits
        .may_authenticate(peer.ip(), std::time::Instant::now())
        .map_err(|e| refuse("28000", format!("sluice: {e}")))?;
    out.extend_from_slice(&backend::authentication_cleartext_password());
    send(io, &out).await?;
    let frame = io
        .next()
        .await
        .map_err(|e| refuse("08P01", format!("sluice: during authentication: {e}")))?;
    if frame.tag != b'p' {
        return Err(refuse("08P01", "sluice: expected a password message"));
    }
    let credential = BodyReader::new(frame.body())
        .cstr("PasswordMessage")
        .map_err(|_| refuse("08P01", "sluice: malformed password message"))?
        .to_string();
    let failed = |message: String| {
        gateway
            .limits
            .authentication_failed(peer.ip(), std::time::Instant::now());
        refuse("28P01", message)
    };
    if credential.is_empty() {
        return Err(failed(
            "sluice: no token given; pass your token or API key as the password".into(),
        ));
    }
    let principal = gateway
        .authenticator
        .authenticate(&credential)
        .await
        .map_err(|e| failed(format!("sluice: authentication failed: {e}")))?;
    // Validation allows clock skew; a session does not start on a token already past its
    // expiry, since it would end at once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if principal.expires_at.is_some_and(|exp| exp <= now) {
        return Err(refuse(
            "28P01",
            "sluice: authentication failed: the token has expired",
        ));
    }
    let policy = gateway.policies.for_session(&principal, &connection.name);
    if policy.is_empty() {
        return Err(refuse(
            "28000",
            format!(
                "sluice: no policy grants {} access to connection \"{}\"",
                principal.subject, connection.name
            ),
        ));
    }
    let permit = gateway
        .limits
        .open_session(&principal)
        .map_err(|e| refuse("53300", format!("sluice: {e}")))?;

    // Parameter names are case-insensitive (libpq sends `datestyle` from PGDATESTYLE).
    let mut upstream_params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| RELAYED_PARAMETERS.iter().any(|r| r.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    upstream_params.extend(option_params);
    // The resource resolves names with the same search path the classifier uses.
    upstream_params.push((
        "search_path".into(),
        quote_path(connection.search_path.schemas()),
    ));
    if let Some(timeout) = policy.limits.statement_timeout {
        upstream_params.push(("statement_timeout".into(), timeout.as_millis().to_string()));
    }
    let password = connection.password.as_ref().map(|p| p.expose());
    let upstream = upstream::connect(
        &connection.target,
        password,
        &upstream_params,
        gateway.connect_timeout,
    )
    .await
    .map_err(|e| {
        tracing::warn!(connection = %connection.name, error = %e, "upstream login failed");
        refuse(
            "08006",
            format!(
                "sluice: cannot open a session with the resource of connection \"{}\"",
                connection.name
            ),
        )
    })?;
    // The gateway parses statements as PostgreSQL does with standard-conforming strings;
    // a resource configured otherwise would read backslashes in literals differently.
    if upstream_parameter(&upstream, "standard_conforming_strings").is_some_and(|v| v != "on") {
        return Err(refuse(
            "0A000",
            format!("sluice: the resource of connection \"{}\" has standard_conforming_strings off; the gateway requires it on", connection.name),
        ));
    }
    // Recorded from here on; a session the trail cannot take does not start (fail closed).
    let recording = match &gateway.recorder {
        None => None,
        Some(recorder) => Some(
            recorder
                .open_session(sluice_audit::SessionOpened {
                    principal: sluice_audit::RecordedPrincipal::from(&principal),
                    client_addr: peer.to_string(),
                    connection: connection.name.clone(),
                    protocol: sluice_audit::Protocol::Postgres,
                    tls,
                })
                .map_err(|e| refuse("57P03", format!("sluice: {e}")))?,
        ),
    };
    let cancel_key = gateway.cancel.register(CancelTarget {
        upstream: upstream.addr,
        pid: upstream.pid,
        secret: upstream.secret,
    });

    let mut out = BytesMut::new();
    out.extend_from_slice(&backend::authentication_ok());
    for parameter in &upstream.parameters {
        out.extend_from_slice(parameter);
    }
    out.extend_from_slice(&backend::backend_key_data(
        cancel_key.pid,
        cancel_key.secret,
    ));
    out.extend_from_slice(&backend::ready_for_query(upstream.tx_status));
    send(io, &out).await?;
    Ok(LoggedIn {
        principal,
        policy,
        connection,
        upstream,
        cancel_key,
        peer,
        recording,
        permit,
    })
}

async fn send(io: &mut FrameReader<BoxIo>, bytes: &[u8]) -> Result<(), LoginRefusal> {
    let stream = io.get_mut();
    stream
        .write_all(bytes)
        .await
        .map_err(|_| refuse("08006", "connection lost"))?;
    stream
        .flush()
        .await
        .map_err(|_| refuse("08006", "connection lost"))
}

/// Parses a startup `options` string (`-c name=value`, `--name=value`, backslash escapes a
/// space) into parameters, all of which must be formatting parameters; returns the first
/// option that is not.
fn startup_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().ok_or_else(|| word.clone())?
        } else if let Some(rest) = word.strip_prefix("--").or_else(|| word.strip_prefix("-c")) {
            rest.to_string()
        } else {
            return Err(word);
        };
        let (name, value) = setting.split_once('=').ok_or_else(|| setting.clone())?;
        let normalized = name.trim().to_ascii_lowercase().replace('-', "_");
        if !sluice_policy::session_settings::is_format_setting(&normalized)
            || matches!(
                normalized.as_str(),
                "server_version" | "server_version_num" | "server_encoding" | "integer_datetimes"
            )
        {
            return Err(setting);
        }
        out.push((normalized, value.to_string()));
    }
    Ok(out)
}

/// The value of a ParameterStatus the resource sent at login.
fn upstream_parameter(upstream: &Upstream, name: &str) -> Option<String> {
    upstream.parameters.iter().find_map(|frame| {
        let mut r = BodyReader::new(&frame[5..]);
        let key = r.cstr("ParameterStatus").ok()?;
        let value = r.cstr("ParameterStatus").ok()?;
        (key == name).then(|| value.to_string())
    })
}

/// `"a", "b"` with identifiers quoted, as `search_path` takes them.
fn quote_path(schemas: &[String]) -> String {
    schemas
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

impl LoggedIn {
    /// Relays the session until it ends; returns why it ended.
    pub async fn run(
        self,
        client: FrameReader<BoxIo>,
        gateway: Arc<PgGateway>,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> String {
        Session::new(self, gateway).run(client, closing).await
    }
}

#[cfg(test)]
mod tests {
    use super::startup_options;

    #[test]
    fn only_formatting_parameters_pass_in_startup_options() {
        assert_eq!(
            startup_options("-c intervalstyle=postgres_verbose --DateStyle=SQL,\\ DMY").unwrap(),
            vec![
                ("intervalstyle".to_string(), "postgres_verbose".to_string()),
                ("datestyle".to_string(), "SQL, DMY".to_string())
            ]
        );
        assert_eq!(
            startup_options("-c role=postgres").unwrap_err(),
            "role=postgres"
        );
        assert_eq!(
            startup_options("-crole=postgres").unwrap_err(),
            "role=postgres"
        );
        assert_eq!(
            startup_options("--search_path=x").unwrap_err(),
            "search_path=x"
        );
        assert_eq!(
            startup_options("-c statement_timeout=0").unwrap_err(),
            "statement_timeout=0"
        );
        assert_eq!(
            startup_options("-c client_encoding=SJIS").unwrap_err(),
            "client_encoding=SJIS"
        );
        assert!(startup_options("-c").is_err());
        assert!(startup_options("-E").is_err());
        assert!(startup_options("").unwrap().is_empty());
    }
}
