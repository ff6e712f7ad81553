//! The gateway's own login to the resource: SCRAM (the other tests), md5, trust, and TLS
//! with the resource's certificate verified.

mod support;

use std::time::Duration;

use sluice_identity::{LocalIssuer, TokenRequest};
use sluice_pgcluster::pg::PgCluster;

/// A running gateway, kept up as long as this value lives.
struct Running {
    rt: tokio::runtime::Runtime,
    port: u16,
    token: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A gateway whose one connection logs in as `user` with `password` (if any) and the
/// extra upstream URL query; returns it running, with a reader token.
fn gateway(
    upstream_query: &str,
    user: &str,
    password: Option<&str>,
    ca: Option<&std::path::Path>,
) -> Running {
    sluice_postgres::tls::install_crypto_provider();
    let cluster = PgCluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let password_line = match password {
        Some(p) => {
            std::fs::write(dir.path().join("pw"), p).unwrap();
            "    password: { file: pw }\n".to_string()
        }
        None => String::new(),
    };
    let ca_line = ca
        .map(|p| format!("    ca: {}\n", p.display()))
        .unwrap_or_default();
    let config = format!(
        "listen: {{ postgres: \"127.0.0.1:0\" }}\nidentity:\n  providers:\n    - {{ name: local, local: {{}} }}\nconnections:\n  - name: app\n    kind: postgres\n    upstream: \"postgres://{user}@{host}:{port}/postgres{upstream_query}\"\n{password_line}{ca_line}policies:\n  - name: r\n    match: {{ roles: [r] }}\n    connections: [app]\n    allow:\n      - {{ actions: [select], tables: [\"*\"] }}\n",
        host = if ca.is_some() { "localhost" } else { "127.0.0.1" },
        port = cluster.port()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let config =
        sluice_config::load_file(&dir.path().join("sluice.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let issuer = LocalIssuer::load_or_create(dir.path()).unwrap();
    let token = issuer
        .issue(&TokenRequest {
            subject: "agent".into(),
            roles: vec!["r".into()],
            groups: vec![],
            ttl: Duration::from_secs(600),
            audience: LocalIssuer::default_audience().into(),
            name: None,
        })
        .unwrap();
    let (rt, port, stop, _) = support::spawn_gateway(&config, issuer, None);
    Running {
        rt,
        port,
        token,
        _dir: dir,
        _stop: stop,
    }
}

async fn query_through(port: u16, token: &str) -> Result<String, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("agent")
        .dbname("app")
        .password(token);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let rows = client.simple_query("SELECT current_user").await?;
    Ok(rows
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default())
}

#[test]
fn md5_and_trust_logins() {
    let cluster = PgCluster::shared();
    cluster.execute("postgres", "SET password_encryption = 'md5'; CREATE ROLE md5_svc LOGIN PASSWORD 'md5-secret'; CREATE ROLE trust_svc LOGIN").unwrap();
    cluster
        .prepend_hba("host all md5_svc 127.0.0.1/32 md5")
        .unwrap();
    cluster
        .prepend_hba("host all trust_svc 127.0.0.1/32 trust")
        .unwrap();

    let g = gateway("", "md5_svc", Some("md5-secret"), None);
    assert_eq!(
        g.rt.block_on(query_through(g.port, &g.token)).unwrap(),
        "md5_svc"
    );
    let g = gateway("", "md5_svc", Some("wrong"), None);
    let err = g.rt.block_on(query_through(g.port, &g.token)).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("08006"), "{err}");
    let g = gateway("", "trust_svc", None, None);
    assert_eq!(
        g.rt.block_on(query_through(g.port, &g.token)).unwrap(),
        "trust_svc"
    );
}

#[test]
fn upstream_tls_is_verified() {
    let cluster = PgCluster::shared();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    cluster
        .enable_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem())
        .unwrap();
    cluster.execute("postgres", "DO $$ BEGIN CREATE ROLE tls_svc LOGIN PASSWORD 'tls-secret'; EXCEPTION WHEN duplicate_object THEN NULL; END $$").unwrap();
    cluster
        .prepend_hba("hostnossl all tls_svc 127.0.0.1/32 reject")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();

    let g = gateway(
        "?sslmode=verify-full",
        "tls_svc",
        Some("tls-secret"),
        Some(&ca),
    );
    assert_eq!(
        g.rt.block_on(query_through(g.port, &g.token)).unwrap(),
        "tls_svc"
    );
    // Without TLS the resource refuses this role.
    let g = gateway("?sslmode=disable", "tls_svc", Some("tls-secret"), None);
    assert!(g.rt.block_on(query_through(g.port, &g.token)).is_err());
    // A certificate the configured CA did not sign: the gateway will not talk to it.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let g = gateway(
        "?sslmode=verify-full",
        "tls_svc",
        Some("tls-secret"),
        Some(&other_ca),
    );
    let err = g.rt.block_on(query_through(g.port, &g.token)).unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("08006"), "{err}");
}
