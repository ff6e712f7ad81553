//! A gateway in front of an ephemeral PostgreSQL loaded with the policy corpus, for the
//! end-to-end tests: real clients (psql, tokio-postgres, raw protocol) through the real
//! listener, tokens from the local issuer. Every session is recorded into a SQLite
//! store in the fixture's folder, so the whole suite runs with recording on.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_identity::{Authenticator, LocalIssuer, ProviderSettings, TokenRequest};
use sluice_pgcluster::pg::PgCluster;
use sluice_postgres::PgGateway;
use sluice_recorder::{Recorder, RecorderSettings};
use sluice_store::{SqliteStore, Store};

pub mod raw;

pub const SVC_USER: &str = "sluice_svc";

pub struct Fixture {
    pub cluster: &'static PgCluster,
    pub db: String,
    pub port: u16,
    pub issuer: LocalIssuer,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    /// Where the sessions are recorded.
    pub store: Arc<dyn Store>,
    pub recorder: Recorder,
    /// The key the recorder's checkpoints verify with.
    pub audit_key: sluice_audit::PublicKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres")
}

const POLICIES: &str = r#"
policies:
  - name: readers
    match: { roles: [reader] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
    deny:
      - { tables: ["public.secrets"] }
  - name: writers
    match: { roles: [writer] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
      - { actions: [insert, update, delete, copy_in, copy_out], tables: ["public.orders"] }
      - { functions: [pg_catalog.pg_sleep] }
    deny:
      - { tables: ["public.secrets"] }
    approve:
      - { actions: [truncate], tables: ["public.orders"], approvers: { groups: [dba] } }
  - name: everything
    match: { roles: [all] }
    connections: [app]
    allow:
      - { actions: [select, insert, update, delete, merge, truncate, copy_in, copy_out, lock, explain], tables: ["*"] }
      - { actions: [ddl, grant, set, maintenance, notify, transaction, procedural, call] }
      - { functions: ["*"] }
  - name: config-setter
    match: { roles: [config-setter] }
    connections: [app]
    allow:
      - { actions: [select, insert], tables: ["public.*"] }
      - { functions: [pg_catalog.set_config] }
  - name: pathfinder
    match: { roles: [pathfinder] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
      - { actions: [set], settings: [search_path] }
  # As the corpus's sluice.yaml has it.
  - name: masked-readers
    match: { roles: [masked-reader] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.customers", "public.orders", "public.customer_contacts"] }
    mask:
      - { columns: ["public.customers.email"], with: email }
      - { columns: ["public.customers.card_number"], with: last4 }
      - { columns: ["public.customers.ssn"], with: redact }
  - name: strict-masks
    match: { roles: [strict-masked] }
    connections: [app]
    mask_predicates: refuse
    allow:
      - { actions: [select], tables: ["public.customers", "public.customer_contacts"] }
    mask:
      - { columns: ["public.customers.email"], with: email }
  - name: other-masks
    match: { roles: [other-masks] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.customers", "public.orders"] }
      - { actions: [copy_out], tables: ["public.orders", "public.customers"] }
      - { functions: ["pg_catalog.generate_series"] }
    mask:
      - { columns: ["public.orders.total"], with: last4 }
      - { columns: ["*.name"], with: hash }
      - { detect: [credit_card, us_ssn], with: redact }
  - name: limited
    match: { roles: [limited] }
    connections: [app]
    allow:
      - { actions: [select], tables: ["public.*"] }
      - { functions: ["pg_catalog.generate_series"] }
    limits: { statement_timeout: 1s, max_rows: 5 }
"#;

impl Fixture {
    pub fn start() -> Fixture {
        sluice_postgres::tls::install_crypto_provider();
        let cluster = PgCluster::shared();
        static ROLE: std::sync::Once = std::sync::Once::new();
        ROLE.call_once(|| {
            cluster
                .create_role(SVC_USER, "svc-password", true)
                .expect("service role")
        });
        let db = cluster.fresh_database("proxy");
        let setup = std::fs::read_to_string(corpus_dir().join("setup.sql")).unwrap();
        cluster.execute(&db, &setup).expect("corpus schema");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("svc-password"), "svc-password\n").unwrap();
        let config = format!(
            r#"
listen: {{ postgres: "127.0.0.1:0" }}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - name: app
    kind: postgres
    upstream: "postgres://{SVC_USER}@127.0.0.1:{port}/{db}"
    password: {{ file: svc-password }}
{POLICIES}"#,
            port = cluster.port()
        );
        let config_path = dir.path().join("sluice.yaml");
        std::fs::write(&config_path, &config).unwrap();
        let config = sluice_config::load_file(&config_path).unwrap_or_else(|d| panic!("{d}"));
        let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("sluice.db")).unwrap());
        // Recording as `sluice serve` does by default: sessions journal their own events.
        let journal = dir.path().join("audit-journal");
        let signer = sluice_audit::CheckpointSigner::generate();
        let audit_key = signer.public_key().clone();
        let (rt, port, stop, recorder) = spawn_gateway(
            &config,
            issuer.clone(),
            Some((store.clone(), journal, signer)),
        );
        Fixture {
            cluster,
            db,
            port,
            issuer,
            rt,
            dir,
            store,
            recorder: recorder.expect("recording"),
            audit_key,
            stop: Some(stop),
        }
    }

    /// Checks the whole trail recorded so far, chains and checkpoints, as `sluice
    /// sessions verify` does; returns every event.
    pub fn verify_trail(&self) -> Vec<sluice_audit::Event> {
        self.rt.block_on(self.recorder.flush()).unwrap();
        // Checkpoints first: one signed after the events were read could name a head
        // they do not reach.
        let checkpoints = self.store.checkpoints().unwrap();
        let mut events = Vec::new();
        for id in self.store.session_ids(None, 100_000).unwrap() {
            events.extend(self.store.session_events(&id).unwrap());
        }
        sluice_audit::verify_against_checkpoints(&events, &checkpoints, &self.audit_key)
            .unwrap_or_else(|e| panic!("the trail does not verify: {e}"));
        events
    }

    /// Waits (10 s at most) until the verified trail holds an event `wanted` picks: what
    /// a session records as it ends may reach the recorder just after its client saw
    /// the end.
    pub fn wait_recorded(&self, wanted: impl Fn(&sluice_audit::EventBody) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.verify_trail();
            if events.iter().any(|e| wanted(&e.body)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not recorded: {events:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every result event recorded so far (after the writer has stored what is queued),
    /// as JSON text.
    /// The recorded results that counted `rows` rows, as JSON.
    pub fn recorded_results_of(&self, rows: u64) -> Vec<serde_json::Value> {
        self.recorded_results()
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap())
            .filter(|r| r["row_count"] == rows)
            .collect()
    }

    pub fn recorded_results(&self) -> Vec<String> {
        self.rt.block_on(self.recorder.flush()).unwrap();
        let mut results = Vec::new();
        for id in self.store.session_ids(None, 100_000).unwrap() {
            for event in self.store.session_events(&id).unwrap() {
                if let sluice_audit::EventBody::Result(result) = &event.body {
                    results.push(serde_json::to_string(result).unwrap());
                }
            }
        }
        results
    }

    pub fn token(&self, subject: &str, roles: &[&str]) -> String {
        self.token_with_ttl(subject, roles, Duration::from_secs(3600))
    }

    pub fn token_with_ttl(&self, subject: &str, roles: &[&str], ttl: Duration) -> String {
        self.issuer
            .issue(&TokenRequest {
                subject: subject.into(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                groups: vec![],
                ttl,
                audience: LocalIssuer::default_audience().into(),
                name: None,
            })
            .unwrap()
    }

    /// tokio-postgres config for the gateway with `password` (a token).
    pub fn client_config(&self, password: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("agent")
            .dbname("app")
            .password(password);
        config
    }

    pub async fn connect(
        &self,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self
            .client_config(password)
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A tokio-postgres client straight to the database, as the service role.
    pub async fn connect_direct(&self) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.cluster.port())
            .user(SVC_USER)
            .dbname(&self.db)
            .password("svc-password");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// `psql` through the gateway with `token`, running `sql`; returns (success, stdout, stderr).
    pub fn psql(&self, token: &str, sql: &str) -> (bool, String, String) {
        let mut cmd = std::process::Command::new(self.cluster.bindir().join("psql"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .env("PGPASSWORD", token)
            .args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={} user=agent dbname=app sslmode=disable",
                self.port
            ))
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// A client program run against the gateway (the driver checks): no `PG*` variables from
    /// the environment, and the gateway's address, database and `token` in `SLUICE_PG_HOST`,
    /// `SLUICE_PG_PORT`, `SLUICE_PG_DATABASE` and `SLUICE_PG_TOKEN`.
    pub fn client_command(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        token: &str,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("SLUICE_PG_HOST", "127.0.0.1")
            .env("SLUICE_PG_PORT", self.port.to_string())
            .env("SLUICE_PG_DATABASE", "app")
            .env("SLUICE_PG_TOKEN", token);
        cmd
    }

    /// A summary of everything a refused statement could have changed.
    pub fn state(&self) -> String {
        self.cluster
            .query_scalar(
                &self.db,
                "SELECT concat_ws(',',
                    (SELECT count(*) FROM orders), (SELECT sum(total) FROM orders),
                    (SELECT count(*) FROM customers), (SELECT count(*) FROM orders_archive),
                    (SELECT count(*) FROM secrets), (SELECT last_value FROM orders_id_seq),
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'),
                    (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
                    (SELECT count(*) FROM pg_roles),
                    (SELECT string_agg(relname || ':' || array_to_string(relacl, ' '), ';' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relacl IS NOT NULL),
                    (SELECT count(*) FROM pg_largeobject_metadata))",
            )
            .unwrap()
    }
}

/// Runs a gateway for `config`, trusting tokens from `issuer`, recording (into a store, with
/// a journal) when given, on
/// its own runtime and a free port; it stops when the returned sender is dropped or sent
/// to.
pub fn spawn_gateway(
    config: &sluice_config::Config,
    issuer: LocalIssuer,
    recording: Option<(Arc<dyn Store>, PathBuf, sluice_audit::CheckpointSigner)>,
) -> (
    tokio::runtime::Runtime,
    u16,
    tokio::sync::oneshot::Sender<()>,
    Option<Recorder>,
) {
    sluice_postgres::tls::install_crypto_provider();
    let authenticator =
        Authenticator::new(vec![ProviderSettings::local("local", issuer)], None).unwrap();
    let policies = Arc::new(sluice_policy::PolicySet::compile(config).unwrap());
    let classifier = Arc::new(sluice_sql::Classifier::default());
    let mut gateway = PgGateway::from_config(config, authenticator, policies, classifier).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let recorder = recording.map(|(store, journal, signer)| {
        let _entered = rt.enter();
        Recorder::start(
            store,
            signer,
            RecorderSettings {
                journal: Some(journal),
                ..RecorderSettings::default()
            },
        )
        .unwrap()
    });
    gateway.recorder = recorder.clone();
    let gateway = Arc::new(gateway);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(sluice_postgres::serve(
        listener,
        gateway,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (rt, port, stop, recorder)
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(serde::Deserialize)]
pub struct Case {
    pub sql: String,
    pub why: String,
}

pub fn cases(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_dir().join(file)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}
