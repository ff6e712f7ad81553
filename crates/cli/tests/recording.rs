//! Sessions through `sluice serve` are recorded: a psql session with allowed, refused and
//! masked statements is in the trail as the agent saw it, verifies and replays; the
//! gateway fails closed when the store cannot take events or its disk is full, and loses
//! nothing; and after SIGKILL during a busy session every statement whose result the
//! client received is in the store. The admin API serves the same trail to admins only.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_pgcluster::pg::PgCluster;
use support::{free_port, raw_login, read_message, simple_query, upstream_database, Gateway};

const CLEAR_EMAIL: &str = "alice.liddell@wonderland.example";

/// A gateway in front of a fresh database with customers (email masked), secrets (denied)
/// and an insertable table `t`; its admin API listens on the port returned third, for
/// principals with role `sluice.admin`.
fn start(cluster: &PgCluster, extra: &str) -> (Gateway, String, u16) {
    start_with_store(cluster, extra, "sqlite://./sluice.db", "")
}

/// `recording` adds keys to the `recording:` block (`, durability: disk`).
fn start_with_store(
    cluster: &PgCluster,
    extra: &str,
    store: &str,
    recording: &str,
) -> (Gateway, String, u16) {
    let (dir, port, db, admin) = prepare(cluster, extra, store, recording);
    (Gateway::spawn(dir, port), db, admin)
}

/// The database and the config `start_with_store` runs a gateway on: the config's
/// directory, the gateway's PostgreSQL port, the database and the admin port.
fn prepare(
    cluster: &PgCluster,
    extra: &str,
    store: &str,
    recording: &str,
) -> (tempfile::TempDir, u16, String, u16) {
    let (db, dir) = upstream_database(cluster, "rec_svc", "recording");
    cluster
        .execute(
            &db,
            &format!(
                "CREATE TABLE customers (id int PRIMARY KEY, email text);
                 INSERT INTO customers VALUES (1, '{CLEAR_EMAIL}');
                 CREATE TABLE secrets (x text); INSERT INTO secrets VALUES ('s3cr3t');
                 CREATE TABLE t (n int);"
            ),
        )
        .unwrap();
    let port = free_port();
    let admin = free_port();
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}" }}
admins: {{ roles: [sluice.admin] }}
store: "{store}"
recording: {{ checkpoint_interval: 200ms{recording} }}
{extra}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://rec_svc@127.0.0.1:{pg}/{db}", password: {{ file: pw }} }}
policies:
  - name: agents
    match: {{ roles: [agent] }}
    connections: [app]
    allow:
      - {{ actions: [select, insert], tables: ["public.*"] }}
    deny:
      - {{ tables: ["public.secrets"] }}
    mask:
      - {{ columns: ["public.customers.email"], with: email }}
"#,
        pg = cluster.port()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    (dir, port, db, admin)
}

fn conninfo(gw: &Gateway) -> String {
    format!(
        "host=127.0.0.1 port={} dbname=app user=agent sslmode=disable",
        gw.port
    )
}

