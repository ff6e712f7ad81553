//! `sluice demo`: everything local for a first look.
//!
//! Starts a throw-away PostgreSQL (from the PostgreSQL binaries installed on the machine)
//! with a small shop database, writes a config with the local token issuer and two agent
//! policies into a fresh folder, runs the gateway on it, and prints what to paste into a
//! shell: psql as a read-only reporting agent, and as an agent whose writes need approval,
//! with the approver's commands to decide them.
//! Ctrl-C stops everything and removes the database.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_identity::TokenRequest;
use sluice_pgcluster::pg::PgCluster;
use tokio::sync::watch;

use super::serve::{init_logging, run_gateway, runtime, shutdown_signal};
use crate::context::{load_config, local_issuer};

const SHOP: &str = r#"
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, card_number text);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'open');
CREATE TABLE secrets (id int PRIMARY KEY, secret text NOT NULL);
INSERT INTO customers (name, email, card_number) VALUES
  ('Ada Lovelace', 'ada@example.com', '4111111111111111'),
  ('Alan Turing', 'alan@example.org', '5500005555555559'),
  ('Grace Hopper', 'grace@example.net', '340000000000009');
INSERT INTO orders (customer_id, total, status) VALUES (1, 10.00, 'paid'), (2, 20.50, 'open'), (3, 30.25, 'shipped');
INSERT INTO secrets VALUES (1, 'the launch code is 0000');
"#;

pub fn run() -> Result<u8> {
    init_logging();
    eprintln!("starting a throw-away PostgreSQL...");
    let cluster = PgCluster::start()
        .context("starting PostgreSQL (are the PostgreSQL server binaries installed?)")?;
    cluster.create_role("sluice_svc", "demo-svc-password", false)?;
    cluster.execute(
        "postgres",
        "CREATE DATABASE shop OWNER sluice_svc TEMPLATE template0",
    )?;
    let mut setup = cluster.psql_command("sluice_svc", "demo-svc-password", "shop");
    let status = setup
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(SHOP.as_bytes())?;
            child.wait()
        })
        .context("loading the sample data")?;
    anyhow::ensure!(status.success(), "loading the sample data failed");

    let dir = tempfile::Builder::new()
        .prefix("sluice-demo-")
        .tempdir()
        .context("creating the demo folder")?;
    std::fs::write(dir.path().join("svc-password"), "demo-svc-password\n")?;
    let port = free_port(6432);
    let admin = free_port(8470);
    let config_path = dir.path().join("sluice.yaml");
    std::fs::write(&config_path, demo_config(cluster.port(), port, admin))?;
    let config = load_config(&config_path)?;
    let issuer = local_issuer(&config)?;
    let token = |subject: &str, role: &str| {
        issuer.issue(&TokenRequest {
            subject: subject.into(),
            roles: vec![role.into()],
            groups: vec![],
            ttl: Duration::from_secs(8 * 3600),
            audience: sluice_identity::LocalIssuer::default_audience().into(),
            name: None,
        })
    };
    let reader = token("report-agent", "reporter")?;
    let writer = token("ops-agent", "operator")?;
    // A person (not an application) on call: only people approve.
    let approver = issuer.issue_as(
        &TokenRequest {
            subject: "dana".into(),
            roles: vec![],
            groups: vec!["dba-oncall".into()],
            ttl: Duration::from_secs(8 * 3600),
            audience: sluice_identity::LocalIssuer::default_audience().into(),
            name: Some("Dana (DBA on call)".into()),
        },
        sluice_core::PrincipalKind::User,
    )?;

    let runtime = runtime(&config)?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let gateway = tokio::spawn(async move { run_gateway(&config, stop_rx).await });
        wait_for_port(port, &gateway).await?;
        print_instructions(
            &config_path,
            port,
            admin,
            Tokens {
                reader: &reader,
                writer: &writer,
                approver: &approver,
            },
        );
        shutdown_signal().await;
        eprintln!("stopping...");
        let _ = stop_tx.send(true);
        gateway.await.context("gateway task")??;
        anyhow::Ok(())
    })?;
    drop(cluster);
    Ok(0)
}

