//! Just-in-time approval end to end: `sluice serve` in front of a real PostgreSQL, agents
//! on psql and tokio-postgres, approvers on `sluice approvals` and the admin API with
//! their own tokens. The database itself proves that each held or ticketed statement ran
//! exactly once, or never.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_pgcluster::pg::PgCluster;
use support::{free_port, upstream_database, Gateway};

/// A gateway whose agents (role `agent`) may read `orders`; deleting from it is held for
/// the `dba` group (`hold_timeout`), updating it is held for two of them, and inserting
/// into `ran` needs a ticket. Returns the gateway, its database and the admin port.
fn start(cluster: &PgCluster, hold_timeout: &str, grant_window: &str) -> (Gateway, String, u16) {
    start_with(
        cluster,
        hold_timeout,
        &format!("grant_window: {grant_window}"),
    )
}

/// `approvals` is the inside of the config's `approvals: { ... }`.
fn start_with(cluster: &PgCluster, hold_timeout: &str, approvals: &str) -> (Gateway, String, u16) {
    let (db, dir) = upstream_database(cluster, "apr_svc", "approvals");
    cluster
        .execute(
            &db,
            "CREATE TABLE orders (id int PRIMARY KEY, note text);
             INSERT INTO orders SELECT g, 'open' FROM generate_series(1, 9) g;
             CREATE TABLE ran (tag text);",
        )
        .unwrap();
    let port = free_port();
    let admin = free_port();
    let config = format!(
        r#"
listen: {{ postgres: "127.0.0.1:{port}", admin: "127.0.0.1:{admin}" }}
admins: {{ roles: [sluice.admin] }}
store: "sqlite://./sluice.db"
recording: {{ checkpoint_interval: 200ms }}
approvals: {{ {approvals} }}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://apr_svc@127.0.0.1:{pg}/{db}", password: {{ file: pw }} }}
policies:
  - name: operators
    match: {{ roles: [agent] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["public.*"] }}
    approve:
      - {{ actions: [delete], tables: ["public.orders"], approvers: {{ groups: [dba] }}, mode: hold, timeout: {hold_timeout} }}
      - {{ actions: [update], tables: ["public.orders"], approvers: {{ groups: [dba] }}, mode: hold, min_approvals: 2, timeout: 60s }}
      - {{ actions: [insert], tables: ["public.ran"], approvers: {{ groups: [dba] }}, mode: ticket, timeout: 60s }}
"#,
        pg = cluster.port()
    );
    std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
    let gw = Gateway::spawn(dir, port);
    wait_port(admin);
    (gw, db, admin)
}

/// Waits until something listens on `port` (the admin API starts beside the listener
/// `Gateway::spawn` waits for).
fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn conninfo(gw: &Gateway) -> String {
    format!(
        "host=127.0.0.1 port={} dbname=app user=agent sslmode=disable",
        gw.port
    )
}

/// A person's token (`idtyp` user) in `groups`.
fn person(gw: &Gateway, subject: &str, groups: &str) -> String {
    issue(gw, &["--subject", subject, "--groups", groups, "--user"])
}

/// An agent's token (an application) with role `agent`.
fn agent(gw: &Gateway, subject: &str) -> String {
    issue(gw, &["--subject", subject, "--roles", "agent"])
}