fn verify(gw: &Gateway) {
    let out = gw.sluice(&["sessions", "verify"]);
    assert!(
        out.status.success(),
        "verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_psql_session_is_recorded_as_the_agent_saw_it_and_replays() {
    let cluster = PgCluster::shared();
    let (mut gw, _db, _) = start(cluster, "");
    let token = gw.token("reporting-agent", "agent");
    let mut psql = Command::new(cluster.bindir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", &token)
        .args(["-X", "-A", "-t", "-w", "-d", &conninfo(&gw), "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    psql.stdin
        .take()
        .unwrap()
        .write_all(
            b"SELECT id, email FROM customers ORDER BY id;\n\
              SELECT * FROM secrets;\n\
              INSERT INTO t VALUES (42);\n\
              SELECT E'\\033[2J' AS trap;\n",
        )
        .unwrap();
    let out = psql.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!seen.contains(CLEAR_EMAIL) && seen.contains("1|"), "{seen}");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        errors.contains("sluice:") && errors.contains("secrets"),
        "{errors}"
    );
    // A string of two statements: one request, one result per statement.
    let mut raw = raw_login(gw.port, &token);
    simple_query(&mut raw, "SELECT 1 AS one; SELECT 2 AS two");
    drop(raw);
    assert!(gw.terminate().success());

    let events = gw.exported();
    let first = events[0]["session_id"].clone();
    let session: Vec<&Value> = events.iter().filter(|e| e["session_id"] == first).collect();
    let second: Vec<&Value> = events.iter().filter(|e| e["session_id"] != first).collect();
    let kinds: Vec<&str> = session
        .iter()
        .map(|e| e["body"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "session_opened",
            "request",
            "result",
            "request",
            "result",
            "request",
            "result",
            "request",
            "result",
            "session_closed"
        ],
        "{events:#?}"
    );
    let opened = &session[0]["body"];
    assert_eq!(opened["principal"]["subject"], "reporting-agent");
    assert_eq!(opened["connection"], "app");
    assert_eq!(opened["tls"], false);

    let select = &session[1]["body"];
    assert_eq!(
        select["text"],
        "SELECT id, email FROM customers ORDER BY id;"
    );
    assert_eq!(select["decision"], "allow");
    assert_eq!(select["rule"], "policy agents, allow rule 1");
    assert_eq!(select["classification"][0]["kind"], "SelectStmt");
    let result = &session[2]["body"];
    assert_eq!(result["request_seq"], session[1]["seq"]);
    assert_eq!(result["columns"], serde_json::json!(["id", "email"]));
    let masked = result["rows"][0][1].as_str().unwrap();
    assert_ne!(masked, CLEAR_EMAIL);
    assert_eq!(result["rows"][0][0], "1");
    assert_eq!(result["row_count"], 1);

    let refused = &session[3]["body"];
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["rule"], "policy agents, deny rule 1");
    let error = &session[4]["body"]["error"];
    assert_eq!(error["code"], "42501");
    assert!(error["message"].as_str().unwrap().contains("secrets"));

    assert_eq!(session[6]["body"]["row_count"], 1, "INSERT 0 1");
    assert_eq!(session[9]["body"]["reason"], "client left");
    let kinds: Vec<&str> = second
        .iter()
        .map(|e| e["body"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "session_opened",
            "request",
            "result",
            "result",
            "session_closed"
        ]
    );
    assert_eq!(
        second[1]["body"]["text"],
        "SELECT 1 AS one; SELECT 2 AS two"
    );
    assert_eq!(second[2]["body"]["columns"], serde_json::json!(["one"]));
    assert_eq!(second[3]["body"]["columns"], serde_json::json!(["two"]));
    assert_eq!(second[3]["body"]["request_seq"], second[1]["seq"]);

    // The clear value is nowhere in the store, not even in the raw file.
    for file in ["sluice.db", "sluice.db-wal"] {
        let path = gw.dir.path().join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes
                    .windows(CLEAR_EMAIL.len())
                    .any(|w| w == CLEAR_EMAIL.as_bytes()),
                "{file} holds the clear email"
            );
        }
    }
    verify(&gw);
    let id = session[0]["session_id"].as_str().unwrap();
    let replay = gw.sluice(&["sessions", "replay", id, "--speed", "1000"]);
    assert!(replay.status.success());
    let transcript = String::from_utf8_lossy(&replay.stdout);
    for expected in [
        "SELECT id, email FROM customers",
        masked,
        "deny",
        "INSERT INTO t VALUES (42)",
    ] {
        assert!(
            transcript.contains(expected),
            "replay lacks {expected:?}:\n{transcript}"
        );
    }
    assert!(!transcript.contains(CLEAR_EMAIL));
    // What the agent sent reaches the auditor's terminal as text, not as escapes.
    assert!(!transcript.contains('\x1b'), "{transcript}");
    assert!(transcript.contains("\\u{1b}[2J"), "{transcript}");
}

