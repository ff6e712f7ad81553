//! What only the PostgreSQL store has: a server that can be unreachable, refuse a login or
//! drop the connection; gateways opening one database at once; callers on tokio's threads;
//! text that cannot hold NUL; databases whose collation is not byte order; locks held by
//! another session. The behaviours both stores share are tested on both, in
//! `api_keys.rs`, `audit_trail.rs` and `approvals.rs`.

#[allow(unused_macros)]
#[macro_use]
mod common;

use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{approval_request, approver, Backend, PostgresBackend, MINUTE, T0};
use sluice_audit::{ChainBuilder, EventBody, LoginRefused, Protocol, Timestamp};
use sluice_core::{ApprovalMode, ApprovalStatus, Verdict};
use sluice_store::migrations::latest_version;
use sluice_store::{
    open_store, ApiKeyRow, ApprovalDecision, ApprovalFilter, DecideOutcome, PostgresStore,
    SessionEnd, SessionFilter, Store, StoreError,
};

fn key(id: &str, name: &str) -> ApiKeyRow {
    ApiKeyRow {
        id: id.to_owned(),
        name: name.to_owned(),
        secret_sha256: "ab".repeat(32),
        subject: format!("agent:{name}"),
        roles: vec!["reader".to_owned()],
        groups: vec![],
        created_at: 1,
        revoked_at: None,
    }
}

fn refused_login(session_id: &str) -> sluice_audit::Event {
    ChainBuilder::new(session_id).append(
        Timestamp::from_unix_micros(1_777_627_800_000_000).unwrap(),
        EventBody::LoginRefused(LoginRefused {
            client_addr: "10.0.0.9:40000".into(),
            connection: "billing".into(),
            protocol: Protocol::Postgres,
            reason: "the token has expired".into(),
        }),
    )
}

/// A 127.0.0.1 port nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_server_is_unavailable_and_the_password_is_not_shown() {
    let url = format!(
        "postgres://sluice:hunter2@127.0.0.1:{}/sluice",
        closed_port()
    );
    let started = Instant::now();
    let err = open_store(&url).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.operation(), Some("open"));
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(msg.contains("sluice:***@127.0.0.1"), "{msg}");
    assert!(msg.contains("connect"), "says what failed: {msg}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
}

#[test]
fn a_refused_login_is_unavailable_and_the_password_is_not_shown() {
    let b = PostgresBackend::new();
    let url = format!(
        "postgres://postgres:wrong-hunter2@127.0.0.1:{}/{}",
        b.cluster.port(),
        b.db
    );
    let err = PostgresStore::open(&url).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("password authentication failed"), "{msg}");

    // A database that does not exist cannot be opened either.
    let url = b.cluster.url("no_such_database");
    let err = PostgresStore::open(&url).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        !err.to_string().contains(b.cluster.superuser_password()),
        "{err}"
    );
}

#[test]
fn the_connection_is_reopened_after_the_server_dropped_it() {
    let b = PostgresBackend::new();
    let store = b.open();
    store.insert_api_key(&key("k1", "one")).unwrap();

    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        b.db
    );
    b.execute(&terminate);
    wait_for_no_sessions(&b);

    // The call that finds the connection gone fails as unavailable...
    let err = store.find_api_key("k1").unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.operation(), Some("find_api_key"));
    assert!(
        !err.to_string().contains(b.cluster.superuser_password()),
        "{err}"
    );
    // ...and the next one connects again.
    assert_eq!(store.find_api_key("k1").unwrap().unwrap().name, "one");
    store.insert_api_key(&key("k2", "two")).unwrap();

    // The same in the middle of the audit trail: a batch after the drop is refused whole,
    // the next one is stored.
    b.execute(&terminate);
    wait_for_no_sessions(&b);
    let batch = [refused_login("s1")];
    let err = store.append_events(&batch).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    store.append_events(&batch).unwrap();
    assert_eq!(store.session_events("s1").unwrap(), batch);
}

