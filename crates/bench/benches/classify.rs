//! Classification of a three-table join: cold (parse and walk) and cached.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_sql::{classify, Classifier, SearchPath};

use common::JOIN;

fn classification(c: &mut Criterion) {
    let search_path = SearchPath::default();
    let mut group = c.benchmark_group("classify");
    group.measurement_time(Duration::from_secs(8));

    // The parser and walker with no cache in front: what every new text costs.
    group.bench_function("cold/classify_fn", |b| {
        b.iter(|| classify(black_box(JOIN), &search_path).expect("the join classifies"))
    });

    // Where the cold time goes: the PostgreSQL parser alone (protobuf out of libpg_query),
    // and the parse tree's conversion to the JSON form the walker reads.
    group.bench_function("cold/parse_only", |b| {
        b.iter(|| pg_query::parse(black_box(JOIN), 0).expect("parses"))
    });
    group.bench_function("cold/parse_and_json", |b| {
        b.iter(|| {
            let parsed = pg_query::parse(black_box(JOIN), 0).expect("parses");
            serde_json::to_value(&parsed.protobuf.stmts[0]).expect("serializes")
        })
    });

    // A `Classifier` miss: texts that differ only by a trailing comment, prepared outside
    // the timed loop, each classified once. Includes the lookup, the parse and the insert
    // (with LRU eviction once the default 10,000 entries are full).
    group.bench_function("cold/classifier_miss", |b| {
        let classifier = Classifier::default();
        let mut next = 0u64;
        b.iter_custom(|iters| {
            let texts: Vec<String> = (0..iters)
                .map(|_| {
                    next += 1;
                    format!("{JOIN} /* {next} */")
                })
                .collect();
            let start = Instant::now();
            for text in &texts {
                black_box(
                    classifier
                        .classify(text, &search_path)
                        .expect("the join classifies"),
                );
            }
            start.elapsed()
        })
    });

    // A shape hit: the join with a new literal every time (`c.region = '<n>'`), as clients
    // that inline values send it. Includes the exact-text miss and `pg_query::normalize`.
    group.bench_function("shape/classifier_shape_hit", |b| {
        let classifier = Classifier::default();
        classifier
            .classify(JOIN, &search_path)
            .expect("the join classifies");
        let mut next = 0u64;
        b.iter_custom(|iters| {
            let texts: Vec<String> = (0..iters)
                .map(|_| {
                    next += 1;
                    JOIN.replace("'eu'", &format!("'r{next}'"))
                })
                .collect();
            let start = Instant::now();
            for text in &texts {
                black_box(
                    classifier
                        .classify(text, &search_path)
                        .expect("the join classifies"),
                );
            }
            start.elapsed()
        })
    });
    group.bench_function("shape/normalize_only", |b| {
        b.iter(|| pg_query::normalize(black_box(JOIN)).expect("normalizes"))
    });

    // A `Classifier` hit: the same text again, as agents repeat themselves.
    group.bench_function("cached/classifier_hit", |b| {
        let classifier = Classifier::default();
        classifier
            .classify(JOIN, &search_path)
            .expect("the join classifies");
        b.iter(|| {
            classifier
                .classify(black_box(JOIN), &search_path)
                .expect("the join classifies")
        })
    });

    group.finish();
}

criterion_group!(benches, classification);
criterion_main!(benches);