#[test]
fn extended_protocol_executions_are_each_recorded_with_binary_values() {
    let cluster = PgCluster::shared();
    let (mut gw, _db, _) = start(cluster, "");
    let token = gw.token("agent", "agent");
    // Prepared statements with binary results (psycopg 3): one Parse, then Bind/Execute
    // for each run.
    let script = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1], password=sys.argv[2]) as conn:
    with conn.cursor(binary=True) as cur:
        for i in (1, 2):
            cur.execute("SELECT %s::int + 1 AS n", (i,), prepare=True)
            print(cur.fetchone()[0])
"#;
    let out = Command::new("python3")
        .args(["-c", script, &conninfo(&gw), &token])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n3\n");
    assert!(gw.terminate().success());
    let events = gw.exported();
    // psycopg wraps the two runs in BEGIN and COMMIT, recorded as requests of their own.
    let requests: Vec<&str> = events
        .iter()
        .filter(|e| e["body"]["kind"] == "request")
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        requests,
        [
            "BEGIN",
            "SELECT $1::int + 1 AS n",
            "SELECT $1::int + 1 AS n",
            "COMMIT"
        ],
        "one request per execution"
    );
    let rows: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["body"]["kind"] == "result" && e["body"]["columns"] == serde_json::json!(["n"])
        })
        .map(|e| &e["body"]["rows"][0][0])
        .collect();
    // Each execution's record carries the values its Bind sent.
    let parameters: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["body"]["kind"] == "request"
                && e["body"]["text"] != "BEGIN"
                && e["body"]["text"] != "COMMIT"
        })
        .map(|e| &e["body"]["parameters"])
        .collect();
    assert_eq!(parameters.len(), 2);
    assert_ne!(parameters[0], parameters[1], "{parameters:?}");
    assert_eq!(
        parameters[0].as_array().map(Vec::len),
        Some(1),
        "{parameters:?}"
    );
    // int4 in binary, recorded in bytea's hex spelling.
    assert_eq!(rows, ["\\x00000002", "\\x00000003"]);
    verify(&gw);
}

#[test]
fn a_store_that_cannot_take_events_refuses_new_statements_and_runs_nothing() {
    let cluster = PgCluster::shared();
    let (gw, db, _) = start(cluster, "");
    let token = gw.token("agent", "agent");
    let mut session = raw_login(gw.port, &token);
    assert_eq!(
        simple_query(&mut session, "SELECT 1").last().unwrap().0,
        b'Z'
    );

    // Another process holds the store's write lock.
    let lock = rusqlite::Connection::open(gw.dir.path().join("sluice.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The gateway learns when it next writes (a login's opening event), after the
    // store's busy timeout: from then on new sessions are refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = support::psql(cluster.bindir(), &conninfo(&gw), &token, "SELECT 1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("audit store cannot take events") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never noticed: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let answer = simple_query(&mut session, "INSERT INTO t VALUES (7)");
    let (tag, body) = &answer[0];
    let text = String::from_utf8_lossy(body);
    assert_eq!(*tag, b'E', "{text}");
    assert!(
        text.contains("58030") && text.contains("audit store cannot take events"),
        "{text}"
    );
    assert_eq!(answer.last().unwrap().0, b'Z', "the session goes on");
    assert_eq!(
        cluster.query_scalar(&db, "SELECT count(*) FROM t").unwrap(),
        "0"
    );

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = simple_query(&mut session, "INSERT INTO t VALUES (8)");
        if answer[0].0 == b'C' {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        cluster.query_scalar(&db, "SELECT count(*) FROM t").unwrap(),
        "1"
    );
}

#[test]
fn after_sigkill_every_acknowledged_statement_is_in_the_store() {
    let cluster = PgCluster::shared();
    let (mut gw, db, _) = start(cluster, "");
    let token = gw.token("agent", "agent");
    let port = gw.port;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|client| {
            let (token, stop) = (token.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut session = raw_login(port, &token);
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sql = format!("INSERT INTO t VALUES ({})", client * 1_000_000 + n);
                    let mut body = sql.as_bytes().to_vec();
                    body.push(0);
                    let mut msg = vec![b'Q'];
                    msg.extend((body.len() as i32 + 4).to_be_bytes());
                    msg.extend(body);
                    if std::io::Write::write_all(&mut session, &msg).is_err() {
                        break;
                    }
                    // Received: its CommandComplete arrived.
                    let completed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_message(&mut session).0 == b'C'
                    }));
                    match completed {
                        Ok(true) => acknowledged.push(sql),
                        _ => break,
                    }
                    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_message(&mut session)
                    }));
                    if ready.is_err() {
                        break;
                    }
                }
                acknowledged
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        acknowledged.len() > 30,
        "the session was not busy: {}",
        acknowledged.len()
    );

    // Restarted on the same store: the trail holds every acknowledged statement.
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let restarted = Gateway::spawn(dir, gw.port);
    let events = restarted.exported();
    let recorded: std::collections::HashSet<&str> = events
        .iter()
        .filter(|e| e["body"]["kind"] == "request")
        .filter_map(|e| e["body"]["text"].as_str())
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|sql| !recorded.contains(sql.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not recorded: {missing:?}"
    );
    // The sessions the kill cut off are closed at the restart, saying why.
    let closes: Vec<&str> = events
        .iter()
        .filter(|e| e["body"]["kind"] == "session_closed")
        .filter_map(|e| e["body"]["reason"].as_str())
        .collect();
    assert_eq!(closes.len(), 3, "{closes:?}");
    assert!(
        closes.iter().all(|r| r.contains("killed or crashed")),
        "{closes:?}"
    );
    let rows: usize = cluster
        .query_scalar(&db, "SELECT count(*) FROM t")
        .unwrap()
        .parse()
        .unwrap();
    assert!(rows >= acknowledged.len());
    verify(&restarted);
}

