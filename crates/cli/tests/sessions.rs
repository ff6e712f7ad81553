//! `sluice sessions verify|list|public-key` end to end: a trail recorded into the SQLite
//! store of a config in a temporary folder, signed with the data dir's key, then read by
//! the binary as a process; tampering is done on the database file directly, as someone
//! with access to it would.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::json;
use sluice_audit::{
    ChainBuilder, ChainHead, CheckpointSigner, Decision, Event, EventBody, LoginRefused, Protocol,
    RecordedPrincipal, Request, SessionClosed, SessionOpened, StatementResult, Timestamp,
};
use sluice_store::{SqliteStore, Store};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"
listen: { admin: "127.0.0.1:0" }
store: sqlite://./data/sluice.db
identity:
  providers:
    - { name: local, local: {} }
"#;
        std::fs::write(dir.path().join("sluice.yaml"), config).unwrap();
        Fixture { dir }
    }

    /// A store holding three sessions, every head signed by the data dir's key (made by
    /// `sluice sessions public-key`, as an operator would first run it):
    /// - `s-orders`: agent-7 on `orders`, 48 hours ago, six events (seq 0 to 5);
    /// - `s-billing`: agent-8 on `billing`, two hours ago, six events;
    /// - `s-refused`: a refused login on `billing`, an hour ago.
    fn recorded() -> Self {
        let fixture = Self::new();
        let out = fixture.run(&["sessions", "public-key"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let pem = std::fs::read_to_string(fixture.data().join("audit-signing-key.pem")).unwrap();
        let signer = CheckpointSigner::from_pkcs8_pem(&pem).unwrap();

        let orders = session("s-orders", "agent-7", "orders", hours_ago(48));
        let billing = session("s-billing", "agent-8", "billing", hours_ago(2));
        let refused = ChainBuilder::new("s-refused").append(
            hours_ago(1),
            EventBody::LoginRefused(LoginRefused {
                client_addr: "10.0.0.9:40000".into(),
                connection: "billing".into(),
                protocol: Protocol::Postgres,
                reason: "the token has expired".into(),
            }),
        );
        let store = fixture.store();
        store.append_events(&orders).unwrap();
        store.append_events(&billing).unwrap();
        store.append_events(std::slice::from_ref(&refused)).unwrap();
        let heads = vec![
            ChainHead::of(orders.last().unwrap()),
            ChainHead::of(billing.last().unwrap()),
            ChainHead::of(&refused),
        ];
        store
            .put_checkpoint(&signer.sign(hours_ago(0), heads))
            .unwrap();
        fixture
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(self.data().join("sluice.db")).unwrap()
    }

    /// Changes the database file behind the store's back.
    fn tamper(&self, sql: &str) {
        let conn = rusqlite::Connection::open(self.data().join("sluice.db")).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("-c")
            .arg(self.dir.path().join("sluice.yaml"))
            .args(args)
            .output()
            .unwrap()
    }
}

fn hours_ago(hours: i64) -> Timestamp {
    Timestamp::try_from(time::OffsetDateTime::now_utc() - time::Duration::hours(hours)).unwrap()
}

fn later(at: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_unix_micros(at.unix_micros() + millis * 1_000).unwrap()
}

/// Opened, an allowed SELECT and its masked result, a refused DELETE and its error,
/// closed: seq 0 to 5.
fn session(session_id: &str, subject: &str, connection: &str, opened: Timestamp) -> Vec<Event> {
    let mut chain = ChainBuilder::new(session_id);
    let mut events = vec![chain.append(
        opened,
        EventBody::SessionOpened(SessionOpened {
            principal: RecordedPrincipal {
                provider: "local".into(),
                subject: subject.into(),
                display_name: format!("{subject} (agent)"),
                roles: vec!["reader".into()],
                groups: vec![],
                token_id: Some("jti-1".into()),
            },
            client_addr: "127.0.0.1:50000".into(),
            connection: connection.into(),
            protocol: Protocol::Postgres,
            tls: false,
        }),
    )];
    for (step, (text, decision)) in [
        ("SELECT id, email FROM customers", Decision::Allow),
        ("DELETE FROM customers", Decision::Deny),
    ]
    .into_iter()
    .enumerate()
    {
        let millis = 10 * (step as i64 + 1);
        let request = chain.append(
            later(opened, millis),
            EventBody::Request(Request {
                text: text.into(),
                classification: std::sync::Arc::new(
                    json!({ "statements": [{ "tables": ["public.customers"] }] }),
                ),
                decision,
                rule: (decision == Decision::Allow).then(|| "policy readers, allow rule 1".into()),
                approval_id: None,
                parameters: vec![],
            }),
        );
        let request_seq = request.seq;
        events.push(request);
        events.push(chain.append(
            later(opened, millis + 5),
            EventBody::Result(StatementResult {
                request_seq,
                columns: vec!["id".into(), "email".into()],
                rows: vec![vec![Some("1".into()), Some("a***@example.com".into())]],
                truncated: false,
                row_count: 1,
                bytes: 40,
                duration_us: 5_000,
                error: None,
            }),
        ));
    }
    events.push(chain.append(
        later(opened, 100),
        EventBody::SessionClosed(SessionClosed {
            reason: "client left".into(),
        }),
    ));
    events
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Runs `sessions verify` with `args` and expects exit 1 with `expected` in its report.
fn assert_broken(fixture: &Fixture, args: &[&str], expected: &str) {
    let mut command = vec!["sessions", "verify"];
    command.extend_from_slice(args);
    let out = fixture.run(&command);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let report = stdout(&out);
    assert!(report.starts_with("broken: "), "{report}");
    assert!(
        report.contains(expected),
        "expected {expected:?} in: {report}"
    );
}

#[test]
fn an_intact_trail_verifies() {
    let fixture = Fixture::recorded();
    let out = fixture.run(&["sessions", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out),
        "intact: 3 sessions, 13 events, 1 checkpoint (3 signed heads in place, 0 sessions \
         purged under a signed record)"
    );

    let out = fixture.run(&["sessions", "verify", "--session", "s-orders"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("intact: session s-orders, 6 events"));
}

#[test]
fn a_changed_body_is_named_by_session_and_seq() {
    let fixture = Fixture::recorded();
    fixture.tamper(
        "UPDATE audit_events SET body = json_set(body, '$.text', 'SELECT 1') \
         WHERE session_id = 's-orders' AND seq = 3",
    );
    assert_broken(
        &fixture,
        &[],
        "session s-orders, seq 3: changed after it was recorded",
    );
    assert_broken(
        &fixture,
        &["--session", "s-orders"],
        "session s-orders, seq 3: changed",
    );
    // The other sessions are untouched.
    let out = fixture.run(&["sessions", "verify", "--session", "s-billing"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_deleted_middle_event_is_named() {
    let fixture = Fixture::recorded();
    fixture.tamper("DELETE FROM audit_events WHERE session_id = 's-billing' AND seq = 2");
    assert_broken(
        &fixture,
        &[],
        "session s-billing, seq 2: events are missing: the next event present has seq 3",
    );
}

#[test]
fn swapped_seqs_are_named_a_reordering() {
    let fixture = Fixture::recorded();
    fixture.tamper(
        "UPDATE audit_events SET seq = 1000 WHERE session_id = 's-orders' AND seq = 2;
         UPDATE audit_events SET seq = 2 WHERE session_id = 's-orders' AND seq = 3;
         UPDATE audit_events SET seq = 3 WHERE session_id = 's-orders' AND seq = 1000;",
    );
    assert_broken(
        &fixture,
        &[],
        "session s-orders, seq 2: reordered: this is the event recorded as seq 3",
    );
}

#[test]
fn a_cut_off_tail_is_caught_by_the_checkpoint_only() {
    let fixture = Fixture::recorded();
    fixture.tamper("DELETE FROM audit_events WHERE session_id = 's-orders' AND seq = 5");
    assert_broken(
        &fixture,
        &[],
        "session s-orders: the chain ends at seq 4 but seq 5 was signed",
    );
    // The chain alone cannot tell, and says it did not look at checkpoints.
    let out = fixture.run(&["sessions", "verify", "--session", "s-orders"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("its chain only"), "{}", stdout(&out));
}

#[test]
fn a_removed_session_is_caught_by_the_checkpoint() {
    let fixture = Fixture::recorded();
    fixture.tamper(
        "DELETE FROM audit_events WHERE session_id = 's-refused';
         DELETE FROM audit_sessions WHERE session_id = 's-refused';",
    );
    assert_broken(&fixture, &[], "session s-refused is gone");
}

#[test]
fn an_event_that_no_longer_reads_is_broken_too() {
    let fixture = Fixture::recorded();
    fixture.tamper(
        "UPDATE audit_events SET body = json_set(body, '$.extra', 1) \
         WHERE session_id = 's-orders' AND seq = 1",
    );
    assert_broken(&fixture, &[], "event seq 1 of session s-orders");
}

#[test]
fn an_auditors_copy_of_the_public_key_verifies_and_another_key_does_not() {
    let fixture = Fixture::recorded();
    let out = fixture.run(&["sessions", "public-key"]);
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert!(stderr(&out).starts_with("key id "), "{}", stderr(&out));
    let auditors_copy = fixture.dir.path().join("auditor.pem");
    std::fs::write(&auditors_copy, &pem).unwrap();
    let path = auditors_copy.to_str().unwrap();
    let out = fixture.run(&["sessions", "verify", "--public-key", path]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let other = CheckpointSigner::generate().public_key().to_pem().unwrap();
    std::fs::write(&auditors_copy, other).unwrap();
    assert_broken(&fixture, &["--public-key", path], "checkpoint 0");
}

#[test]
fn an_empty_trail_verifies_and_an_unknown_session_is_an_error() {
    let fixture = Fixture::new();
    let out = fixture.run(&["sessions", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("intact: 0 sessions, 0 events"),
        "{}",
        stdout(&out)
    );
    let out = fixture.run(&["sessions", "verify", "--session", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no events are recorded for session nope"));
}

#[test]
fn checkpoints_without_a_key_are_an_error_not_a_pass() {
    let fixture = Fixture::recorded();
    std::fs::remove_file(fixture.data().join("audit-signing-key.pem")).unwrap();
    let out = fixture.run(&["sessions", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("--public-key"), "{}", stderr(&out));
}

fn listed(fixture: &Fixture, args: &[&str]) -> Vec<String> {
    let mut command = vec!["sessions", "list", "--json"];
    command.extend_from_slice(args);
    let out = fixture.run(&command);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| row["session_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sessions_list_filters_by_principal_connection_and_time() {
    let fixture = Fixture::recorded();
    assert_eq!(
        listed(&fixture, &[]),
        ["s-orders", "s-billing", "s-refused"]
    );
    assert_eq!(listed(&fixture, &["--principal", "agent-7"]), ["s-orders"]);
    assert_eq!(
        listed(&fixture, &["--principal", "agent-8 (agent)"]),
        ["s-billing"]
    );
    assert_eq!(
        listed(&fixture, &["--connection", "billing"]),
        ["s-billing", "s-refused"]
    );
    assert_eq!(
        listed(&fixture, &["--since", "24h"]),
        ["s-billing", "s-refused"]
    );
    let an_hour_and_a_half_ago =
        Timestamp::try_from(time::OffsetDateTime::now_utc() - time::Duration::minutes(90))
            .unwrap()
            .to_string();
    assert_eq!(
        listed(&fixture, &["--since", &an_hour_and_a_half_ago]),
        ["s-refused"]
    );
    assert_eq!(
        listed(
            &fixture,
            &[
                "--since",
                "3d",
                "--connection",
                "billing",
                "--principal",
                "agent-8"
            ]
        ),
        ["s-billing"]
    );

    let out = fixture.run(&["sessions", "list", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
}

#[test]
fn sessions_list_prints_one_line_per_session() {
    let fixture = Fixture::recorded();
    let out = fixture.run(&["sessions", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("SESSION"), "{text}");
    assert!(
        lines[1].starts_with("s-orders") && lines[1].contains("agent-7"),
        "{text}"
    );
    assert!(
        lines[1].contains("closed") && lines[1].contains("client left"),
        "{text}"
    );
    assert!(
        lines[3].contains("login refused: the token has expired"),
        "{text}"
    );

    let out = fixture.run(&["sessions", "list", "--json", "--principal", "agent-7"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let row = &rows[0];
    assert_eq!(row["principal"]["subject"], "agent-7");
    assert_eq!(row["connection"], "orders");
    assert_eq!(row["protocol"], "postgres");
    assert_eq!(row["events"], 6);
    assert_eq!(row["status"], "closed");
    assert_eq!(row["reason"], "client left");
}

#[test]
fn sessions_export_writes_every_event_as_stored_in_time_order() {
    let fixture = Fixture::recorded();
    let out = fixture.run(&["sessions", "export", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<Event> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one event per line"))
        .collect();
    assert_eq!(events.len(), 13);
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at), "time order");
    // Exactly as stored: every exported chain still verifies.
    for id in ["s-orders", "s-billing", "s-refused"] {
        let chain: Vec<Event> = events
            .iter()
            .filter(|e| e.session_id == id)
            .cloned()
            .collect();
        sluice_audit::verify_session(&chain).unwrap();
    }
    // --since: the session of 48 hours ago is left out.
    let out = fixture.run(&["sessions", "export", "--since", "24h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recent = stdout(&out).lines().count();
    assert_eq!(recent, 7);
    assert!(!stdout(&out).contains("s-orders"));
}

#[test]
fn sessions_show_prints_requests_decisions_and_results() {
    let fixture = Fixture::recorded();
    let out = fixture.run(&["sessions", "show", "s-billing"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "session s-billing",
        "opened   agent-8 (agent-8 (agent), provider local) on billing (postgres)",
        "request  allow (policy readers, allow rule 1)",
        "SELECT id, email FROM customers",
        "request  deny",
        "DELETE FROM customers",
        "closed",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let json = fixture.run(&["sessions", "show", "s-billing", "--json"]);
    let events: Vec<Event> = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(events.len(), 6);
    let missing = fixture.run(&["sessions", "show", "no-such-session"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no recorded session"));
}

#[test]
fn sessions_replay_plays_the_session_back_as_show_prints_it() {
    let fixture = Fixture::recorded();
    let shown = stdout(&fixture.run(&["sessions", "show", "s-billing"]));
    // The recorded pauses are tens of milliseconds; at 100x they are nothing.
    let out = fixture.run(&["sessions", "replay", "s-billing", "--speed", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let replayed = stdout(&out);
    assert!(
        replayed.starts_with("session s-billing (replay at 100x)"),
        "{replayed}"
    );
    // Event for event what `show` prints.
    let body = |text: &str| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(body(&replayed), body(&shown));
    let bad = fixture.run(&["sessions", "replay", "s-billing", "--speed", "-1"]);
    assert!(!bad.status.success());
}