/// Waits until the database has no client sessions left but psql's own.
fn wait_for_no_sessions(b: &PostgresBackend) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let query = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        b.db
    );
    while b.scalar(&query) != "0" {
        assert!(
            Instant::now() < deadline,
            "the sessions were not terminated"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gateways_opening_a_fresh_database_together_all_succeed() {
    let b = Arc::new(PostgresBackend::new());
    let n = 4;
    let start = Arc::new(Barrier::new(n));
    let openers: Vec<_> = (0..n)
        .map(|_| {
            let (b, start) = (Arc::clone(&b), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                PostgresStore::open(&b.url()).map(|s| s.schema_version())
            })
        })
        .collect();
    for opener in openers {
        assert_eq!(opener.join().unwrap().unwrap(), latest_version());
    }
    assert_eq!(
        b.scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"),
        (1..=latest_version())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
}

#[test]
fn calls_work_from_inside_a_tokio_runtime() {
    let b = PostgresBackend::new();
    // Opened and used on a runtime's own thread, as the gateway's login path does.
    for runtime in [
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ] {
        let url = b.url();
        let found = runtime.block_on(async move {
            let store = open_store(&url).unwrap();
            let id = format!("k{}", store.list_api_keys().unwrap().len());
            store.insert_api_key(&key(&id, &id)).unwrap();
            let task = {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.find_api_key(&id).unwrap() })
            };
            task.await.unwrap()
        });
        assert!(found.is_some());
    }
}

#[test]
fn text_with_a_nul_is_refused_as_invalid_input() {
    let b = PostgresBackend::new();
    let store = b.open();
    let err = store.insert_api_key(&key("k\0", "n")).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("NUL"), "{err}");

    let mut event = refused_login("s\0");
    let err = store.append_events(&[event.clone()]).unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    // In the JSON body a NUL is escaped, so it is stored and read back as it was.
    event = refused_login("s1");
    if let EventBody::LoginRefused(refused) = &mut event.body {
        refused.reason = "a\0b".into();
    }
    let event = ChainBuilder::new("s1").append(event.at, event.body);
    store.append_events(std::slice::from_ref(&event)).unwrap();
    assert_eq!(store.session_events("s1").unwrap(), [event]);
    // The summary, an index for listing, shows it as U+FFFD.
    let listed = store.list_sessions(&SessionFilter::default()).unwrap();
    assert_eq!(
        listed[0].end,
        SessionEnd::LoginRefused {
            reason: "a\u{FFFD}b".into()
        }
    );
    let by_principal = SessionFilter {
        principal: Some("x\0".into()),
        ..Default::default()
    };
    assert_eq!(store.list_sessions(&by_principal).unwrap(), []);
    assert_eq!(store.session_events("s1\0").unwrap(), []);
    assert_eq!(store.last_event("s\0").unwrap(), None);
    assert_eq!(store.session_ids(Some("s\0x"), 10).unwrap(), ["s1"]);
}

#[test]
fn approval_text_with_a_nul_is_refused_as_invalid_input() {
    let b = PostgresBackend::new();
    let store = b.open();
    let request = approval_request("apr_1", ApprovalMode::Ticket, T0);
    let invalid = |err: StoreError, what: &str| {
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("NUL") && msg.contains(what), "{msg}");
    };
    let mut r = request.clone();
    r.id = "apr\0".into();
    invalid(store.insert_approval(&r).unwrap_err(), "id");
    let mut r = request.clone();
    r.statement = "DELETE FROM orders;\0".into();
    invalid(store.insert_approval(&r).unwrap_err(), "statement");
    let mut r = request.clone();
    r.session_id = Some("s\0".into());
    invalid(store.insert_approval(&r).unwrap_err(), "session id");
    assert_eq!(b.count("approvals"), 0);

    store.insert_approval(&request).unwrap();
    let decision = ApprovalDecision {
        approver: approver("tid-1/alice"),
        verdict: Verdict::Approve,
        reason: "ok".into(),
        at: T0 + MINUTE,
    };
    let mut d = decision.clone();
    d.approver.subject = "tid-1/al\0ice".into();
    invalid(store.decide_approval("apr_1", &d).unwrap_err(), "subject");
    let mut d = decision.clone();
    d.reason = "ok\0".into();
    invalid(store.decide_approval("apr_1", &d).unwrap_err(), "reason");
    // In the principal's JSON a NUL is escaped, so it is stored and read back as it was.
    let mut d = decision.clone();
    d.approver.display_name = "Al\0ice".into();
    let DecideOutcome::Recorded(approved) = store.decide_approval("apr_1", &d).unwrap() else {
        panic!("not recorded");
    };
    assert_eq!(approved.decisions, [d]);

    // Lookups by a string with a NUL find nothing, as nothing stored has one.
    assert_eq!(store.approval("apr_1\0").unwrap(), None);
    assert_eq!(
        store.decide_approval("apr_1\0", &decision).unwrap(),
        DecideOutcome::NotFound
    );
    assert_eq!(
        store
            .resolve_approval("apr_1\0", ApprovalStatus::Withdrawn, T0)
            .unwrap(),
        None
    );
    let by_connection = ApprovalFilter {
        connection: Some("orders\0".into()),
        ..Default::default()
    };
    assert_eq!(store.list_approvals(&by_connection).unwrap(), []);
    let agent = &request.requester;
    let at = T0 + 2 * MINUTE;
    assert_eq!(
        store
            .redeem_ticket(&agent.provider, &agent.subject, "orders", "fp\0", at)
            .unwrap(),
        None
    );
    assert_eq!(store.approval("apr_1").unwrap(), Some(approved));
}