/// `curl` against the admin API: status code and body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["-s", "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = curl
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn the_admin_api_serves_the_trail_to_admins_only() {
    let cluster = PgCluster::shared();
    let (gw, _db, admin) = start(cluster, "");
    let agent = gw.token("reporting-agent", "agent");
    let out = support::psql(
        cluster.bindir(),
        &conninfo(&gw),
        &agent,
        "SELECT email FROM customers",
    );
    assert!(out.status.success());
    let auditor = gw.token("auditor", "sluice.admin");

    // Who may ask: nobody without a token, not the agent, the admin.
    assert_eq!(get(admin, "/api/v1/sessions", None).0, 401);
    let (code, body) = get(admin, "/api/v1/sessions", Some(&agent));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not an admin"), "{body}");
    assert_eq!(get(admin, "/api/v1/sessions", Some("not-a-token")).0, 401);

    // The session is closed (and so listed as such) once the gateway has written it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sessions = loop {
        let (code, body) = get(
            admin,
            "/api/v1/sessions?principal=reporting-agent",
            Some(&auditor),
        );
        assert_eq!(code, 200, "{body}");
        let sessions: Vec<Value> = serde_json::from_str(&body).unwrap();
        if sessions.len() == 1 && sessions[0]["status"] == "closed" {
            break sessions;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sessions[0]["connection"], "app");
    let id = sessions[0]["session_id"].as_str().unwrap();
    let (code, body) = get(
        admin,
        "/api/v1/sessions?connection=elsewhere",
        Some(&auditor),
    );
    assert_eq!((code, body.as_str()), (200, "[]"));
    assert_eq!(
        get(
            admin,
            "/api/v1/sessions?since=yesterday-ish",
            Some(&auditor)
        )
        .0,
        400
    );

    let (code, body) = get(admin, &format!("/api/v1/sessions/{id}"), Some(&auditor));
    assert_eq!(code, 200, "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "opened, request, result, closed: {body}");
    assert_eq!(events[1]["body"]["text"], "SELECT email FROM customers");
    assert!(!body.contains(CLEAR_EMAIL));
    assert_eq!(get(admin, "/api/v1/sessions/nope", Some(&auditor)).0, 404);

    let (code, body) = get(
        admin,
        &format!("/api/v1/sessions/{id}/verify"),
        Some(&auditor),
    );
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ok"], true);

    // The export is the command line's, line for line.
    let (code, body) = get(admin, "/api/v1/sessions/export", Some(&auditor));
    assert_eq!(code, 200);
    let cli = gw.sluice(&["sessions", "export", "--format", "jsonl"]);
    assert_eq!(body, String::from_utf8(cli.stdout).unwrap());
    assert!(body.lines().count() >= 4);

    let (code, body) = get(admin, "/api/v1/openapi.json", None);
    assert_eq!(code, 200);
    assert!(body.contains("/api/v1/sessions/{id}/verify"));
}

/// Runs `sql` through `gw` with psql as an agent, expecting success, then stops the
/// gateway (so everything it recorded is written and signed).
fn one_statement_then_stop(cluster: &PgCluster, gw: &mut Gateway, sql: &str) {
    let token = gw.token("agent", "agent");
    let out = support::psql(cluster.bindir(), &conninfo(gw), &token, sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gw.terminate().success());
}

#[test]
fn a_postgres_store_records_and_verify_names_a_changed_event() {
    let cluster = PgCluster::shared();
    let store_db = cluster.fresh_database("audit_store");
    let (mut gw, _db, _) = start_with_store(cluster, "", &cluster.url(&store_db), "");
    one_statement_then_stop(cluster, &mut gw, "SELECT email FROM customers");
    // The trail is in PostgreSQL, as the agent saw it, and verifies.
    let events = gw.exported();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains(CLEAR_EMAIL));
    verify(&gw);
    // A changed request text is named by session and seq.
    let session = events[0]["session_id"].as_str().unwrap();
    cluster
        .execute(
            &store_db,
            &format!(
                "UPDATE audit_events SET body = replace(body, 'SELECT email', 'SELECT 1') \
                 WHERE session_id = '{session}' AND seq = 1"
            ),
        )
        .unwrap();
    let out = gw.sluice(&["sessions", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("session {session}, seq 1")) && said.contains("changed"),
        "{said}"
    );
}