fn issue(gw: &Gateway, args: &[&str]) -> String {
    let mut all = vec!["token", "issue"];
    all.extend_from_slice(args);
    let out = gw.sluice(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// psql running `sql` as `token`, in the background.
fn psql_child(cluster: &PgCluster, gw: &Gateway, token: &str, sql: &str) -> Child {
    Command::new(cluster.bindir().join("psql"))
        .env_clear()
        .env("PGPASSWORD", token)
        .args(["-X", "-A", "-t", "-w", "-d", &conninfo(gw), "-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn psql(cluster: &PgCluster, gw: &Gateway, token: &str, sql: &str) -> Output {
    support::psql(cluster.bindir(), &conninfo(gw), token, sql)
}

/// `sluice approvals <args>` against the gateway's admin API as `token`.
fn approvals(gw: &Gateway, admin: u16, token: &str, args: &[&str]) -> Output {
    let gateway = format!("http://127.0.0.1:{admin}");
    let mut all = vec!["approvals"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--gateway", &gateway, "--token", token]);
    gw.sluice(&all)
}

fn decide(gw: &Gateway, admin: u16, token: &str, verdict: &str, id: &str, reason: &str) -> Output {
    approvals(
        gw,
        admin,
        token,
        &[verdict, id, "--reason", reason, "--json"],
    )
}

/// Waits until `token` sees exactly one pending request, and returns it.
fn pending_one(gw: &Gateway, admin: u16, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = approvals(gw, admin, token, &["list", "--status", "pending", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        match list.len() {
            0 => {}
            1 => return list.into_iter().next().unwrap(),
            n => panic!("{n} pending requests: {list:?}"),
        }
        assert!(Instant::now() < deadline, "no request became pending");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show(gw: &Gateway, admin: u16, token: &str, id: &str) -> Value {
    let out = approvals(gw, admin, token, &["show", id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits for the request to reach `status`.
fn await_status(gw: &Gateway, admin: u16, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = show(gw, admin, token, id);
        if view["status"] == status {
            return view;
        }
        assert!(Instant::now() < deadline, "{id} stayed {}", view["status"]);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn finish(child: Child) -> (bool, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn count(cluster: &PgCluster, db: &str, sql: &str) -> i64 {
    cluster
        .query_scalar(db, sql)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The `apr_...` id in a message.
fn approval_id(text: &str) -> String {
    let at = text
        .find("apr_")
        .unwrap_or_else(|| panic!("no approval id in {text}"));
    text[at..at + 24].to_string()
}

#[test]
fn a_held_statement_runs_once_approved_and_the_trail_has_every_step() {
    let cluster = PgCluster::shared();
    let (mut gw, db, admin) = start(cluster, "60s", "15m");
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");

    let held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 1");
    let request = pending_one(&gw, admin, &alice);
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["mode"], "hold");
    assert_eq!(request["statement"], "DELETE FROM orders WHERE id = 1");
    assert_eq!(request["principal"]["subject"], "agent-1");
    assert_eq!(request["connection"], "app");
    assert!(request["reason"]
        .as_str()
        .unwrap()
        .contains("requires approval"));
    assert!(request["console_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/approvals/{id}")));
    // Held means not run.
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        1
    );

    let out = decide(&gw, admin, &alice, "approve", &id, "ticket OPS-12");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decided: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decisions"][0]["approver"]["subject"], "alice");
    assert_eq!(decided["decisions"][0]["reason"], "ticket OPS-12");

    let (ok, stdout, stderr) = finish(held);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("DELETE 1"), "{stdout}");
    // The agent was told at once what it waits for and where it is decided.
    assert!(
        stderr.contains(&format!("NOTICE:  sluice: approval {id} requested")),
        "{stderr}"
    );
    assert!(stderr.contains("/approvals/apr_"), "{stderr}");
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        0
    );
    assert_eq!(count(cluster, &db, "SELECT count(*) FROM orders"), 8);

    assert!(gw.terminate().success());
    let events = gw.exported();
    let kinds: Vec<(&str, Value)> = events
        .iter()
        .map(|e| (e["body"]["kind"].as_str().unwrap(), e["body"].clone()))
        .collect();
    let at = kinds
        .iter()
        .position(|(k, b)| *k == "request" && b["decision"] == "approve")
        .expect("the request for approval is recorded");
    assert_eq!(kinds[at].1["approval_id"], id.as_str());
    assert_eq!(kinds[at + 1].0, "approval_decided");
    assert_eq!(kinds[at + 1].1["approver"]["subject"], "alice");
    assert_eq!(kinds[at + 1].1["verdict"], "approve");
    assert_eq!(kinds[at + 2].0, "approval_resolved");
    assert_eq!(kinds[at + 2].1["status"], "approved");
    assert_eq!(kinds[at + 3].0, "request");
    assert_eq!(kinds[at + 3].1["decision"], "allow");
    assert_eq!(kinds[at + 3].1["approval_id"], id.as_str());
    assert_eq!(kinds[at + 4].0, "result");
    assert_eq!(kinds[at + 4].1["row_count"], 1);
    let out = gw.sluice(&["sessions", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_denied_or_expired_statement_never_runs() {
    let cluster = PgCluster::shared();
    let (_gw, db, admin) = start(cluster, "2s", "15m");
    let gw = &_gw;
    let agent = agent(gw, "agent-1");
    let alice = person(gw, "alice", "dba");

    let held = psql_child(cluster, gw, &agent, "DELETE FROM orders WHERE id = 2");
    let id = pending_one(gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = decide(gw, admin, &alice, "deny", &id, "not during the freeze");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, _, stderr) = finish(held);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "ERROR:  sluice: approval {id} denied by alice: not during the freeze"
        )),
        "{stderr}"
    );
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 2"),
        1
    );

    // Nobody decides within the rule's 2 s.
    let started = Instant::now();
    let out = psql(cluster, gw, &agent, "DELETE FROM orders WHERE id = 3");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expired: no decision within 2s"),
        "{stderr}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 3"),
        1
    );
    let id = approval_id(&stderr);
    assert_eq!(show(gw, admin, &alice, &id)["status"], "expired");
    // A late decision changes nothing.
    let late = decide(gw, admin, &alice, "approve", &id, "too late");
    assert_eq!(late.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&late.stderr).contains("409"));
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 3"),
        1
    );
}

#[test]
fn a_client_that_leaves_or_cancels_withdraws_its_request() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "15m");
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");

    // Killed while it waits.
    let mut held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 5");
    let id = pending_one(&gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();
    held.kill().unwrap();
    let _ = held.wait();
    await_status(&gw, admin, &alice, &id, "withdrawn");
    let late = decide(&gw, admin, &alice, "approve", &id, "ok");
    assert_eq!(late.status.code(), Some(1));
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 5"),
        1
    );

    // Cancelled (psql sends a CancelRequest on SIGINT) while it waits.
    let held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 6");
    let id = pending_one(&gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = Command::new("kill")
        .args(["-INT", &held.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, _, stderr) = finish(held);
    assert!(!ok);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert_eq!(show(&gw, admin, &alice, &id)["status"], "withdrawn");
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 6"),
        1
    );
}

#[test]
fn two_approvers_are_needed_and_nobody_approves_their_own_request() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "15m");
    // This agent is in the approvers' group itself.
    let agent = issue(
        &gw,
        &[
            "--subject",
            "agent-1",
            "--roles",
            "agent",
            "--groups",
            "dba",
        ],
    );
    let alice = person(&gw, "alice", "dba");
    let bob = person(&gw, "bob", "dba");
    let carol = person(&gw, "carol", "finance");
    let robot = issue(&gw, &["--subject", "robot", "--groups", "dba"]);

    let mut held = psql_child(
        cluster,
        &gw,
        &agent,
        "UPDATE orders SET note = 'shipped' WHERE id = 7",
    );
    let request = pending_one(&gw, admin, &alice);
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["min_approvals"], 2);

    let refused = |token: &str, needle: &str| {
        let out = decide(&gw, admin, token, "approve", &id, "looks fine");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
    };
    refused(&agent, "(403 Forbidden): nobody approves their own request");
    // An application among the approvers' group, and a person outside it, are not told
    // the request exists.
    refused(&robot, "(404 Not Found)");
    refused(&carol, "(404 Not Found)");
    // Carol does not even see it.
    let out = approvals(&gw, admin, &carol, &["show", &id]);
    assert_eq!(out.status.code(), Some(1));

    let out = decide(&gw, admin, &alice, "approve", &id, "first look");
    assert!(out.status.success());
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["status"], "pending");
    assert_eq!(view["approvals"], 1);
    let again = decide(&gw, admin, &alice, "approve", &id, "still fine");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already decided"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(held.try_wait().unwrap().is_none(), "ran on one approval");
    assert_eq!(
        count(
            cluster,
            &db,
            "SELECT count(*) FROM orders WHERE note = 'shipped'"
        ),
        0
    );

    let out = decide(&gw, admin, &bob, "approve", &id, "second look");
    assert!(out.status.success());
    let (ok, stdout, stderr) = finish(held);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("UPDATE 1"));
    assert_eq!(
        count(
            cluster,
            &db,
            "SELECT count(*) FROM orders WHERE note = 'shipped'"
        ),
        1
    );
}

