//! The command line, as DESIGN.md §1 names it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "A least-privilege gateway for autonomous agents"
)]
pub struct Cli {
    /// Config file.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "SLUICE_CONFIG",
        default_value = "sluice.yaml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: every listener in the config and the admin API.
    Serve,
    /// Everything local for a first look: a throw-away PostgreSQL with sample data, the
    /// gateway in front of it, and commands to paste for two agents.
    Demo,
    /// Tokens from the local issuer (development and tests).
    #[command(subcommand)]
    Token(TokenCommand),
    /// API keys for agents that have no OIDC provider.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Validate and explain policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit trail: recorded sessions, their verification, the key that signs them.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// The approver's side of just-in-time approval, through a running gateway's admin API.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Write a kubeconfig that points kubectl at a Kubernetes connection through the
    /// gateway, with the agent's token.
    Kubeconfig(KubeconfigArgs),
}

#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    /// The `kind: kubernetes` connection.
    #[arg(long)]
    pub connection: String,
    /// The agent's token or API key, written into the kubeconfig (default: $SLUICE_TOKEN).
    #[arg(
        long,
        env = "SLUICE_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the agent's token, which kubectl re-reads (for tokens that are
    /// renewed, such as Entra's).
    #[arg(long)]
    pub token_file: Option<String>,
    /// The gateway's address as agents reach it (default: from `listen.http`, https://
    /// when `tls` is configured).
    #[arg(long)]
    pub server: Option<String>,
    /// PEM of the CA that signed the gateway's certificate (default: `tls.cert` itself,
    /// right for a self-signed certificate).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The namespace the context starts in.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Write here instead of standard output (created with mode 0600).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approval requests that concern you (yours, and those you may decide), newest first.
    List(ApprovalsList),
    /// One request with its statement and decisions.
    Show(ApprovalsShow),
    /// Approve a pending request (exit 0), or say why not (exit 1).
    Approve(ApprovalsDecide),
    /// Deny a pending request (exit 0), or say why not (exit 1).
    Deny(ApprovalsDecide),
}

/// How to reach a running gateway's admin API.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The admin API's address.
    #[arg(long, env = "SLUICE_GATEWAY", default_value = "http://127.0.0.1:8470")]
    pub gateway: String,
    /// Your own token (or API key); approvals are decided in your name.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A CA certificate (PEM) to trust for an https gateway, beside the system's.
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApprovalsList {
    /// pending (default), approved, denied, expired, withdrawn, redeemed, or all.
    #[arg(long, default_value = "pending")]
    pub status: String,
    #[arg(long)]
    pub connection: Option<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApprovalsShow {
    /// The request's id (`apr_...`).
    pub id: String,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApprovalsDecide {
    /// The request's id (`apr_...`).
    pub id: String,
    /// Why; every decision carries one.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a token with the local issuer; prints the token alone on stdout.
    Issue(TokenIssue),
}

#[derive(Debug, Args)]
pub struct TokenIssue {
    #[arg(long)]
    pub subject: String,
    /// Comma-separated roles.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Comma-separated groups.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Lifetime, e.g. 15m, 1h, 8h.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// Audience (`aud`); the local provider accepts `sluice`.
    #[arg(long)]
    pub audience: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Issue a user token (the default is an app token, as agents are apps).
    #[arg(long)]
    pub user: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is shown once and only its hash is stored.
    Create(KeysCreate),
    /// List keys (never their secrets).
    List(ListArgs),
    /// Revoke a key; it stops working at once.
    Revoke {
        /// The key id (`sluice keys list` shows it).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct KeysCreate {
    /// A unique name for the key, e.g. the agent it is for.
    #[arg(long)]
    pub name: String,
    /// The subject policies see.
    #[arg(long)]
    pub subject: String,
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Print the new key as JSON (with its id) instead of the key alone.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate config and policies: exit 0, or errors with file:line:column.
    Check,
    /// Print the decision for a statement, the rule that made it and the masks.
    /// Exit 0 allow, 1 deny, 2 usage error, 3 needs approval.
    Explain(Explain),
}

#[derive(Debug, Args)]
pub struct Explain {
    #[arg(long)]
    pub connection: String,
    /// The SQL to judge (several statements allowed).
    #[arg(long, conflicts_with = "http", required_unless_present = "http")]
    pub sql: Option<String>,
    /// An HTTP request line, e.g. 'GET /v1/invoices/7'.
    #[arg(long)]
    pub http: Option<String>,
    #[arg(long, default_value = "explain")]
    pub subject: String,
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Identity provider of the principal (default: the first one configured).
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List recorded sessions, oldest first, one line each.
    List(SessionsList),
    /// Check every chain and every signed checkpoint in the store and name the first
    /// broken link. Exit 0 intact, 1 broken, 2 error.
    Verify(SessionsVerify),
    /// One session, event by event: requests with their decisions, results as the agent
    /// saw them.
    Show(SessionsShow),
    /// Play one session back as a transcript, with its original pauses (see --speed).
    Replay(SessionsReplay),
    /// Every recorded event, one JSON object per line (the events exactly as stored and
    /// hashed), in time order, for a SIEM.
    Export(SessionsExport),
    /// Print the public key that verifies the checkpoints (PEM), for auditors; the key
    /// pair is created in the data dir if there is none yet.
    PublicKey,
}

#[derive(Debug, Args)]
pub struct SessionsList {
    /// Only sessions of this principal (its subject or its display name).
    #[arg(long)]
    pub principal: Option<String>,
    /// Only sessions for this connection.
    #[arg(long)]
    pub connection: Option<String>,
    /// Only sessions opened at or after this time: RFC 3339 (2026-05-01T09:30:00Z) or a
    /// duration back from now (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionsShow {
    /// The session's id (`sessions list` shows them).
    pub session: String,
    /// The events exactly as stored, as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SessionsReplay {
    /// The session's id (`sessions list` shows them).
    pub session: String,
    /// How much faster than it happened: 2 halves every pause, 0 prints at once. Pauses
    /// are capped at 10 s.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Args)]
pub struct SessionsExport {
    /// Output format; `jsonl` is the only one.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
    pub format: String,
    /// Only events at or after this time: RFC 3339 or a duration back from now (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct SessionsVerify {
    /// Check only this session's chain (checkpoints are checked over the whole trail, so
    /// not with this option).
    #[arg(long)]
    pub session: Option<String>,
    /// Verify checkpoints with this public key (PEM, as `sluice sessions public-key`
    /// prints it) instead of the data dir's signing key.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
}