#[test]
fn durability_disk_records_through_the_writer_and_recording_off_records_nothing() {
    let cluster = PgCluster::shared();
    let (mut disk, _, _) =
        start_with_store(cluster, "", "sqlite://./sluice.db", ", durability: disk");
    one_statement_then_stop(cluster, &mut disk, "SELECT id FROM customers");
    let kinds: Vec<String> = disk
        .exported()
        .iter()
        .map(|e| e["body"]["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["session_opened", "request", "result", "session_closed"]
    );
    verify(&disk);

    let (mut off, _, _) = start_with_store(cluster, "", "sqlite://./sluice.db", ", enabled: false");
    one_statement_then_stop(cluster, &mut off, "SELECT id FROM customers");
    assert!(off.exported().is_empty());
}

/// Runs a command (the gateway) on a disk of its own: in a mount namespace of its own
/// (`unshare`; no privilege needed where user namespaces are enabled), a 16 MiB tmpfs is
/// mounted over `$1`, seeded with what `$1` held; the command's pid goes to `$3` (it dies
/// with the shell); when it ends, what the small disk holds is copied back to `$1`
/// (through `$2`) for the test.
const ON_A_SMALL_DISK: &str = r#"
set -e
disk=$1; stage=$2; pidfile=$3; shift 3
cp -a "$disk/." "$stage/"
mount -t tmpfs -o size=16m sluice-test-disk "$disk"
cp -a "$stage/." "$disk/"
setpriv --pdeathsig KILL -- "$@" &
echo $! > "$pidfile"
rc=0; wait $! || rc=$?
rm -rf "$stage"; mkdir "$stage"
cp -a "$disk/." "$stage/"
umount "$disk"
cp -a "$stage/." "$disk/"
exit $rc
"#;

/// Kills a process when dropped, unless disarmed, so a failed test leaves no gateway
/// behind.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn insert(session: &mut std::net::TcpStream, n: u32) -> Vec<(u8, Vec<u8>)> {
    simple_query(session, &format!("INSERT INTO t VALUES ({n})"))
}

