//! The gateway's own session with the resource: connect, TLS, log in with the gateway's
//! credential (SCRAM-SHA-256, md5, cleartext or trust), and collect what the resource says
//! at startup (ParameterStatus, BackendKeyData) for the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::frontend;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::io::BoxIo;
use crate::protocol::backend::error_fields;
use crate::protocol::codec::{BodyReader, FrameReader};
use crate::protocol::startup::SSL_REQUEST;
use crate::scram::{ScramClient, SCRAM_SHA_256};

/// Largest message accepted from the resource: big rows are legitimate.
pub const MAX_BACKEND_MESSAGE: usize = 1 << 30;

/// How the gateway reaches one PostgreSQL connection.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub tls: UpstreamTls,
}

/// `sslmode` of the upstream URL.
#[derive(Clone)]
pub enum UpstreamTls {
    /// `sslmode=disable`: the default for a loopback resource.
    Disable,
    /// `sslmode=require|verify-ca|verify-full`, the default otherwise: TLS with the
    /// certificate verified against the connection's `ca` (or the public roots) and the host
    /// name checked. Stricter than libpq's `require`, which checks nothing.
    Verify(Arc<rustls::ClientConfig>),
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamTls::Disable => "Disable",
            UpstreamTls::Verify(_) => "Verify",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out connecting to {0}")]
    Timeout(String),
    #[error("the resource refused TLS")]
    TlsRefused,
    #[error("TLS with the resource failed: {0}")]
    Tls(std::io::Error),
    #[error("the resource asked for a password and the connection has none configured")]
    NoPassword,
    #[error("the resource asked for an unsupported authentication method ({0})")]
    UnsupportedAuth(String),
    #[error("the resource refused the gateway's login: {code} {message}")]
    Refused { code: String, message: String },
    #[error("protocol error talking to the resource: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl UpstreamTarget {
    /// Parses `postgres://user@host:port/db?sslmode=...` (a password in the URL is
    /// refused: passwords come from the config's `password` secret).
    pub fn parse(url: &str, ca: Option<&std::path::Path>) -> Result<Self, UpstreamError> {
        let bad = |reason: &str| UpstreamError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("expected postgres://"));
        }
        if parsed.password().is_some() {
            return Err(bad(
                "put the password in the connection's `password: { env: ... }`, not in the URL",
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let user = url::form_urlencoded::parse(parsed.username().as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("no user"))?;
        let database = parsed.path().trim_start_matches('/').to_string();
        let database = if database.is_empty() {
            user.clone()
        } else {
            database
        };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let mut sslmode = if loopback {
            "disable".to_string()
        } else {
            "verify-full".to_string()
        };
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => sslmode = value.into_owned(),
                other => return Err(bad(&format!("unsupported parameter `{other}`"))),
            }
        }
        let tls = match sslmode.as_str() {
            "disable" => UpstreamTls::Disable,
            "require" | "verify-ca" | "verify-full" => {
                UpstreamTls::Verify(crate::tls::client_config(ca).map_err(|e| bad(&e.to_string()))?)
            }
            other => {
                return Err(bad(&format!(
                    "unsupported sslmode `{other}`; use disable, require, verify-ca or verify-full"
                )))
            }
        };
        Ok(UpstreamTarget {
            host,
            port: parsed.port().unwrap_or(5432),
            user,
            database,
            tls,
        })
    }
}

/// A logged-in session with the resource, ready for queries.
pub struct Upstream {
    pub stream: FrameReader<BoxIo>,
    pub addr: SocketAddr,
    /// ParameterStatus messages, verbatim, to relay to the client.
    pub parameters: Vec<Bytes>,
    pub pid: i32,
    pub secret: i32,
    pub tx_status: u8,
}

