//! Events per second the audit writer sustains: sessions queue request and result events
//! as the PostgreSQL data path does (a 90-byte statement with its classification, a
//! one-row result), and the writer chains, stores (one transaction per batch) and
//! acknowledges them. Timed from the first event queued to the flush that says every one
//! is durable. Stores: SQLite in a temporary folder (the default store), and PostgreSQL
//! (a throw-away cluster on this machine, default settings: `synchronous_commit` on).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use sluice_audit::{
    CheckpointSigner, Decision, Protocol, RecordedPrincipal, Request, SessionOpened,
};
use sluice_recorder::{Recorder, RecorderSettings, ResultCaps, ResultCapture};
use sluice_store::{SqliteStore, Store};

const SESSIONS: usize = 32;
const STATEMENTS_PER_SESSION: usize = 64;
/// A request and a result per statement.
const EVENTS: u64 = (SESSIONS * STATEMENTS_PER_SESSION * 2) as u64;

fn opened(i: usize) -> SessionOpened {
    SessionOpened {
        principal: RecordedPrincipal {
            provider: "entra".into(),
            subject: format!("tenant/agent-{i}"),
            display_name: format!("Agent {i}"),
            roles: vec!["Reports.Reader".into()],
            groups: vec![],
            token_id: Some("uti".into()),
        },
        client_addr: "127.0.0.1:50000".into(),
        connection: "orders".into(),
        protocol: Protocol::Postgres,
        tls: true,
    }
}

fn request(n: usize) -> Request {
    Request {
        text: format!(
            "SELECT abalance FROM pgbench_accounts WHERE aid = {n} /* and a comment to 90 bytes */"
        ),
        classification: std::sync::Arc::new(json!([{ "kind": "SelectStmt", "accesses": [
            { "action": "select", "object": { "table": "public.pgbench_accounts" }, "explicit_only": false }
        ] }])),
        decision: Decision::Allow,
        rule: Some("policy bench-all, allow rule 1".into()),
        approval_id: None,
        parameters: vec![],
    }
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("bench.db")).unwrap());
    let cluster = sluice_pgcluster::pg::PgCluster::shared();
    let db = cluster.fresh_database("bench_audit");
    let postgres = sluice_store::open_store(&cluster.url(&db)).unwrap();
    let mut group = c.benchmark_group("audit_writer");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    for (name, store) in [("sqlite", sqlite), ("postgres", postgres)] {
        bench_store(&mut group, name, store);
    }
    group.finish();
}

fn bench_store(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    store: Arc<dyn Store>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let recorder = runtime.block_on(async {
        Recorder::start(
            store,
            CheckpointSigner::generate(),
            RecorderSettings {
                checkpoint_interval: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .unwrap()
    });
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let sessions: Vec<_> = (0..SESSIONS)
                        .map(|i| recorder.open_session(opened(i)).unwrap())
                        .collect();
                    recorder.flush().await.unwrap();
                    let start = Instant::now();
                    for n in 0..STATEMENTS_PER_SESSION {
                        for session in &sessions {
                            let seq = session.request(request(n)).await.unwrap();
                            let mut capture = ResultCapture::new(ResultCaps::default());
                            capture.set_columns(vec!["abalance".into()]);
                            capture.add_row(vec![Some("0".into())], 20);
                            session
                                .result(capture.finish(seq, Duration::from_micros(80), None))
                                .await;
                        }
                    }
                    recorder.flush().await.unwrap();
                    total += start.elapsed();
                    for session in &sessions {
                        session.close("client left").await;
                    }
                }
                total
            })
        })
    });
    runtime.block_on(recorder.shutdown());
}

criterion_group!(benches, writer);
criterion_main!(benches);