#[test]
fn a_full_disk_refuses_new_statements_loses_nothing_and_recovers() {
    let cluster = PgCluster::shared();
    // The journal (in the data dir) and the store both live on the small disk.
    let (dir, port, db, _) = prepare(cluster, "data_dir: disk", "sqlite://./disk/sluice.db", "");
    let disk = dir.path().join("disk");
    let stage = dir.path().join("stage");
    let pidfile = dir.path().join("gateway.pid");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(&stage).unwrap();
    let config = dir.path().join("sluice.yaml");
    // Issued before the start, so the issuer's key is on the disk the gateway gets.
    let token = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(&config)
        .args(["token", "issue", "--subject", "agent", "--roles", "agent"])
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(ON_A_SMALL_DISK)
        .arg("sh")
        .args([&disk, &stage, &pidfile])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .arg("-c")
        .arg(&config)
        .arg("serve")
        .stderr(log)
        .spawn()
        .expect("unshare (util-linux) runs the gateway on a disk of its own");
    let namespace = child.id();
    let mut gw = Gateway { child, port, dir };
    let log = gw.dir.path().join("gateway.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let gateway_pid: u32 = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            panic!(
                "the gateway on its own disk did not start ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
        if let (Ok(pid), true) = (
            pid.trim().parse(),
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        ) {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut guard = KillOnDrop(Some(gateway_pid));

    let mut session = raw_login(port, &token);
    let mut acknowledged = vec![];
    assert_eq!(insert(&mut session, 1)[0].0, b'C');
    acknowledged.push(1);

    // Fill the gateway's disk, seen through its mount namespace.
    let filler = format!("/proc/{namespace}/root{}/filler", disk.display());
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let full = loop {
        if let Err(e) = file.write_all(&chunk).and_then(|_| file.sync_all()) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(28), "{full}"); // ENOSPC
    drop(file);

    // New statements are refused, and run nothing, once the gateway meets the full disk:
    // a request is journaled before it runs, so at once, or after the few that still fit
    // in the journal's last page.
    let mut n = 2;
    let refused = loop {
        let answer = insert(&mut session, n);
        assert_eq!(answer.last().unwrap().0, b'Z', "the session goes on");
        if answer[0].0 == b'E' {
            break String::from_utf8_lossy(&answer[0].1).to_string();
        }
        acknowledged.push(n);
        n += 1;
        assert!(n < 20, "the gateway never noticed the full disk");
    };
    assert!(
        refused.contains("58030") && refused.contains("audit store cannot take events"),
        "{refused}"
    );
    assert_eq!(
        cluster
            .query_scalar(&db, &format!("SELECT count(*) FROM t WHERE n = {n}"))
            .unwrap(),
        "0",
        "a refused statement ran"
    );
    let out = support::psql(cluster.bindir(), &conninfo(&gw), &token, "SELECT 1");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("audit store cannot take events"),
        "a new session was let in unrecorded: {said}"
    );

    // Room again: the gateway writes what waited and takes statements.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        n += 1;
        if insert(&mut session, n)[0].0 == b'C' {
            acknowledged.push(n);
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(session);

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("No space left on device"), "{logged}");
    Command::new("kill")
        .args(["-TERM", &gateway_pid.to_string()])
        .status()
        .unwrap();
    let status = gw.child.wait().unwrap();
    guard.0 = None; // ended, and reaped: its pid may be another process's now
    assert!(status.success(), "{status}");

    // Every acknowledged statement is in the trail, and the trail verifies.
    let recorded: Vec<String> = gw
        .exported()
        .iter()
        .filter(|e| e["body"]["kind"] == "request")
        .filter_map(|e| e["body"]["text"].as_str().map(str::to_string))
        .collect();
    for n in &acknowledged {
        let sql = format!("INSERT INTO t VALUES ({n})");
        assert!(recorded.contains(&sql), "{sql} is missing: {recorded:?}");
    }
    verify(&gw);
}
