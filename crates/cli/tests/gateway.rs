//! `sluice serve` as a process: TLS on the PostgreSQL listener, and SIGTERM with sessions
//! running and idle.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_pgcluster::pg::PgCluster;

struct Gateway {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(cluster: &PgCluster, extra: &str) -> Gateway {
    static ROLE: std::sync::Once = std::sync::Once::new();
    ROLE.call_once(|| cluster.create_role("gw_svc", "gw-password", true).unwrap());
    let db = cluster.fresh_database("gateway");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "gw-password").unwrap();
    let port = free_port();
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}" }}
store: sqlite://./sluice.db
{extra}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://gw_svc@127.0.0.1:{pg}/{db}", password: {{ file: pw }} }}
policies:
  - name: all
    match: {{ roles: [all] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["*"] }}
      - {{ functions: [pg_catalog.pg_sleep] }}
"#,
        pg = cluster.port()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(dir.path().join("sluice.yaml"))
        .arg("serve")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Gateway { child, port, dir }
}

fn token(gw: &Gateway) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(gw.dir.path().join("sluice.yaml"))
        .args(["token", "issue", "--subject", "agent", "--roles", "all"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn psql(cluster: &PgCluster, conninfo: &str, token: &str, sql: &str) -> std::process::Output {
    Command::new(cluster.bindir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", token)
        .args(["-X", "-A", "-t", "-w", "-d", conninfo, "-c", sql])
        .output()
        .unwrap()
}

#[test]
fn the_postgres_listener_speaks_tls() {
    let cluster = PgCluster::shared();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("gw.pem"), dir.path().join("gw-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let gw = start(
        cluster,
        &format!(
            "tls: {{ cert: {}, key: {} }}",
            cert_path.display(),
            key_path.display()
        ),
    );
    let token = token(&gw);
    let verified = format!(
        "host=localhost port={} dbname=app user=agent sslmode=verify-full sslrootcert={}",
        gw.port,
        cert_path.display()
    );
    let out = psql(cluster, &verified, &token, "SELECT 'over tls'");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over tls");
    // A client that checks the certificate against another CA refuses the gateway.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, other.cert.pem()).unwrap();
    let wrong = verified.replace(
        &cert_path.display().to_string(),
        &other_path.display().to_string(),
    );
    let out = psql(cluster, &wrong, &token, "SELECT 1");
    assert!(!out.status.success());
}

/// Logs in with the raw protocol and returns the stream after the first ReadyForQuery.
fn raw_login(port: u16, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut body = 196608i32.to_be_bytes().to_vec();
    for kv in ["user", "agent", "database", "app", ""] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend(body);
    s.write_all(&packet).unwrap();
    let mut password = token.as_bytes().to_vec();
    password.push(0);
    let mut msg = vec![b'p'];
    msg.extend((password.len() as i32 + 4).to_be_bytes());
    msg.extend(password);
    let _ = read_message(&mut s); // AuthenticationCleartextPassword
    s.write_all(&msg).unwrap();
    while read_message(&mut s).0 != b'Z' {}
    s
}

fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    s.read_exact(&mut header).unwrap();
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    (header[0], body)
}

#[test]
fn sigterm_lets_running_statements_finish_then_closes_sessions() {
    let cluster = PgCluster::shared();
    let mut gw = start(cluster, "shutdown_grace: 3s");
    let token = token(&gw);
    let mut idle = raw_login(gw.port, &token);
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=app user=agent sslmode=disable",
        gw.port
    );
    let running = {
        let (bindir, token, conninfo) = (
            cluster.bindir().to_path_buf(),
            token.clone(),
            conninfo.clone(),
        );
        std::thread::spawn(move || {
            Command::new(Path::new(&bindir).join("psql"))
                .env_clear()
                .env("PGPASSWORD", token)
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-w",
                    "-d",
                    &conninfo,
                    "-c",
                    "SELECT pg_sleep(1.5), 'finished'",
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .arg("-TERM")
        .arg(gw.child.id().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(("127.0.0.1", gw.port)).is_err(),
        "still accepting after SIGTERM"
    );
    let out = running.join().unwrap();
    assert!(
        out.status.success(),
        "the running statement was cut: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished"));
    // The idle session is closed with a FATAL once the grace period is over.
    let (tag, body) = read_message(&mut idle);
    assert_eq!(tag, b'E');
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("57P01") && text.contains("shutting down"),
        "{text}"
    );
    let status = gw.child.wait().unwrap();
    assert!(status.success(), "{status}");
}
