//! The classification cache never lets one text borrow another's verdict.
//!
//! The cache is keyed by the exact text and search path. These tests classify texts that
//! differ only in ways a normaliser might erase (quoting, case, literal values, comments)
//! through one shared cache, in both orders, and require every answer to equal a fresh,
//! uncached classification.

use sluice_sql::{classify, Classifier, SearchPath};

/// Pairs that look alike but classify differently.
const LOOKALIKES: &[(&str, &str)] = &[
    ("SELECT * FROM secrets", "SELECT * FROM \"Secrets\""),
    ("SELECT * FROM orders", "SELECT * FROM \"orders \""),
    (
        "EXPLAIN (ANALYZE true) DELETE FROM orders",
        "EXPLAIN (ANALYZE false) DELETE FROM orders",
    ),
    ("SET search_path TO app", "SET search_path TO public"),
    ("SELECT lower('x')", "SELECT lower_x('x')"),
    (
        "SELECT * FROM orders",
        "SELECT * FROM orders; DELETE FROM orders",
    ),
    (
        "SELECT 1 -- ; DELETE FROM orders",
        "SELECT 1 ; DELETE FROM orders",
    ),
    (
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "WITH y AS (SELECT 1) SELECT * FROM x",
    ),
    ("COPY orders TO STDOUT", "COPY orders FROM STDIN"),
    ("SET role TO DEFAULT", "SET role TO admin"),
    // PostgreSQL's fingerprint ignores digits at the end of relation names (partitions).
    (
        "SELECT * FROM archive_2024_01",
        "SELECT * FROM archive_2024_02",
    ),
];

fn check_through(cache: &Classifier, sql: &str, path: &SearchPath) {
    let fresh = classify(sql, path).expect("parses");
    let cached = cache.classify(sql, path).expect("parses");
    assert_eq!(*cached, fresh, "cache answered differently for {sql:?}");
}

#[test]
fn lookalike_texts_never_share_an_entry() {
    let path = SearchPath::default();
    for (a, b) in LOOKALIKES {
        assert_ne!(
            classify(a, &path).unwrap(),
            classify(b, &path).unwrap(),
            "not a useful pair: {a:?} / {b:?}"
        );
        for order in [[a, b], [b, a]] {
            let cache = Classifier::new(64);
            for _ in 0..2 {
                for sql in order {
                    check_through(&cache, sql, &path);
                }
            }
        }
    }
}

/// Some of those pairs share PostgreSQL's own query fingerprint, which is exactly why the
/// fingerprint is not the cache key.
#[test]
fn fingerprints_would_have_collided() {
    let collisions = LOOKALIKES
        .iter()
        .filter(|(a, b)| {
            pg_query::fingerprint(a, 0, 0).unwrap().hex
                == pg_query::fingerprint(b, 0, 0).unwrap().hex
        })
        .count();
    assert!(
        collisions > 0,
        "expected some lookalikes to share a fingerprint"
    );
}

#[test]
fn the_search_path_is_part_of_the_key() {
    let cache = Classifier::new(8);
    let public = SearchPath::default();
    let app = SearchPath::new(["app"]);
    check_through(&cache, "SELECT * FROM t", &public);
    check_through(&cache, "SELECT * FROM t", &app);
    assert_eq!(cache.len(), 2);
}

#[test]
fn every_corpus_statement_and_its_variants_agree_with_a_fresh_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres");
    let mut texts = Vec::new();
    for file in ["refuse.yaml", "allow.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let cases: Vec<serde_json::Value> = serde_saphyr::from_str(&text).unwrap();
        for case in cases {
            let sql = case["sql"].as_str().unwrap().to_string();
            texts.push(sql.to_uppercase());
            texts.push(sql.to_lowercase());
            texts.push(format!("{sql} -- trailing"));
            texts.push(sql.replace("orders", "\"Orders\""));
            texts.push(sql);
        }
    }
    let path = SearchPath::default();
    // A small cache, so entries are evicted and refilled along the way.
    let cache = Classifier::new(16);
    for round in 0..2 {
        for sql in texts.iter().rev().skip(round) {
            match (classify(sql, &path), cache.classify(sql, &path)) {
                (Ok(fresh), Ok(cached)) => assert_eq!(*cached, fresh, "{sql:?}"),
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("{sql:?}: fresh {a:?}, cached {b:?}"),
            }
        }
    }
}