fn demo_config(pg_port: u16, port: u16, admin: u16) -> String {
    format!(
        r#"# Written by `sluice demo`.
listen:
  postgres: 127.0.0.1:{port}
  admin: 127.0.0.1:{admin}
store: sqlite://./sluice.db
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - name: shop
    kind: postgres
    upstream: postgres://sluice_svc@127.0.0.1:{pg_port}/shop
    password: {{ file: svc-password }}
policies:
  - name: reporting
    match: {{ roles: [reporter] }}
    connections: [shop]
    allow:
      - {{ actions: [select], tables: ["public.*"] }}
    deny:
      - {{ tables: ["public.secrets"] }}
    mask:
      - {{ columns: ["public.customers.email"], with: email }}
      - {{ columns: ["public.customers.card_number"], with: last4 }}
    limits: {{ max_rows: 1000, statement_timeout: 30s }}
  - name: operations
    match: {{ roles: [operator] }}
    connections: [shop]
    allow:
      - {{ actions: [select], tables: ["public.orders", "public.customers"] }}
      - {{ actions: [update], tables: ["public.orders"] }}
    approve:
      - actions: [insert, delete]
        tables: ["public.orders"]
        approvers: {{ groups: [dba-oncall] }}
        mode: hold
        timeout: 10m
"#
    )
}

/// `preferred` if it is free, else any free port.
fn free_port(preferred: u16) -> u16 {
    TcpListener::bind(("127.0.0.1", preferred))
        .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(preferred)
}

async fn wait_for_port(port: u16, gateway: &tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    for _ in 0..100 {
        if gateway.is_finished() {
            anyhow::bail!("the gateway stopped during startup; see the log above");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the gateway did not start listening on port {port}")
}

/// The tokens the printed commands use.
struct Tokens<'a> {
    reader: &'a str,
    writer: &'a str,
    approver: &'a str,
}

fn print_instructions(config: &Path, port: u16, admin: u16, tokens: Tokens<'_>) {
    let Tokens {
        reader,
        writer,
        approver,
    } = tokens;
    let conn = format!("host=127.0.0.1 port={port} dbname=shop user=agent sslmode=disable");
    let sluice = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sluice".into());
    println!(
        r#"
Sluice is running: PostgreSQL clients connect to 127.0.0.1:{port}, database "shop", with a
token as the password. Config: {config}

A read-only reporting agent (policy "reporting": reads everything but public.secrets, and
sees customers' emails and card numbers masked):

  export PGPASSWORD='{reader}'
  psql "{conn}" -c 'SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id'
  psql "{conn}" -c 'SELECT name, email, card_number FROM customers'   # masked
  psql "{conn}" -c 'SELECT upper(email) FROM customers'               # refused: would unmask
  psql "{conn}" -c 'SELECT * FROM secrets'          # refused: denied table
  psql "{conn}" -c 'DELETE FROM orders'             # refused: reads only

An operations agent (policy "operations": may update orders; inserts and deletes need approval):

  export PGPASSWORD='{writer}'
  psql "{conn}" -c "UPDATE orders SET status = 'shipped' WHERE id = 2"
  psql "{conn}" -c 'DELETE FROM orders WHERE id = 1'   # held: waits for a person on call to approve

A person on call (group dba-oncall) decides, in another terminal or at the agent's link:

  export SLUICE_TOKEN='{approver}'
  {sluice} approvals list --gateway http://127.0.0.1:{admin}
  {sluice} approvals approve <id from the list> --reason 'agreed in the ops channel' --gateway http://127.0.0.1:{admin}

What the agents did, as the gateway recorded it (each statement with its decision, each
result as the agent saw it, masked), and a check of the trail's hash chains and signatures:

  {sluice} -c {config} sessions list
  {sluice} -c {config} sessions show <session id from the list>
  {sluice} -c {config} sessions verify

Judge a statement without running it:

  {sluice} -c {config} policy explain --connection shop --roles reporter --sql 'SELECT * FROM secrets'

More tokens: {sluice} -c {config} token issue --subject my-agent --roles reporter

Ctrl-C stops the gateway and removes the database."#,
        config = config.display(),
    );
}