#[test]
fn a_ticket_runs_exactly_its_statement_once_for_its_principal() {
    let cluster = PgCluster::shared();
    let (mut gw, db, admin) = start(cluster, "60s", "15m");
    let agent1 = agent(&gw, "agent-1");
    let agent2 = agent(&gw, "agent-2");
    let alice = person(&gw, "alice", "dba");

    let out = psql(cluster, &gw, &agent1, "INSERT INTO ran VALUES ('t1')");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requested (ticket)")
            && stderr.contains("run exactly this statement again within 15m"),
        "{stderr}"
    );
    let id = approval_id(&stderr);
    assert_eq!(count(cluster, &db, "SELECT count(*) FROM ran"), 0);
    assert_eq!(show(&gw, admin, &alice, &id)["mode"], "ticket");
    let out = decide(&gw, admin, &alice, "approve", &id, "backfill");
    assert!(out.status.success());
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(view["grant_expires_at"].is_string());

    // Not another statement, not another principal.
    let other = psql(cluster, &gw, &agent1, "INSERT INTO ran VALUES ('t2')");
    assert!(!other.status.success());
    let other = psql(cluster, &gw, &agent2, "INSERT INTO ran VALUES ('t1')");
    assert!(!other.status.success());
    assert_eq!(count(cluster, &db, "SELECT count(*) FROM ran"), 0);

    // The same statement, however it is spelt, once.
    let out = psql(
        cluster,
        &gw,
        &agent1,
        "insert into RAN values ( 't1' ) -- as approved",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(show(&gw, admin, &alice, &id)["status"], "redeemed");
    let again = psql(cluster, &gw, &agent1, "INSERT INTO ran VALUES ('t1')");
    assert!(!again.status.success());
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM ran WHERE tag = 't1'"),
        1
    );

    // A grant outlives the gateway.
    let out = psql(cluster, &gw, &agent1, "INSERT INTO ran VALUES ('t3')");
    let id = approval_id(&String::from_utf8_lossy(&out.stderr));
    assert!(decide(&gw, admin, &alice, "approve", &id, "ok")
        .status
        .success());
    assert!(gw.terminate().success());
    let port = gw.port;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::spawn(dir, port);
    wait_port(admin);
    let out = psql(cluster, &gw, &agent1, "INSERT INTO ran VALUES ('t3')");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM ran WHERE tag = 't3'"),
        1
    );
}