#[test]
fn a_request_locked_too_long_is_unavailable_after_the_lock_timeout() {
    let b = Arc::new(PostgresBackend::new());
    let store = b.open();
    store
        .insert_approval(&approval_request("apr_1", ApprovalMode::Hold, T0))
        .unwrap();
    // Another session holds the request's row.
    let holder = {
        let b = Arc::clone(&b);
        thread::spawn(move || {
            b.execute(
                "BEGIN; SELECT 1 FROM approvals WHERE id = 'apr_1' FOR UPDATE; \
                 SELECT pg_sleep(7); COMMIT;",
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event = 'PgSleep'",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the row was not locked");
        thread::sleep(Duration::from_millis(20));
    }
    let decision = ApprovalDecision {
        approver: approver("tid-1/alice"),
        verdict: Verdict::Deny,
        reason: "not now".into(),
        at: T0 + MINUTE,
    };
    let started = Instant::now();
    let err = store.decide_approval("apr_1", &decision).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.operation(), Some("decide_approval"));
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the lock timeout"
    );
    holder.join().unwrap();
    // Nothing was recorded, and the request can be decided now.
    assert_eq!(b.count("approval_decisions"), 0);
    assert!(matches!(
        store.decide_approval("apr_1", &decision).unwrap(),
        DecideOutcome::Recorded(_)
    ));
}

#[test]
fn orders_are_byte_order_under_another_collation() {
    let cluster = sluice_pgcluster::pg::PgCluster::shared();
    let db = format!("icu_{}", std::process::id());
    // An ICU collation sorts "a" before "B"; the store must still sort as SQLite does.
    if let Err(e) = cluster.execute(
        "postgres",
        &format!(
            "CREATE DATABASE {db} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' \
             LOCALE 'C'"
        ),
    ) {
        eprintln!("skipped: this PostgreSQL cannot create an ICU database: {e:#}");
        return;
    }
    assert_eq!(
        cluster
            .query_scalar(
                &db,
                "SELECT string_agg(x, '' ORDER BY x) FROM unnest(ARRAY['B', 'a']) x"
            )
            .unwrap(),
        "aB",
        "the database's own order is not byte order"
    );
    let store = open_store(&cluster.url(&db)).unwrap();
    for id in ["a", "B", "b"] {
        store.append_events(&[refused_login(id)]).unwrap();
        store.insert_api_key(&key(id, id)).unwrap();
    }
    assert_eq!(store.session_ids(None, 10).unwrap(), ["B", "a", "b"]);
    assert_eq!(store.session_ids(Some("B"), 10).unwrap(), ["a", "b"]);
    let keys: Vec<String> = store
        .list_api_keys()
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(keys, ["B", "a", "b"]);
}

#[test]
fn dropping_the_store_closes_its_connection() {
    let b = PostgresBackend::new();
    let store = b.open();
    store.list_api_keys().unwrap();
    let sessions = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
         AND application_name = 'sluice'",
        b.db
    );
    assert_eq!(b.scalar(&sessions), "1");
    drop(store);
    // The server ends the session on the client's Terminate, a moment after it is sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.scalar(&sessions) != "0" {
        assert!(
            Instant::now() < deadline,
            "the connection outlived the store"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn debug_output_has_no_password() {
    let b = PostgresBackend::new();
    let store = b.open();
    let password = b.cluster.superuser_password();
    let shown = format!("{store:?}");
    assert!(
        !shown.contains(password) && shown.contains(&b.db),
        "{shown}"
    );
    let parsed = sluice_store::StoreUrl::parse(&b.url()).unwrap();
    assert!(!format!("{parsed:?}").contains(password));
}

#[test]
fn a_lock_held_too_long_is_unavailable_after_the_lock_timeout() {
    let b = Arc::new(PostgresBackend::new());
    let store = b.open();
    // Another session holds the table.
    let holder = {
        let b = Arc::clone(&b);
        thread::spawn(move || {
            b.execute(
                "BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(7); COMMIT;",
            )
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.scalar(
        "SELECT count(*) FROM pg_locks WHERE relation = 'api_keys'::regclass \
         AND mode = 'AccessExclusiveLock' AND granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the lock was not taken");
        thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let err = store.insert_api_key(&key("k", "n")).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the lock timeout"
    );
    holder.join().unwrap();
    store.insert_api_key(&key("k", "n")).unwrap();
}