/// Connects and logs in. `options` are run-time parameters sent in the startup packet.
pub async fn connect(
    target: &UpstreamTarget,
    password: Option<&str>,
    params: &[(String, String)],
    connect_timeout: Duration,
) -> Result<Upstream, UpstreamError> {
    let addr_text = format!("{}:{}", target.host, target.port);
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&addr_text))
        .await
        .map_err(|_| UpstreamError::Timeout(addr_text.clone()))?
        .map_err(|source| UpstreamError::Connect {
            addr: addr_text.clone(),
            source,
        })?;
    tcp.set_nodelay(true)?;
    let addr = tcp.peer_addr()?;
    let io: BoxIo = match &target.tls {
        UpstreamTls::Disable => Box::new(tcp),
        UpstreamTls::Verify(config) => {
            Box::new(start_tls(tcp, &target.host, config.clone()).await?)
        }
    };
    let mut stream = FrameReader::new(io, MAX_BACKEND_MESSAGE);

    let mut startup = BytesMut::new();
    let mut all: Vec<(&str, &str)> = vec![
        ("user", target.user.as_str()),
        ("database", target.database.as_str()),
    ];
    all.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    frontend::startup_message(all, &mut startup)?;
    stream.get_mut().write_all(&startup).await?;
    stream.get_mut().flush().await?;

    authenticate(&mut stream, target, password).await?;

    let (mut parameters, mut pid, mut secret) = (Vec::new(), 0, 0);
    loop {
        let frame = stream
            .next()
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        match frame.tag {
            b'S' => parameters.push(frame.raw.clone()),
            b'K' => {
                let mut r = BodyReader::new(frame.body());
                pid = r
                    .i32("BackendKeyData")
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                secret = r
                    .i32("BackendKeyData")
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
            }
            b'N' => {}
            b'E' => {
                let (code, message) = error_fields(frame.body());
                return Err(UpstreamError::Refused { code, message });
            }
            b'Z' => {
                let tx_status = frame.body().first().copied().unwrap_or(b'I');
                return Ok(Upstream {
                    stream,
                    addr,
                    parameters,
                    pid,
                    secret,
                    tx_status,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message `{}` at startup",
                    other as char
                )))
            }
        }
    }
}

async fn start_tls(
    mut tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, UpstreamError> {
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&8i32.to_be_bytes());
    request[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    tcp.write_all(&request).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer[0] != b'S' {
        return Err(UpstreamError::TlsRefused);
    }
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        UpstreamError::Tls(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(UpstreamError::Tls)
}

async fn authenticate(
    stream: &mut FrameReader<BoxIo>,
    target: &UpstreamTarget,
    password: Option<&str>,
) -> Result<(), UpstreamError> {
    let mut scram: Option<ScramClient> = None;
    loop {
        let frame = stream
            .next()
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        match frame.tag {
            b'R' => {}
            b'E' => {
                let (code, message) = error_fields(frame.body());
                return Err(UpstreamError::Refused { code, message });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message `{}` during login",
                    other as char
                )))
            }
        }
        let mut r = BodyReader::new(frame.body());
        let code = r
            .i32("Authentication")
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let mut out = BytesMut::new();
        match code {
            0 => return Ok(()),
            3 => {
                let password = password.ok_or(UpstreamError::NoPassword)?;
                frontend::password_message(password.as_bytes(), &mut out)?;
            }
            5 => {
                let password = password.ok_or(UpstreamError::NoPassword)?;
                let salt = r
                    .bytes(4, "AuthenticationMD5Password")
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                let hash = postgres_protocol::authentication::md5_hash(
                    target.user.as_bytes(),
                    password.as_bytes(),
                    [salt[0], salt[1], salt[2], salt[3]],
                );
                frontend::password_message(hash.as_bytes(), &mut out)?;
            }
            10 => {
                let password = password.ok_or(UpstreamError::NoPassword)?;
                let mut mechanisms = Vec::new();
                while let Ok(m) = r.cstr("AuthenticationSASL") {
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.to_string());
                }
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(UpstreamError::UnsupportedAuth(mechanisms.join(", ")));
                }
                let client = ScramClient::new(password.as_bytes());
                frontend::sasl_initial_response(SCRAM_SHA_256, &client.client_first(), &mut out)?;
                scram = Some(client);
            }
            11 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASL continue without start".into()))?;
                let client_final = client
                    .client_final(r.rest())
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                frontend::sasl_response(&client_final, &mut out)?;
            }
            12 => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Protocol("SASL final without start".into()))?;
                // Verifies the server's signature: the resource proves it knows the password too.
                client
                    .verify_server_final(r.rest())
                    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                continue;
            }
            other => {
                return Err(UpstreamError::UnsupportedAuth(format!(
                    "authentication request {other}"
                )))
            }
        }
        stream.get_mut().write_all(&out).await?;
        stream.get_mut().flush().await?;
    }
}