#[test]
fn an_expired_grant_is_refused() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "1s");
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let out = psql(cluster, &gw, &agent, "INSERT INTO ran VALUES ('late')");
    let id = approval_id(&String::from_utf8_lossy(&out.stderr));
    assert!(decide(&gw, admin, &alice, "approve", &id, "ok")
        .status
        .success());
    std::thread::sleep(Duration::from_millis(1500));
    let out = psql(cluster, &gw, &agent, "INSERT INTO ran VALUES ('late')");
    assert!(!out.status.success());
    assert_eq!(count(cluster, &db, "SELECT count(*) FROM ran"), 0);
    assert_eq!(show(&gw, admin, &alice, &id)["status"], "approved");
}

#[test]
fn an_extended_protocol_execute_is_held_with_its_values() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "15m");
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let port = gw.port;
    let running = runtime.spawn(async move {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .dbname("app")
            .user("agent")
            .password(agent)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // Prepared once: each execution asks with its own values.
        let delete = client
            .prepare("DELETE FROM orders WHERE id = $1")
            .await
            .unwrap();
        let first = client.execute(&delete, &[&8i32]).await;
        let second = client.execute(&delete, &[&9i32]).await;
        let message = |e: tokio_postgres::Error| {
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        };
        (first.map_err(message), second.map_err(message))
    });
    let request = pending_one(&gw, admin, &alice);
    assert_eq!(request["statement"], "DELETE FROM orders WHERE id = $1");
    // A value sent in binary (tokio-postgres sends integers so) is shown as its bytes.
    assert_eq!(request["parameters"], serde_json::json!(["\\x00000008"]));
    let id = request["id"].as_str().unwrap().to_string();
    assert!(decide(&gw, admin, &alice, "approve", &id, "ok")
        .status
        .success());
    let request = pending_one(&gw, admin, &alice);
    assert_eq!(request["parameters"], serde_json::json!(["\\x00000009"]));
    let id = request["id"].as_str().unwrap().to_string();
    assert!(decide(&gw, admin, &alice, "deny", &id, "not that one")
        .status
        .success());
    let (first, second) = runtime.block_on(running).unwrap();
    assert_eq!(first, Ok(1));
    let second = second.unwrap_err();
    assert!(second.contains("denied by alice"), "{second}");
    assert_eq!(
        count(
            cluster,
            &db,
            "SELECT count(*) FROM orders WHERE id IN (8, 9)"
        ),
        1
    );
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 9"),
        1
    );
}

