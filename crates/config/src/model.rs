//! The shape of `sluice.yaml`, field for field as DESIGN.md §1 shows it.
//!
//! Every struct denies unknown keys, so a misspelt key is an error that names its place,
//! not a silently ignored setting. Items that validation may need to point at later carry
//! their source position ([`Spanned`]).

pub use sluice_core::{ApprovalMode, Subjects};
use std::path::PathBuf;

use serde::Deserialize;
pub use serde_saphyr::Spanned;
use sluice_core::Action;

use crate::duration::ConfigDuration;
use crate::secret::Secret;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    #[serde(default)]
    pub tls: Option<Tls>,
    /// `sqlite://path` (default `sqlite://./sluice-data/sluice.db`) or `postgres://...`.
    #[serde(default = "default_store")]
    pub store: String,
    /// Where the gateway keeps its own keys (local issuer, checkpoint signing). Defaults to
    /// the folder of a SQLite store, else `./sluice-data`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The key of the `hash` mask strategy, from the environment or a file, for several
    /// gateway instances that must give the same tokens. Without it, a random key is made
    /// in the data dir on first start.
    #[serde(default)]
    pub mask_hash_key: Option<Secret>,
    #[serde(default)]
    pub admins: Option<Subjects>,
    /// How long sessions may run on after SIGTERM before they are closed (default 30s).
    #[serde(default)]
    pub shutdown_grace: Option<ConfigDuration>,
    /// Threads that run the listeners and sessions (default: half the CPUs, at least
    /// one). Each extra thread costs wake-ups between threads on every statement; see
    /// [`Config::workers`].
    #[serde(default)]
    pub workers: Option<usize>,
    /// The audit trail of sessions (DESIGN.md §6): on by default.
    #[serde(default)]
    pub recording: Recording,
    /// Just-in-time approval (DESIGN.md §5): grants, the console's address, webhooks.
    #[serde(default)]
    pub approvals: Approvals,
    /// Caps against abuse, for the whole gateway (a policy's own `limits` are about its
    /// statements).
    #[serde(default)]
    pub limits: GatewayLimits,
    pub identity: Identity,
    #[serde(default)]
    pub connections: Vec<Spanned<Connection>>,
    #[serde(default)]
    pub policies: Vec<Spanned<Policy>>,
    /// Not part of the file: the file it was loaded from, for messages and relative paths.
    #[serde(skip)]
    pub source: PathBuf,
}

/// The `limits:` block: every field optional, defaults in `sluice-limits`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayLimits {
    #[serde(default)]
    pub sessions_per_principal: Option<usize>,
    #[serde(default)]
    pub auth_failures_per_address: Option<u32>,
    #[serde(default)]
    pub auth_failure_window: Option<ConfigDuration>,
    #[serde(default)]
    pub statements_per_query: Option<usize>,
    #[serde(default)]
    pub pending_approvals_per_principal: Option<usize>,
}

fn default_store() -> String {
    "sqlite://./sluice-data/sluice.db".to_string()
}

/// `recording:`: what the audit trail keeps and how it behaves when the store fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Record sessions (default true). Off, nothing is recorded and nothing waits for the
    /// store: for benchmarks and throw-away setups only.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Rows of each statement's result kept in the record (default 1000); the rest are
    /// counted, and the record marked truncated.
    #[serde(default)]
    pub result_rows: Option<u64>,
    /// Bytes of each statement's result kept in the record (default 1 MiB).
    #[serde(default)]
    pub result_bytes: Option<u64>,
    /// Sessions whose last event is older than this are purged (default: kept forever);
    /// a signed purge record keeps `sluice sessions verify` passing.
    #[serde(default)]
    pub retention: Option<ConfigDuration>,
    /// How often the gateway signs the heads of the chains that grew (default 5s).
    #[serde(default)]
    pub checkpoint_interval: Option<ConfigDuration>,
    /// When a request counts as recorded: `os` (the default) once the gateway's journal
    /// has handed it to the operating system, which survives the gateway being killed;
    /// `disk` once it is also flushed to disk (`fdatasync`), which survives power loss
    /// and costs a disk flush per batch of statements.
    #[serde(default)]
    pub durability: Durability,
    /// What happens to new statements when the store cannot take events: `refuse` (the
    /// default: fail closed) or `continue` (statements run unrecorded, with an error
    /// logged for every event lost).
    #[serde(default)]
    pub on_store_failure: OnStoreFailure,
}

