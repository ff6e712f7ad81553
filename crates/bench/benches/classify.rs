//! Classification of a three-table join: cold (parse and walk) and cached.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_sql::{classify, Classifier, SearchPath};

use common::JOIN;

/// pgbench's `-S` transaction as `-M simple` sends it, with `aid = 1`.
const PGBENCH_SELECT: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = 1;";

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

    // Shape hits: a text with a new literal every time, as clients that inline values send
    // it. Each includes the exact-text miss. `classifier_shape_hit`: the join with
    // `c.region = '<n>'`, which the literal scanner reads (no `normalize` once its shape
    // was confirmed); `classifier_shape_hit_normalized`: the same with `E'<n>'`, which the
    // scanner leaves to `pg_query::normalize`; `pgbench_shape_hit`: pgbench's `-S` query.
    type Variant = (&'static str, &'static str, &'static str, fn(u64) -> String);
    let variants: [Variant; 3] = [
        ("shape/classifier_shape_hit", JOIN, "'eu'", |n| {
            format!("'r{n}'")
        }),
        ("shape/classifier_shape_hit_normalized", JOIN, "'eu'", |n| {
            format!("E'r{n}'")
        }),
        ("shape/pgbench_shape_hit", PGBENCH_SELECT, "1;", |n| {
            format!("{n};")
        }),
    ];
    for (name, base, literal, value) in variants {
        group.bench_function(name, |b| {
            let classifier = Classifier::default();
            let mut next = 0u64;
            let mut text = || {
                next += 1;
                base.replace(literal, &value(next))
            };
            // Twice: the first text makes the shape entry, the second confirms the scan.
            for _ in 0..2 {
                classifier
                    .classify(&text(), &search_path)
                    .expect("classifies");
            }
            b.iter_custom(|iters| {
                let texts: Vec<String> = (0..iters).map(|_| text()).collect();
                let start = Instant::now();
                for text in &texts {
                    black_box(classifier.classify(text, &search_path).expect("classifies"));
                }
                start.elapsed()
            })
        });
    }
    group.bench_function("shape/normalize_only", |b| {
        b.iter(|| pg_query::normalize(black_box(JOIN)).expect("normalizes"))
    });
    group.bench_function("shape/literal_scan_only", |b| {
        b.iter(|| sluice_sql::literals::literal_shape(black_box(JOIN)).expect("scans"))
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