#[test]
fn held_requests_of_a_gateway_that_died_are_withdrawn_at_restart() {
    let cluster = PgCluster::shared();
    let (mut gw, db, admin) = start(cluster, "60s", "15m");
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 1");
    let id = pending_one(&gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();

    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let (ok, _, _) = finish(held);
    assert!(!ok);
    let port = gw.port;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::spawn(dir, port);
    wait_port(admin);
    let view = await_status(&gw, admin, &alice, &id, "withdrawn");
    assert!(view["resolved_at"].is_string());
    let late = decide(&gw, admin, &alice, "approve", &id, "too late");
    assert_eq!(late.status.code(), Some(1));
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        1
    );
    // The held request is in the trail with its approval id, the session the kill cut
    // off is closed at the restart, and the trail verifies.
    let events = gw.exported();
    assert!(
        events
            .iter()
            .any(|e| e["body"]["kind"] == "request" && e["body"]["approval_id"] == id.as_str()),
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e["body"]["kind"] == "session_closed"
        && e["body"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("killed or crashed"))));
    assert!(gw.sluice(&["sessions", "verify"]).status.success());
}

/// A request a webhook receiver heard: its headers (lowercased names) and body.
type Heard = (Vec<(String, String)>, Vec<u8>);

/// A webhook receiver on a thread of its own: every request's headers (lowercased names)
/// and body, answered 200.
fn receiver() -> (u16, std::sync::mpsc::Receiver<Heard>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
                    }
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                    if tx.send((headers, body)).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn a_signed_webhook_hears_of_the_request_and_the_decision() {
    use hmac::{Hmac, Mac};
    let cluster = PgCluster::shared();
    let (port, heard) = receiver();
    let key = "webhook-signing-key-of-the-test";
    std::env::set_var("SLUICE_TEST_WEBHOOK_KEY", key);
    let (gw, db, admin) = start_with(
        cluster,
        "60s",
        &format!(
            "webhooks: [{{ url: \"http://127.0.0.1:{port}/hook\", format: json, secret: {{ env: SLUICE_TEST_WEBHOOK_KEY }} }}]"
        ),
    );
    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 1");
    let id = pending_one(&gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(decide(&gw, admin, &alice, "deny", &id, "wrong order")
        .status
        .success());
    assert!(!finish(held).0);
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        1
    );

    let mut events = Vec::new();
    while events.len() < 2 {
        let (headers, body) = heard
            .recv_timeout(Duration::from_secs(20))
            .expect("a webhook");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header"))
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(header("x-sluice-timestamp").as_bytes());
        mac.update(b".");
        mac.update(&body);
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header("x-sluice-signature"), expected, "signature");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["event"], header("x-sluice-event"));
        assert_eq!(doc["approval"]["id"], id.as_str());
        events.push(doc);
    }
    events.sort_by_key(|e| e["event"].as_str().unwrap().to_string());
    assert_eq!(events[0]["event"], "approval.decided");
    assert_eq!(events[0]["approval"]["status"], "denied");
    assert_eq!(events[0]["decision"]["reason"], "wrong order");
    assert_eq!(events[1]["event"], "approval.requested");
    assert_eq!(
        events[1]["approval"]["statement"],
        "DELETE FROM orders WHERE id = 1"
    );
    assert!(events[1]["approval"]["console_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("http://127.0.0.1:{admin}/approvals/apr_")));
}

/// One extended-protocol message.
fn message(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = vec![tag];
    out.extend((body.len() as i32 + 4).to_be_bytes());
    out.extend(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    message(b'P', &[&cstr(name), &cstr(sql), &0i16.to_be_bytes()])
}

fn bind(portal: &str, statement: &str) -> Vec<u8> {
    message(
        b'B',
        &[
            &cstr(portal),
            &cstr(statement),
            &0i16.to_be_bytes(),
            &0i16.to_be_bytes(),
            &0i16.to_be_bytes(),
        ],
    )
}

fn execute(portal: &str) -> Vec<u8> {
    message(b'E', &[&cstr(portal), &0i32.to_be_bytes()])
}

fn sync() -> Vec<u8> {
    message(b'S', &[])
}

/// Sends `messages` at once and reads up to as many ReadyForQuery as it holds Syncs.
fn pipeline(s: &mut std::net::TcpStream, messages: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    use std::io::Write;
    let syncs = messages.iter().filter(|m| m[0] == b'S').count();
    s.write_all(&messages.concat()).unwrap();
    let mut seen = Vec::new();
    let mut ready = 0;
    while ready < syncs {
        let message = support::read_message(s);
        ready += usize::from(message.0 == b'Z');
        seen.push(message);
    }
    seen
}

fn errors(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(tag, _)| *tag == b'E')
        .map(|(_, body)| String::from_utf8_lossy(body).replace('\0', " "))
        .collect()
}

#[test]
fn names_the_resource_may_not_have_changed_do_not_skip_an_approval() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "15m");
    let agent_token = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let mut s = support::raw_login(gw.port, &agent_token);

    // The unnamed statement replaced in a batch the resource abandons after an error:
    // the resource never held the DELETE under the client's name, so binding "" cannot
    // run it.
    let seen = pipeline(
        &mut s,
        &[
            parse("", "DELETE FROM orders WHERE id = 1"),
            execute("nope"),
            parse("", "SELECT 1"),
            sync(),
            bind("", ""),
            execute(""),
            sync(),
        ],
    );
    assert!(!errors(&seen).is_empty(), "{seen:?}");
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        1
    );

    // A DEALLOCATE (through Parse, never run) makes the gateway forget a name; a new
    // statement under it must not inherit the resource's DELETE.
    let seen = pipeline(
        &mut s,
        &[
            parse("s", "DELETE FROM orders WHERE id = 2"),
            parse("", "DEALLOCATE s"),
            parse("s", "SELECT 1"),
            bind("", "s"),
            execute(""),
            sync(),
        ],
    );
    assert!(
        seen.iter().any(|(tag, _)| *tag == b'C'),
        "{seen:?} {:?}",
        errors(&seen)
    );
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 2"),
        1
    );

    // The gateway's own names are out of reach of SQL and of the client's messages.
    let seen = support::simple_query(&mut s, "FETCH ALL FROM sluice_apr_0_1");
    assert!(
        errors(&seen)[0].contains("reserved by the gateway"),
        "{seen:?}"
    );
    let seen = pipeline(&mut s, &[parse("sluice_apr_x", "SELECT 1"), sync()]);
    assert!(
        errors(&seen)[0].contains("reserved by the gateway"),
        "{seen:?}"
    );

    // Nothing above asked for approval: none of it could have run the DELETEs.
    let out = approvals(&gw, admin, &alice, &["list", "--status", "all", "--json"]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(all.is_empty(), "{all:?}");
}

