//! The PostgreSQL data path: unmodified clients (psql, psycopg, pgx, JDBC) connect to the
//! gateway as if it were PostgreSQL, with their token or API key as the password, and
//! every statement they send is judged before the resource sees it.
//!
//! Layout:
//! - [`protocol`]: framing and the few messages the gateway decodes or writes;
//! - [`listener`]: accepting connections, TLS negotiation, cancel requests;
//! - [`login`]: the client's startup and authentication, and the upstream login;
//! - [`upstream`]: the gateway's own session with the resource (TLS, SCRAM, md5);
//! - [`scram`]: the SCRAM-SHA-256 client for that login, with the derived key cached;
//! - [`session`]: the relay, where statements are judged and refusals injected;
//! - [`gather`]: what the relay sends the client, gathered into one write per burst;
//! - [`responses`]: which request each message from the resource answers;
//! - [`recording`]: requests and results as the audit trail records them;
//! - [`cancel`]: routing CancelRequest to the right backend, for its owner only;
//! - [`tls`], [`io`]: TLS configuration and stream types.
//!
//! Architecture invariants:
//! - No statement reaches the resource before its decision; what cannot be parsed is
//!   refused.
//! - Refusals keep PostgreSQL's own error and Sync semantics: the gateway does not answer
//!   a refused statement itself but sends the resource a harmless statement that fails
//!   (a FETCH or Execute of a cursor/portal with a random name), and rewrites that failure
//!   into its refusal. Transaction state, error-until-Sync and pipelining therefore stay
//!   exactly the resource's.
//! - Bytes from the resource are forwarded verbatim except the errors the gateway rewrites.
//! - The resource's credential and cancel keys never reach the client.

pub mod cancel;
pub mod catalog;
pub mod copy_rows;
pub mod gather;
pub mod io;
pub mod listener;
pub mod login;
pub mod masking;
pub mod protocol;
pub mod recording;
pub mod responses;
pub mod scram;
pub mod session;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_config::secret::SecretValue;
use sluice_config::{Config, ConnectionKind};
use sluice_identity::Authenticator;
use sluice_policy::PolicySet;
use sluice_sql::{Classifier, SearchPath};

pub use listener::serve;

/// One `kind: postgres` connection of the config, ready to dial.
pub struct PgConnection {
    pub name: String,
    pub target: upstream::UpstreamTarget,
    pub password: Option<SecretValue>,
    /// With `"$user"` replaced by the connection's role, which it names.
    pub search_path: SearchPath,
    /// The configured search path holds `"$user"`.
    pub search_path_has_user: bool,
}

/// Everything the PostgreSQL listener needs, shared by all its sessions.
pub struct PgGateway {
    pub connections: HashMap<String, Arc<PgConnection>>,
    pub authenticator: Authenticator,
    pub policies: Arc<PolicySet>,
    pub classifier: Arc<Classifier>,
    /// Client-facing TLS; `None` only on loopback listeners (config validation).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub cancel: cancel::CancelRegistry,
    pub connect_timeout: Duration,
    /// Per connection: the resolver of result columns' names, for masking.
    pub catalogs: HashMap<String, Arc<catalog::Catalog>>,
    /// The key of the `hash` mask strategy. Random unless the caller sets a persistent
    /// one (`sluice serve` keeps it in the data dir, so tokens survive restarts).
    pub mask_hash_key: Arc<[u8]>,
    /// Records sessions into the audit trail; `None` when recording is off.
    pub recorder: Option<sluice_recorder::Recorder>,
    /// Just-in-time approval. Without it, statements that need approval are refused.
    pub approvals: Option<Arc<sluice_approvals::Broker>>,
    /// Caps against abuse: sessions per principal, failed logins per address,
    /// statements per query string.
    pub limits: Arc<sluice_limits::Limits>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("connection `{name}`: {source}")]
    Upstream {
        name: String,
        source: upstream::UpstreamError,
    },
    #[error("connection `{name}`: {source}")]
    Secret {
        name: String,
        source: sluice_config::SecretError,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

impl PgGateway {
    /// Builds the listener's state from the config: parses every postgres connection's
    /// upstream and reads its password now, so a broken connection fails at start.
    pub fn from_config(
        config: &Config,
        authenticator: Authenticator,
        policies: Arc<PolicySet>,
        classifier: Arc<Classifier>,
    ) -> Result<Self, GatewayError> {
        let mut connections = HashMap::new();
        for conn in config
            .connections
            .iter()
            .map(|c| &c.value)
            .filter(|c| c.kind == ConnectionKind::Postgres)
        {
            let target = upstream::UpstreamTarget::parse(&conn.upstream, conn.ca.as_deref())
                .map_err(|source| GatewayError::Upstream {
                    name: conn.name.clone(),
                    source,
                })?;
            let password = conn
                .password
                .as_ref()
                .map(|s| s.resolve())
                .transpose()
                .map_err(|source| GatewayError::Secret {
                    name: conn.name.clone(),
                    source,
                })?;
            // `"$user"` is the schema named after the role the gateway logs in as.
            let search_path_has_user = conn
                .search_path
                .as_ref()
                .is_some_and(|p| p.iter().any(|s| s == "$user"));
            let search_path = conn
                .search_path
                .as_ref()
                .map(|p| {
                    SearchPath::new(p.iter().map(|s| {
                        if s == "$user" {
                            target.user.clone()
                        } else {
                            s.clone()
                        }
                    }))
                })
                .unwrap_or_default();
            connections.insert(
                conn.name.clone(),
                Arc::new(PgConnection {
                    name: conn.name.clone(),
                    target,
                    password,
                    search_path,
                    search_path_has_user,
                }),
            );
        }
        let connect_timeout = Duration::from_secs(10);
        let catalogs = connections
            .iter()
            .map(|(name, conn)| {
                (
                    name.clone(),
                    Arc::new(catalog::Catalog::new(conn.clone(), connect_timeout)),
                )
            })
            .collect();
        let mut mask_hash_key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut mask_hash_key);
        let tls = match &config.tls {
            Some(t) => Some(tls::server_config(&t.cert, &t.key)?),
            None => None,
        };
        Ok(PgGateway {
            connections,
            authenticator,
            policies,
            classifier,
            tls,
            cancel: cancel::CancelRegistry::default(),
            connect_timeout,
            catalogs,
            mask_hash_key: Arc::from(&mask_hash_key[..]),
            recorder: None,
            approvals: None,
            limits: Arc::new(sluice_limits::Limits::default()),
        })
    }
}
