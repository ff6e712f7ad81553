//! Clients and faults beyond single statements: pgbench in all three query modes, LISTEN/
//! NOTIFY, clients that vanish, a resource that dies mid-result.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use support::raw::{self, RawClient};
use support::{Fixture, SVC_USER};

fn pgbench(f: &Fixture, token: &str, mode: &str) -> String {
    let out = Command::new(f.cluster.bindir().join("pgbench"))
        .env_clear()
        .env("PGPASSWORD", token)
        .args(["-n", "-M", mode, "-c", "2", "-j", "2", "-t", "100"])
        .arg(format!(
            "host=127.0.0.1 port={} dbname=app user=agent sslmode=disable",
            f.port
        ))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench -M {mode} failed:\n{text}");
    text
}

#[test]
fn pgbench_runs_in_every_query_mode_and_keeps_its_invariants() {
    let f = Fixture::start();
    let out = Command::new(f.cluster.bindir().join("pgbench"))
        .env_clear()
        .env("PGPASSWORD", f.cluster.superuser_password())
        .args([
            "-i",
            "-q",
            "-s",
            "1",
            "-h",
            "127.0.0.1",
            "-p",
            &f.cluster.port().to_string(),
            "-U",
            f.cluster.superuser(),
            &f.db,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = f.token("bench", &["all"]);
    for mode in ["simple", "extended", "prepared"] {
        let text = pgbench(&f, &token, mode);
        assert!(
            text.contains("number of transactions actually processed: 200/200"),
            "{mode}:\n{text}"
        );
        assert!(!text.contains("sluice:"), "{mode}:\n{text}");
    }
    // TPC-B moves money between accounts, tellers and branches and logs every move: the
    // sums agree only if every statement ran exactly once, as it would have directly.
    let sums = f
        .cluster
        .query_scalar(
            &f.db,
            "SELECT concat_ws(',', (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
                    (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history),
                    (SELECT count(*) FROM pgbench_history))",
        )
        .unwrap();
    let parts: Vec<&str> = sums.split(',').collect();
    assert_eq!(parts[4], "600", "{sums}");
    assert!(
        parts[..4].iter().all(|p| *p == parts[0]),
        "balances disagree: {sums}"
    );
}

#[test]
fn listen_and_notify_work_when_allowed() {
    let f = Fixture::start();
    let token = f.token("agent", &["all"]);
    let (mut listener, _) = RawClient::login(f.port, &token);
    listener.send(b'Q', &raw::cstr("LISTEN orders_changed"));
    assert_eq!(raw::tags(&listener.read_until(b'Z')), "CZ");
    let (mut notifier, _) = RawClient::login(f.port, &token);
    notifier.send(b'Q', &raw::cstr("NOTIFY orders_changed, 'order 7'"));
    assert_eq!(raw::tags(&notifier.read_until(b'Z')), "CZ");
    let notification = listener.read();
    assert_eq!(notification.tag, b'A');
    assert!(String::from_utf8_lossy(&notification.body).contains("order 7"));
    // A reader's policy does not allow it.
    let reader = f.token("agent", &["reader"]);
    let (mut c, _) = RawClient::login(f.port, &reader);
    c.send(b'Q', &raw::cstr("LISTEN orders_changed"));
    let msgs = c.read_until(b'Z');
    assert_eq!(msgs[0].code(), "42501");
}

fn service_backends(f: &Fixture) -> usize {
    f.cluster
        .query_scalar(&f.db, &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{SVC_USER}' AND datname = current_database()"))
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_vanishes_mid_result_frees_its_backend() {
    let f = Fixture::start();
    let token = f.token("agent", &["reader"]);
    let baseline = service_backends(&f);
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(
        b'Q',
        &raw::cstr("SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) g"),
    );
    let first = c.read();
    assert_eq!(first.tag, b'T');
    for _ in 0..10 {
        assert_eq!(c.read().tag, b'D');
    }
    drop(c);
    wait_for("the upstream session to end", || {
        service_backends(&f) == baseline
    });
    // The gateway carries on.
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(b'Q', &raw::cstr("SELECT 1"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "TDCZ");
}

#[test]
fn the_resource_dying_mid_result_is_an_error_not_an_outage() {
    let f = Fixture::start();
    let token = f.token("agent", &["reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(
        b'Q',
        &raw::cstr("SELECT g, repeat('x', 100) FROM generate_series(1, 10000000) g"),
    );
    assert_eq!(c.read().tag, b'T');
    assert_eq!(c.read().tag, b'D');
    f.cluster
        .execute(
            &f.db,
            &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{SVC_USER}' AND datname = current_database()"),
        )
        .unwrap();
    let end = loop {
        let m = c.read();
        if m.tag != b'D' {
            break m;
        }
    };
    assert_eq!(end.tag, b'E', "{end:?}");
    assert_eq!(end.field(b'S'), "FATAL");
    // The resource's own FATAL (57P01) may come before the gateway's (08006), depending
    // on whether it got out before the backend died; nothing else does.
    if end.code() == "57P01" {
        let next = c.read();
        assert_eq!((next.tag, next.code().as_str()), (b'E', "08006"));
    }
    assert!(c.is_closed());
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(b'Q', &raw::cstr("SELECT 1"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "TDCZ");
    // The cut session is closed in the trail, saying the resource left; it verifies.
    f.wait_recorded(|body| {
        matches!(body, sluice_audit::EventBody::SessionClosed(closed)
            if closed.reason.contains("resource"))
    });
}

#[test]
fn an_idle_session_stays_usable() {
    let f = Fixture::start();
    let token = f.token("agent", &["reader"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    std::thread::sleep(Duration::from_secs(3));
    c.send(b'Q', &raw::cstr("SELECT count(*) FROM orders"));
    let msgs = c.read_until(b'Z');
    assert_eq!(raw::tags(&msgs), "TDCZ");
}

/// Resident memory of this process (the gateway runs in it), in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// A result of over 1 GiB goes through the gateway a message at a time: its resident memory
/// stays flat while the rows stream, whatever the result's size.
#[test]
fn a_gigabyte_result_streams_with_flat_gateway_memory() {
    use std::io::{BufReader, Read};

    const ROWS: u64 = 1 << 20;
    let f = Fixture::start();
    let token = f.token("agent", &["reader"]);
    let (c, _) = RawClient::login(f.port, &token);
    let mut stream = c.into_stream();
    stream
        .write_all(&raw::message(
            b'Q',
            &raw::cstr(&format!(
                "SELECT g, repeat('x', 1024) FROM generate_series(1, {ROWS}) g"
            )),
        ))
        .unwrap();
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut body = Vec::new();
    // Sampled once the stream is under way (allocator, buffers and cluster warm).
    let mut samples = Vec::new();
    loop {
        let mut header = [0u8; 5];
        reader.read_exact(&mut header).unwrap();
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        body.resize(len - 4, 0);
        reader.read_exact(&mut body).unwrap();
        bytes += len as u64 + 1;
        match header[0] {
            b'D' => {
                rows += 1;
                if rows % (64 * 1024) == 0 {
                    samples.push(resident_kib());
                }
            }
            b'E' => panic!("error: {}", String::from_utf8_lossy(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(rows, ROWS);
    assert!(bytes > 1 << 30, "only {bytes} bytes");
    let steady = &samples[2..];
    let (low, high) = (*steady.iter().min().unwrap(), *steady.iter().max().unwrap());
    // Flat: a gateway that held the result would grow by the whole GiB; a few MiB of
    // allocator noise is allowed.
    assert!(
        high - low < 16 * 1024,
        "resident memory grew from {low} KiB to {high} KiB while streaming: {samples:?}"
    );
}

/// `set_config` can change how the resource reads string literals, which `SET` cannot
/// through the gateway. The session ends at once, and a statement the client pipelined
/// behind the call never reaches the resource.
#[test]
fn a_function_that_changes_how_statements_are_read_ends_the_session() {
    let f = Fixture::start();
    let token = f.token("agent", &["config-setter"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    let mut batch = raw::message(
        b'Q',
        &raw::cstr("SELECT set_config('standard_conforming_strings', 'off', false)"),
    );
    batch.extend(raw::message(
        b'Q',
        &raw::cstr("INSERT INTO orders (customer_id, total, note) VALUES (1, 1, 'pipelined')"),
    ));
    c.send_raw(&batch);
    // The call's result, then the FATAL in place of its ParameterStatus (sent at the end).
    let msgs = c.read_until(b'Z');
    let fatal = msgs.last().unwrap();
    assert_eq!(raw::tags(&msgs), "TDCE");
    assert_eq!(fatal.field(b'S'), "FATAL", "{fatal:?}");
    assert!(
        fatal.message().contains("standard_conforming_strings"),
        "{}",
        fatal.message()
    );
    assert!(c.is_closed());
    let inserted = f
        .cluster
        .query_scalar(
            &f.db,
            "SELECT count(*) FROM orders WHERE note = 'pipelined'",
        )
        .unwrap();
    assert_eq!(inserted.trim(), "0");
}

/// `"$user"` in a search path names the schema of the role the gateway logs in as: names
/// are judged in that schema, not silently skipped.
#[test]
fn user_in_the_search_path_is_the_gateways_role() {
    let f = Fixture::start();
    f.cluster
        .execute(
            &f.db,
            &format!(
                "CREATE SCHEMA {SVC_USER}; CREATE TABLE {SVC_USER}.hidden_t (x text); \
                 INSERT INTO {SVC_USER}.hidden_t VALUES ('not for agents'); \
                 GRANT USAGE ON SCHEMA {SVC_USER} TO {SVC_USER}; GRANT SELECT ON {SVC_USER}.hidden_t TO {SVC_USER}"
            ),
        )
        .unwrap();
    // pathfinder: select on public.* and SET search_path.
    let token = f.token("agent", &["pathfinder"]);
    let (mut c, _) = RawClient::login(f.port, &token);
    c.send(b'Q', &raw::cstr("SET search_path = \"$user\", public"));
    assert_eq!(raw::tags(&c.read_until(b'Z')), "CZ");
    c.send(b'Q', &raw::cstr("SELECT * FROM hidden_t"));
    let msgs = c.read_until(b'Z');
    let error = msgs.iter().find(|m| m.tag == b'E').expect("refused");
    assert_eq!(error.code(), "42501");
    assert!(
        error.message().contains(&format!("{SVC_USER}.hidden_t")),
        "{}",
        error.message()
    );
    assert!(!msgs.iter().any(|m| m.tag == b'D'));
}
