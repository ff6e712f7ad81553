//! `sluice serve` as a process: TLS on the PostgreSQL listener, and SIGTERM with sessions
//! running and idle.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sluice_pgcluster::pg::PgCluster;
use support::{free_port, raw_login, read_message, upstream_database, Gateway};

fn start(cluster: &PgCluster, extra: &str) -> Gateway {
    start_with_admin(cluster, extra, free_port())
}

/// With the admin listener on `admin` (loopback), for principals with role `all`.
fn start_with_admin(cluster: &PgCluster, extra: &str, admin: u16) -> Gateway {
    let (db, dir) = upstream_database(cluster, "gw_svc", "gateway");
    let port = free_port();
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}" }}
admins: {{ roles: [all] }}
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
    Gateway::spawn(dir, port)
}

fn token(gw: &Gateway) -> String {
    gw.token("agent", "all")
}

fn psql(cluster: &PgCluster, conninfo: &str, token: &str, sql: &str) -> std::process::Output {
    support::psql(cluster.bindir(), conninfo, token, sql)
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
    // Both sessions are in the trail, each closed with its reason, and it verifies.
    let mut closes: Vec<String> = gw
        .exported()
        .iter()
        .filter(|e| e["body"]["kind"] == "session_closed")
        .filter_map(|e| e["body"]["reason"].as_str().map(str::to_string))
        .collect();
    closes.sort();
    // psql left after its statement; the idle session was closed by the shutdown.
    assert_eq!(closes, ["client left", "gateway shutdown"]);
    let verified = gw.sluice(&["sessions", "verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

#[test]
fn with_tls_configured_the_admin_api_is_served_over_tls_only() {
    let cluster = PgCluster::shared();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("gw.pem"), dir.path().join("gw-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let admin = free_port();
    let gw = start_with_admin(
        cluster,
        &format!(
            "tls: {{ cert: {}, key: {} }}",
            cert_path.display(),
            key_path.display()
        ),
        admin,
    );
    let token = token(&gw);
    let curl = |url: &str, verify: bool| {
        let mut command = Command::new("curl");
        command.args([
            "-s",
            "-o",
            "/dev/stderr",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ]);
        if verify {
            command.arg("--cacert").arg(&cert_path);
        }
        command
            .args(["-H", &format!("Authorization: Bearer {token}"), url])
            .output()
            .unwrap()
    };
    let https = curl(&format!("https://localhost:{admin}/api/v1/sessions"), true);
    assert_eq!(
        String::from_utf8_lossy(&https.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    // Not in the clear: a plain HTTP request gets no answer.
    let plain = curl(&format!("http://127.0.0.1:{admin}/api/v1/sessions"), false);
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    // And a client that does not trust the certificate refuses the listener.
    let untrusted = curl(&format!("https://localhost:{admin}/healthz"), false);
    assert!(!untrusted.status.success());
}

#[test]
fn abuse_limits_say_no_in_postgres_terms() {
    let cluster = PgCluster::shared();
    let gw = start(
        cluster,
        "limits: { sessions_per_principal: 2, statements_per_query: 3, auth_failures_per_address: 3, auth_failure_window: 1h }",
    );
    let token = token(&gw);
    let conninfo = format!("host=127.0.0.1 port={} dbname=app user=agent", gw.port);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Statements per query string: three are judged, four are refused (54000).
    let out = psql(cluster, &conninfo, &token, "SELECT 1; SELECT 2; SELECT 3");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = psql(
        cluster,
        &conninfo,
        &token,
        "SELECT 1; SELECT 2; SELECT 3; SELECT 4",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at most 3 are judged"),
        "{}",
        stderr(&out)
    );

    // Sessions per principal: two open, the third refused (53300) until one ends.
    let first = raw_login(gw.port, &token);
    let _second = raw_login(gw.port, &token);
    let out = psql(cluster, &conninfo, &token, "SELECT 1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already holds 2 sessions"),
        "{}",
        stderr(&out)
    );
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = psql(cluster, &conninfo, &token, "SELECT 'freed'");
        if out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    }

    // Failed authentications: after three, the address is turned away, good token or not.
    for _ in 0..3 {
        let out = psql(cluster, &conninfo, "not-a-token", "SELECT 1");
        assert!(
            stderr(&out).contains("authentication failed"),
            "{}",
            stderr(&out)
        );
    }
    let out = psql(cluster, &conninfo, &token, "SELECT 1");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("too many failed authentications"),
        "{}",
        stderr(&out)
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_client_that_stops_reading_does_not_grow_the_gateway() {
    use std::io::Write;
    let cluster = PgCluster::shared();
    let mut gw = start(cluster, "");
    let token = token(&gw);
    let mut stalled = raw_login(gw.port, &token);
    let before = rss_kib(gw.child.id());
    // About 200 MB of rows, which the client does not read for a while.
    let sql = "SELECT repeat('x', 1000) FROM generate_series(1, 200000)";
    let mut msg = vec![b'Q'];
    msg.extend((sql.len() as i32 + 5).to_be_bytes());
    msg.extend(sql.as_bytes());
    msg.push(0);
    stalled.write_all(&msg).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let grown = rss_kib(gw.child.id()).saturating_sub(before);
    // The relay waits for the client (backpressure) instead of buffering the result:
    // what it holds is a few frames, not the 200 MB the resource has to send.
    assert!(grown < 48 * 1024, "the gateway grew by {grown} KiB");
    // Reading on, the client gets every row.
    let mut rows = 0;
    loop {
        let (tag, _) = read_message(&mut stalled);
        match tag {
            b'D' => rows += 1,
            b'Z' => break,
            b'E' => panic!("error instead of rows"),
            _ => {}
        }
    }
    assert_eq!(rows, 200_000);
    // The record counts every row and keeps the default cap of them; the trail verifies.
    drop(stalled);
    assert!(gw.terminate().success());
    let events = gw.exported();
    let result = events
        .iter()
        .find(|e| e["body"]["kind"] == "result" && e["body"]["row_count"] == 200_000)
        .unwrap_or_else(|| panic!("no result of 200,000 rows: {events:#?}"));
    assert_eq!(result["body"]["truncated"], true);
    assert_eq!(result["body"]["rows"].as_array().map(Vec::len), Some(1000));
    assert!(gw.sluice(&["sessions", "verify"]).status.success());
}

#[test]
fn a_resource_that_refuses_connections_is_a_clear_login_error() {
    let cluster = PgCluster::shared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "gw-password").unwrap();
    let (port, closed) = (free_port(), free_port());
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}" }}
store: sqlite://./sluice.db
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://gw_svc@127.0.0.1:{closed}/app", password: {{ file: pw }} }}
policies:
  - name: all
    match: {{ roles: [all] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["*"] }}
"#
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let mut gw = Gateway::spawn(dir, port);
    let token = token(&gw);
    let conninfo = format!("host=127.0.0.1 port={port} dbname=app user=agent");
    let out = psql(cluster, &conninfo, &token, "SELECT 1");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sluice: cannot open a session with the resource of connection \"app\""),
        "{stderr}"
    );
    // The gateway goes on: the failure is recorded, and the trail verifies.
    assert!(gw.terminate().success());
    let events = gw.exported();
    assert!(
        events
            .iter()
            .any(|e| e["body"]["kind"] == "login_refused" || e["body"]["kind"] == "session_closed"),
        "{events:?}"
    );
    assert!(gw.sluice(&["sessions", "verify"]).status.success());
}

#[test]
fn oversized_messages_and_startup_packets_are_refused_with_a_reason() {
    use std::io::{Read, Write};
    let cluster = PgCluster::shared();
    let gw = start(cluster, "");
    let token = token(&gw);

    // A message that says it is larger than the 64 MiB cap: refused before it is read.
    let mut s = raw_login(gw.port, &token);
    let mut header = vec![b'Q'];
    header.extend((100i32 << 20).to_be_bytes());
    s.write_all(&header).unwrap();
    let (tag, body) = read_message(&mut s);
    assert_eq!(tag, b'E');
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("08P01") && text.contains("exceeds the limit of 67108864"),
        "{text}"
    );

    // Before login, a message larger than a password with the largest token: refused
    // before it is read, so nobody unauthenticated makes the gateway hold megabytes.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut startup = 196_608i32.to_be_bytes().to_vec();
    for kv in ["user", "agent", "database", "app", ""] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    let mut packet = (startup.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend(startup);
    s.write_all(&packet).unwrap();
    assert_eq!(read_message(&mut s).0, b'R', "asked for the password");
    let mut header = vec![b'p'];
    header.extend((1i32 << 20).to_be_bytes());
    s.write_all(&header).unwrap();
    let (tag, body) = read_message(&mut s);
    assert_eq!(tag, b'E');
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("08P01") && text.contains("exceeds the limit of 17408"),
        "{text}"
    );

    // A startup packet over 10,000 bytes: the connection is closed without a session.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&20_000i32.to_be_bytes()).unwrap();
    s.write_all(&196_608i32.to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty() || rest[0] == b'E',
        "no session for an oversized startup packet: {rest:?}"
    );
}