impl Default for Recording {
    fn default() -> Self {
        Self {
            enabled: true,
            result_rows: None,
            result_bytes: None,
            retention: None,
            checkpoint_interval: None,
            durability: Durability::Os,
            on_store_failure: OnStoreFailure::Refuse,
        }
    }
}

/// `approvals:`: how approved tickets last, where approvers decide, who is told.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// How long an approved ticket may be redeemed, from its approval (default 15m).
    #[serde(default)]
    pub grant_window: Option<ConfigDuration>,
    /// The address approvers reach the admin API and console at, for the links agents and
    /// webhooks carry (default: `http://` or `https://` and `listen.admin`).
    #[serde(default)]
    pub console_url: Option<String>,
    /// Told of every request, decision and expiry.
    #[serde(default)]
    pub webhooks: Vec<Spanned<Webhook>>,
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `https://...` (plain `http://` only on loopback).
    pub url: String,
    /// `slack` (an incoming-webhook message with approve/deny links) or `json` (the event
    /// as JSON, signed with `secret`).
    pub format: WebhookFormat,
    /// The HMAC-SHA256 key of the `X-Sluice-Signature` header; required for `json`.
    #[serde(default)]
    pub secret: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Slack,
    Json,
}

fn yes() -> bool {
    true
}

/// `recording.durability`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    #[default]
    Os,
    Disk,
}

/// `recording.on_store_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreFailure {
    #[default]
    Refuse,
    Continue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub admin: Option<Spanned<String>>,
    pub postgres: Option<Spanned<String>>,
    pub mysql: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[serde(default)]
    pub providers: Vec<Spanned<Provider>>,
}

/// An identity provider: an OIDC issuer (`issuer` + `audiences`) or the local issuer
/// (`local: {}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub local: Option<LocalProvider>,
    /// Entra: accept app-only tokens without a `roles` claim (refused by default).
    #[serde(default)]
    pub allow_app_without_roles: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalProvider {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    Postgres,
    Mysql,
    Http,
    Kubernetes,
}