#[test]
fn an_sql_prepared_name_is_judged_by_everything_it_may_hold() {
    let cluster = PgCluster::shared();
    let (gw, db, admin) = start(cluster, "60s", "15m");
    let agent_token = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let port = gw.port;
    let token = agent_token.clone();
    let session = std::thread::spawn(move || {
        let mut s = support::raw_login(port, &token);
        let prepared =
            support::simple_query(&mut s, "PREPARE x AS DELETE FROM orders WHERE id = 3");
        // PostgreSQL refuses a second PREPARE of the name; so does the gateway, which
        // would otherwise judge EXECUTE x as the new statement.
        let again = support::simple_query(&mut s, "PREPARE x AS SELECT 1");
        // A DEALLOCATE that never runs (the string stops at its first error) ...
        let deallocate = support::simple_query(&mut s, "DEALLOCATE nope; DEALLOCATE x");
        let replaced = support::simple_query(&mut s, "PREPARE x AS SELECT 1");
        // ... leaves EXECUTE x judged against the DELETE too: held.
        let executed = support::simple_query(&mut s, "EXECUTE x");
        (prepared, again, deallocate, replaced, executed)
    });
    // The PREPARE itself needs approval: approve it.
    let first = pending_one(&gw, admin, &alice);
    assert!(first["statement"]
        .as_str()
        .unwrap()
        .starts_with("PREPARE x AS DELETE"));
    let id = first["id"].as_str().unwrap().to_string();
    assert!(decide(&gw, admin, &alice, "approve", &id, "prepare it")
        .status
        .success());
    // Then EXECUTE x is held, and the approver sees what x may be.
    let deadline = Instant::now() + Duration::from_secs(20);
    let execute = loop {
        let request = pending_one(&gw, admin, &alice);
        if request["id"] != id.as_str() {
            break request;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = execute["statement"].as_str().unwrap();
    assert!(text.starts_with("EXECUTE x"), "{text}");
    assert!(
        text.contains("-- x is: PREPARE x AS DELETE FROM orders WHERE id = 3"),
        "{text}"
    );
    let id = execute["id"].as_str().unwrap().to_string();
    assert!(decide(&gw, admin, &alice, "deny", &id, "no")
        .status
        .success());

    let (prepared, again, _deallocate, _replaced, executed) = session.join().unwrap();
    assert!(errors(&prepared).is_empty(), "{prepared:?}");
    assert!(errors(&again)[0].contains("already exists"), "{again:?}");
    assert!(
        errors(&executed)[0].contains("denied by alice"),
        "{executed:?}"
    );
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 3"),
        1
    );
}

#[test]
fn sigterm_with_a_held_request_withdraws_it_and_tells_the_client() {
    let cluster = PgCluster::shared();
    let (mut gw, db, admin) = start(cluster, "60s", "15m");
    // The same gateway with a short shutdown grace.
    assert!(gw.terminate().success());
    let mut config = std::fs::read_to_string(gw.config()).unwrap();
    config.push_str("shutdown_grace: 1s\n");
    std::fs::write(gw.config(), config).unwrap();
    let port = gw.port;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let mut gw = Gateway::spawn(dir, port);
    wait_port(admin);

    let agent = agent(&gw, "agent-1");
    let alice = person(&gw, "alice", "dba");
    let held = psql_child(cluster, &gw, &agent, "DELETE FROM orders WHERE id = 1");
    let id = pending_one(&gw, admin, &alice)["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gw.terminate().success(), "a clean stop");
    let (ok, _, err) = finish(held);
    assert!(!ok);
    assert!(err.contains("the gateway is shutting down"), "{err}");

    // Nothing ran, the request is withdrawn, the trail verifies.
    assert_eq!(
        count(cluster, &db, "SELECT count(*) FROM orders WHERE id = 1"),
        1
    );
    let port = gw.port;
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::spawn(dir, port);
    wait_port(admin);
    await_status(&gw, admin, &alice, &id, "withdrawn");
    assert!(gw.sluice(&["sessions", "verify"]).status.success());
}
