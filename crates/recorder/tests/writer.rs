//! The recorder against a real SQLite store: events chained and stored in session order,
//! requests durable before `wait_durable` returns, checkpoints signed, fail closed while
//! the store is locked by another process's transaction, and retention that leaves a
//! trail `verify` accepts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sluice_audit::{
    verify_against_checkpoints, ChainBuilder, CheckpointSigner, Decision, EventBody, EventKind,
    LoginRefused, Protocol, RecordedPrincipal, Request, SessionOpened, Timestamp,
};
use sluice_recorder::{
    OnStoreFailure, RecordError, Recorder, RecorderSettings, ResultCaps, ResultCapture,
};
use sluice_store::{SqliteStore, Store};

fn opened(subject: &str) -> SessionOpened {
    SessionOpened {
        principal: RecordedPrincipal {
            provider: "local".into(),
            subject: subject.into(),
            display_name: subject.into(),
            roles: vec![],
            groups: vec![],
            token_id: None,
        },
        client_addr: "127.0.0.1:5000".into(),
        connection: "orders".into(),
        protocol: Protocol::Postgres,
        tls: false,
    }
}

fn request(text: &str) -> Request {
    Request {
        text: text.into(),
        classification: std::sync::Arc::new(json!([{ "kind": "SelectStmt" }])),
        decision: Decision::Allow,
        rule: Some("policy p, allow rule 1".into()),
        approval_id: None,
        parameters: vec![],
    }
}

fn settings() -> RecorderSettings {
    RecorderSettings {
        checkpoint_interval: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(20),
        retry_backoff_max: Duration::from_millis(100),
        ..Default::default()
    }
}