impl ConnectionKind {
    pub fn is_sql(self) -> bool {
        matches!(self, ConnectionKind::Postgres | ConnectionKind::Mysql)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Postgres => "postgres",
            ConnectionKind::Mysql => "mysql",
            ConnectionKind::Http => "http",
            ConnectionKind::Kubernetes => "kubernetes",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub name: String,
    pub kind: ConnectionKind,
    pub upstream: String,
    /// SQL connections: the gateway's own password for the resource.
    #[serde(default)]
    pub password: Option<Secret>,
    /// HTTP and Kubernetes: the gateway's own bearer token for the resource.
    #[serde(default)]
    pub token: Option<Secret>,
    /// CA bundle to verify the upstream's certificate.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// HTTP and Kubernetes: a client certificate (PEM, with its chain) and its key the
    /// gateway presents upstream, for API servers that authenticate by certificate.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// PostgreSQL: the schemas unqualified names resolve through (default `[public]`).
    #[serde(default)]
    pub search_path: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Spanned<Match>,
    pub connections: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub deny: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub approve: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub mask: Vec<Spanned<MaskRule>>,
    /// Whether this policy's masked columns may be read by conditions (WHERE, JOIN ON,
    /// ORDER BY, GROUP BY, ...) without being delivered (default `allow`).
    #[serde(default)]
    pub mask_predicates: MaskPredicates,
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// What a statement may do with a masked column besides delivering it as a result column.
///
/// A condition never returns the value, but it can be used to learn it a little at a time
/// (`WHERE ssn LIKE '0%'`, then `'07%'`, ...). `allow` accepts that, as most masking in
/// databases does; `refuse` refuses every statement that reads a masked column anywhere but
/// in its result columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskPredicates {
    #[default]
    Allow,
    Refuse,
}

/// Which principals a policy applies to: the provider (if given) and any one of the
/// subjects, roles or groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One rule of `allow`, `deny` or `approve`. SQL rules use `actions` and object globs;
/// HTTP rules `methods` and `paths`; Kubernetes rules `verbs`, `resources` and friends.
/// Validation checks that a rule's fields fit its policy's connections, and that only
/// `approve` rules carry `approvers`, `mode` and `timeout`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    // SQL
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    #[serde(default)]
    pub functions: Option<Vec<String>>,
    #[serde(default)]
    pub settings: Option<Vec<String>>,
    // HTTP
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    // Kubernetes
    #[serde(default)]
    pub verbs: Option<Vec<String>>,
    #[serde(default)]
    pub api_groups: Option<Vec<String>>,
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// Paths that are not API resources (`/healthz`, `/metrics`), as RBAC's
    /// `nonResourceURLs`.
    #[serde(default)]
    pub non_resource_urls: Option<Vec<String>>,
    /// Whether Secrets this rule lets through keep their `data` (`reveal`) or have it
    /// masked (`mask`, the default).
    #[serde(default)]
    pub secret_data: Option<SecretData>,
    // approve only
    #[serde(default)]
    pub approvers: Option<Subjects>,
    #[serde(default)]
    pub mode: Option<ApprovalMode>,
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    #[serde(default)]
    pub min_approvals: Option<u32>,
}

impl Rule {
    pub fn has_sql_fields(&self) -> bool {
        self.actions.is_some()
            || self.tables.is_some()
            || self.functions.is_some()
            || self.settings.is_some()
    }

    pub fn has_http_fields(&self) -> bool {
        self.methods.is_some() || self.paths.is_some()
    }

    pub fn has_kubernetes_fields(&self) -> bool {
        self.verbs.is_some()
            || self.api_groups.is_some()
            || self.resources.is_some()
            || self.namespaces.is_some()
            || self.names.is_some()
            || self.non_resource_urls.is_some()
            || self.secret_data.is_some()
    }

    pub fn has_approval_fields(&self) -> bool {
        self.approvers.is_some()
            || self.mode.is_some()
            || self.timeout.is_some()
            || self.min_approvals.is_some()
    }
}

/// What a Kubernetes rule that lets Secrets through does with their values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretData {
    /// `data` and `stringData` values are redacted in every response.
    #[default]
    Mask,
    /// The values reach the agent as the API server sends them.
    Reveal,
}

/// A masking rule: by column, by detector over values, or by JSON path (HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub detect: Option<Vec<Detector>>,
    #[serde(default)]
    pub json: Option<String>,
    pub with: MaskStrategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStrategy {
    /// Replaced by `****`.
    Redact,
    /// All but the last four characters hidden.
    Last4,
    /// `j***@example.com`.
    Email,
    /// Keyed HMAC: stable, so equal values still join.
    Hash,
    /// SQL NULL / JSON null.
    Null,
}

impl MaskStrategy {
    /// How much a strategy conceals, for "the most concealing wins" (DESIGN.md §1).
    pub fn concealment(self) -> u8 {
        match self {
            MaskStrategy::Null => 5,
            MaskStrategy::Redact => 4,
            MaskStrategy::Hash => 3,
            MaskStrategy::Last4 => 2,
            MaskStrategy::Email => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MaskStrategy::Redact => "redact",
            MaskStrategy::Last4 => "last4",
            MaskStrategy::Email => "email",
            MaskStrategy::Hash => "hash",
            MaskStrategy::Null => "null",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    CreditCard,
    Iban,
    UsSsn,
    Phone,
    Jwt,
    PrivateKey,
    CloudAccessKey,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub max_rows: Option<u64>,
    #[serde(default)]
    pub statement_timeout: Option<ConfigDuration>,
}