/// Texts that differ only in their constants share one shape entry, and every answer still
/// equals a fresh parse of that very text (its own statement text included).
#[test]
fn texts_differing_only_in_constants_share_a_shape() {
    let path = SearchPath::default();
    let cache = Classifier::new(64);
    let texts = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 98231",
        "SELECT abalance FROM pgbench_accounts WHERE aid = -7",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 'x'",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $$x$$",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1.5;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    ];
    for sql in texts {
        check_through(&cache, sql, &path);
    }
    // The trailing semicolon is kept in the shape: that text is a shape of its own.
    let stats = cache.stats();
    assert_eq!(stats.misses, 2, "{stats:?}");
    assert_eq!(stats.shape_hits, texts.len() as u64 - 2, "{stats:?}");
}

/// Statements whose classification reads a constant's value, and strings that are not one
/// plain statement, are never answered from a shape entry.
#[test]
fn constant_sensitive_statements_are_not_shared_by_shape() {
    let path = SearchPath::default();
    let pairs = [
        ("SET search_path TO 'app'", "SET search_path TO 'public'"),
        (
            "EXPLAIN (ANALYZE 'true') DELETE FROM orders",
            "EXPLAIN (ANALYZE 'false') DELETE FROM orders",
        ),
        (
            "SELECT * FROM t WHERE a = 1; DELETE FROM orders WHERE id = 1",
            "SELECT * FROM t WHERE a = 2; DELETE FROM orders WHERE id = 2",
        ),
        ("SELECT 1; -- x", "SELECT 2; -- x"),
        ("COPY (SELECT 1) TO '/tmp/a'", "COPY (SELECT 1) TO '/tmp/b'"),
    ];
    for (a, b) in pairs {
        let cache = Classifier::new(64);
        check_through(&cache, a, &path);
        check_through(&cache, b, &path);
        assert_eq!(cache.stats().shape_hits, 0, "{a:?} / {b:?}");
        assert_eq!(cache.shapes_len(), 0, "{a:?} / {b:?}");
    }
}

/// Every corpus statement with its constants replaced by other constants of every kind:
/// whatever order they reach one shared cache in, the answer equals a fresh parse.
#[test]
fn corpus_statements_with_other_constants_agree_with_a_fresh_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres");
    let replacements = [
        "0", "-1", "2.5", "'x'", "E'\\\\'", "$q$;$q$", "true", "NULL",
    ];
    let mut texts = Vec::new();
    for file in ["refuse.yaml", "allow.yaml", "mask.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let cases: Vec<serde_json::Value> = serde_saphyr::from_str(&text).unwrap();
        for case in cases {
            let sql = case["sql"].as_str().unwrap().to_string();
            let Ok(shape) = pg_query::normalize(&sql) else {
                continue;
            };
            for value in replacements {
                let mut variant = shape.clone();
                for n in (1..=20).rev() {
                    variant = variant.replace(&format!("${n}"), value);
                }
                texts.push(variant);
            }
            texts.push(sql);
        }
    }
    let path = SearchPath::default();
    let cache = Classifier::new(32);
    for round in 0..2 {
        for sql in texts.iter().rev().skip(round) {
            match (classify(sql, &path), cache.classify(sql, &path)) {
                (Ok(fresh), Ok(cached)) => assert_eq!(*cached, fresh, "{sql:?}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{sql:?}"),
                (a, b) => panic!("{sql:?}: fresh {a:?}, cached {b:?}"),
            }
        }
    }
    assert!(cache.stats().shape_hits > 0, "{:?}", cache.stats());
}