fn verify(store: &dyn Store, signer: &CheckpointSigner) -> sluice_audit::Verified {
    let mut events = Vec::new();
    for id in store.session_ids(None, 10_000).unwrap() {
        events.extend(store.session_events(&id).unwrap());
    }
    verify_against_checkpoints(&events, &store.checkpoints().unwrap(), signer.public_key())
        .expect("the trail verifies")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_chained_stored_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let signer = CheckpointSigner::generate();
    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        settings(),
    )
    .unwrap();

    let a = recorder.open_session(opened("agent-a")).unwrap();
    let b = recorder.open_session(opened("agent-b")).unwrap();
    let mut a_results = a.clone();
    for i in 0..50 {
        let seq = a.request(request(&format!("SELECT {i}"))).await.unwrap();
        b.request(request("SELECT 'b'")).await.unwrap();
        a_results.wait_durable().await.unwrap();
        // Durable means in the store, readable by anyone.
        let stored = store.session_events(a.session_id()).unwrap();
        assert!(
            stored.iter().any(|e| e.seq == seq),
            "request {seq} is stored once wait_durable returns"
        );
        let mut capture = ResultCapture::new(ResultCaps::default());
        capture.set_columns(vec!["n".into()]);
        capture.add_row(vec![Some(i.to_string())], 12);
        a_results
            .result(capture.finish(seq, Duration::from_micros(5), None))
            .await;
    }
    a.close("client left").await;
    recorder.login_refused(LoginRefused {
        client_addr: "127.0.0.1:5001".into(),
        connection: "orders".into(),
        protocol: Protocol::Postgres,
        reason: "token expired".into(),
    });
    recorder.shutdown().await;

    let events = store.session_events(a.session_id()).unwrap();
    assert_eq!(events.len(), 1 + 50 * 2 + 1);
    assert_eq!(events[0].body.kind(), EventKind::SessionOpened);
    assert_eq!(events.last().unwrap().body.kind(), EventKind::SessionClosed);
    // Each result names the request just before it.
    for pair in events[1..101].chunks(2) {
        let EventBody::Result(result) = &pair[1].body else {
            panic!("expected a result")
        };
        assert_eq!(result.request_seq, pair[0].seq);
    }
    assert_eq!(store.session_events(b.session_id()).unwrap().len(), 51);
    let verified = verify(&*store, &signer);
    assert_eq!(verified.sessions, 3);
    // The shutdown checkpoint signs every head: nothing is left unsigned.
    assert_eq!(verified.unsigned_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_refuses_new_requests_until_it_takes_events_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let signer = CheckpointSigner::generate();
    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        settings(),
    )
    .unwrap();
    let session = recorder.open_session(opened("agent")).unwrap();
    recorder.flush().await.unwrap();

    // Another process takes the database's write lock and keeps it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let seq = session.request(request("SELECT 1")).await.unwrap();
    let mut waiting = session.clone();
    // The store's busy timeout passes, then the writer reports the failure.
    let outcome = tokio::time::timeout(Duration::from_secs(30), waiting.wait_durable())
        .await
        .expect("the wait ends when the store fails");
    assert!(
        matches!(outcome, Err(RecordError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(!recorder.is_available());
    let refused = session.request(request("SELECT 2")).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("audit store cannot take events"),
        "{refused}"
    );
    assert!(recorder.open_session(opened("other")).is_err());

    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    // The kept batch is written again; nothing queued was lost.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !recorder.is_available() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the recorder recovers");
    session.request(request("SELECT 3")).await.unwrap();
    session.close("client left").await;
    recorder.shutdown().await;
    let events = store.session_events(session.session_id()).unwrap();
    let texts: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Request(r) => Some(r.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["SELECT 1", "SELECT 3"]);
    assert_eq!(events[1].seq, seq);
    verify(&*store, &signer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_lets_requests_through_a_failed_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::generate(),
        RecorderSettings {
            on_store_failure: OnStoreFailure::Continue,
            ..settings()
        },
    )
    .unwrap();
    let mut session = recorder.open_session(opened("agent")).unwrap();
    recorder.flush().await.unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    session.request(request("SELECT 1")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), session.wait_durable())
        .await
        .unwrap()
        .expect("continue: the result is not withheld");
    assert!(!recorder.is_available());
    session
        .request(request("SELECT 2"))
        .await
        .expect("continue: requests go on");
    other.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_sessions_and_the_trail_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let signer = CheckpointSigner::generate();
    // A session from 100 days ago, signed by a checkpoint of its time.
    let day = 86_400_000_000i64;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let old_at = Timestamp::from_unix_micros(now_us - 100 * day).unwrap();
    let mut chain = ChainBuilder::new("0".repeat(32));
    let old = vec![
        chain.append(old_at, EventBody::SessionOpened(opened("old"))),
        chain.append(old_at, EventBody::Request(request("SELECT 'old'"))),
    ];
    store.append_events(&old).unwrap();
    store
        .put_checkpoint(&signer.sign(old_at, vec![chain.head().unwrap().clone()]))
        .unwrap();

    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        RecorderSettings {
            retention: Some(Duration::from_secs(90 * 86_400)),
            retention_check_interval: Duration::from_millis(50),
            ..settings()
        },
    )
    .unwrap();
    let recent = recorder.open_session(opened("recent")).unwrap();
    recent.request(request("SELECT 'recent'")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !store.session_events(&"0".repeat(32)).unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("retention removes the old session");
    recent.close("client left").await;
    recorder.shutdown().await;

    let ids = store.session_ids(None, 100).unwrap();
    assert_eq!(
        ids.len(),
        2,
        "the recent session and the purge record: {ids:?}"
    );
    let purges: Vec<_> = ids
        .iter()
        .flat_map(|id| store.session_events(id).unwrap())
        .filter(|e| e.body.kind() == EventKind::Purged)
        .collect();
    assert_eq!(purges.len(), 1);
    verify(&*store, &signer);

    // Without the purge record, the same deletion is reported.
    let mut events = Vec::new();
    for id in &ids {
        events.extend(
            store
                .session_events(id)
                .unwrap()
                .into_iter()
                .filter(|e| e.body.kind() != EventKind::Purged),
        );
    }
    assert!(verify_against_checkpoints(
        &events,
        &store.checkpoints().unwrap(),
        signer.public_key()
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_by_the_session_durable_before_the_store_and_recovered_after_a_crash() {
    journaled_then_recovered(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_and_synced_by_the_writer_durable_before_the_store_and_recovered_after_a_crash() {
    journaled_then_recovered(true).await;
}

/// `sync` false: sessions seal and journal their own events (`durability: os`); true: the
/// writer does, with `fdatasync` (`durability: disk`).
async fn journaled_then_recovered(sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let signer = CheckpointSigner::generate();
    let journal = dir.path().join("journal");
    let journaled = || RecorderSettings {
        journal: Some(journal.clone()),
        journal_sync: sync,
        // Long enough that nothing reaches the store on its own during the test.
        store_delay: Duration::from_secs(600),
        checkpoint_interval: Duration::from_secs(600),
        ..settings()
    };
    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        journaled(),
    )
    .unwrap();
    let mut session = recorder.open_session(opened("agent")).unwrap();
    let seq = session.request(request("SELECT 1")).await.unwrap();
    session.wait_durable().await.unwrap();
    // Durable: in the journal, not yet in the store.
    assert!(store
        .session_events(session.session_id())
        .unwrap()
        .is_empty());
    assert!(std::fs::read_to_string(&journal)
        .unwrap()
        .contains("SELECT 1"));

    // The gateway dies here (the writer's thread is simply abandoned). A store that had
    // part of it already (a batch stored just before the crash) is completed, not doubled.
    let kept: Vec<sluice_audit::Event> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 2);
    store.append_events(&kept[..1]).unwrap();
    let restarted = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        journaled(),
    )
    .unwrap();
    let events = store.session_events(session.session_id()).unwrap();
    assert_eq!(events.len(), 2, "recovered at start");
    assert_eq!(events[1].seq, seq);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        "",
        "emptied once stored"
    );
    restarted.shutdown().await;
    verify(&*store, &signer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_does_not_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let journal = dir.path().join("journal");
    std::fs::write(&journal, "garbage\n{\"also\": \"garbage\"}\n").unwrap();
    let started = Recorder::start(
        store,
        CheckpointSigner::generate(),
        RecorderSettings {
            journal: Some(journal),
            ..settings()
        },
    );
    let error = started.err().expect("refused");
    assert!(error.contains("audit journal"), "{error}");
}

fn session_journal(dir: &std::path::Path) -> RecorderSettings {
    RecorderSettings {
        journal: Some(dir.join("journal")),
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_spares_a_session_that_is_still_open_whoever_seals_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let signer = CheckpointSigner::generate();
    let recorder = Recorder::start(
        store.clone(),
        CheckpointSigner::from_secret_bytes(&signer.secret_bytes()),
        RecorderSettings {
            retention: Some(Duration::from_millis(300)),
            retention_check_interval: Duration::from_millis(50),
            ..session_journal(dir.path())
        },
    )
    .unwrap();
    let session = recorder.open_session(opened("idle")).unwrap();
    session.request(request("SELECT 1")).await.unwrap();
    // Idle well past the retention, still connected.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    session.request(request("SELECT 2")).await.unwrap();
    session.close("client left").await;
    recorder.shutdown().await;
    let seqs: Vec<u64> = store
        .session_events(session.session_id())
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    verify(&*store, &signer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_after_shutdown_is_refused_not_spun_on() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let recorder = Recorder::start(
        store,
        CheckpointSigner::generate(),
        session_journal(dir.path()),
    )
    .unwrap();
    let session = recorder.open_session(opened("late")).unwrap();
    recorder.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), session.close("client left"))
        .await
        .expect("close after shutdown returns");
    let refused =
        tokio::time::timeout(Duration::from_secs(5), session.request(request("SELECT 1")))
            .await
            .expect("a request after shutdown returns");
    assert_eq!(refused, Err(RecordError::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_after_idle_wakes_the_writer_before_the_queue_fills() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let recorder = Recorder::start(
        store,
        CheckpointSigner::generate(),
        RecorderSettings {
            queue_capacity: 8,
            checkpoint_interval: Duration::from_secs(30),
            ..session_journal(dir.path())
        },
    )
    .unwrap();
    let session = recorder.open_session(opened("bursty")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Without a wake-up the writer sleeps toward its checkpoint, 30 s away: the eighth
    // request waits out QUEUE_WAIT (5 s) for room and is refused.
    for i in 0..24 {
        session
            .request(request(&format!("SELECT {i}")))
            .await
            .unwrap();
    }
    recorder.shutdown().await;
}
