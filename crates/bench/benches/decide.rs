//! Policy decisions for the classified join, alone and after a cached classification.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_policy::Decision;
use sluice_sql::{classify, Classifier, SearchPath};

use common::{policy_set, principal, JOIN};

fn decisions(c: &mut Criterion) {
    let policies = policy_set();
    let principal = principal();
    let session = policies.for_session(&principal, "app");
    assert_eq!(
        session.policy_names(),
        ["readers", "order-writers", "pii-guard"]
    );

    let search_path = SearchPath::default();
    let classification = classify(JOIN, &search_path).expect("the join classifies");
    let statement = &classification.statements[0];
    let verdict = session.decide_statement(statement);
    assert!(
        matches!(verdict.decision, Decision::Allow { .. }),
        "the join should be allowed: {:?}",
        verdict.decision
    );
    assert!(!verdict.masks.is_empty(), "the join reads masked columns");

    let mut group = c.benchmark_group("decide");

    // Once per session, not per statement; measured to show it is negligible.
    group.bench_function("for_session", |b| {
        b.iter(|| policies.for_session(black_box(&principal), "app"))
    });

    // The decision alone: deny rules first, then allow rules, then the masks.
    group.bench_function("decide_statement", |b| {
        b.iter(|| session.decide_statement(black_box(statement)))
    });

    // The decision alone, as the PostgreSQL relay asks for it on every statement.
    group.bench_function("decide", |b| {
        b.iter(|| session.decide(black_box(statement)))
    });

    // Its two parts: judging the accesses against the rules, and finding the masks that
    // apply to the tables read.
    group.bench_function("judge", |b| {
        b.iter(|| session.judge(black_box(&statement.accesses)))
    });
    group.bench_function("masks_for", |b| {
        b.iter(|| session.masks_for(black_box(&statement.accesses)))
    });

    // What a statement costs once the session is open and its text was seen before:
    // a classifier hit, then a decision per statement of the string.
    group.bench_function("classify_cached_and_decide", |b| {
        let classifier = Classifier::default();
        classifier
            .classify(JOIN, &search_path)
            .expect("the join classifies");
        b.iter(|| {
            let classification = classifier
                .classify(black_box(JOIN), &search_path)
                .expect("the join classifies");
            for statement in &classification.statements {
                black_box(session.decide_statement(statement));
            }
        })
    });

    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
