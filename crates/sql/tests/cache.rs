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

/// Statements written to trip a scanner that finds constants by hand: comments and quoted
/// identifiers holding digits and quotes, signs, casts, type modifiers, prefixes of
/// strings, numbers the lexer reads as something else.
const SCANNER_HOSTILE: &[&str] = &[
    "SELECT * FROM t WHERE a = 1 -- 'x'",
    "SELECT * FROM t /* 1 'y' */ WHERE a = 'x'",
    "SELECT * FROM t /* /* 2 */ 3 */ WHERE a = 4",
    "SELECT \"c1\" FROM \"t'1\" WHERE d = 'y'",
    "SELECT \"a\"\"1\" FROM t WHERE b = 2",
    "SELECT * FROM t WHERE a = -5",
    "SELECT * FROM t WHERE a - 5 > 0",
    "SELECT * FROM t WHERE a = +5",
    "SELECT a::varchar(10) FROM t WHERE b = 5",
    "SELECT 5::numeric(10,2), 1::float(53), CAST(1 AS char(3))",
    "SELECT interval '1 day', '1'::int, date '2024-01-01'",
    "SELECT * FROM t LIMIT 5 OFFSET 10",
    "SELECT * FROM t FETCH FIRST 5 ROWS ONLY",
    "SELECT * FROM t TABLESAMPLE bernoulli (10) REPEATABLE (7)",
    "SELECT a[1], a[2:3] FROM t",
    "SELECT * FROM t WHERE a = 1.5 AND b = 0.25",
    "SELECT * FROM generate_series(1, 10)",
    "SELECT ARRAY[1,2], ROW(1,'a')",
    "SELECT 'x' COLLATE \"C\" FROM t",
    "SELECT 'a' || 'b' FROM t",
    "SELECT x FROM t WHERE y IN ('a','b','it''s')",
    "SELECT E'a', 'b' FROM t",
    "SELECT 'a'\n'b' FROM t",
    "SELECT 1e5, 2 FROM t",
    "SELECT 1_000, 2 FROM t",
    "SELECT 0x1F, 2 FROM t",
    "SELECT t.a FROM t WHERE t.b = 1",
    "SELECT * FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x = 'é'",
    "SELECT 1 FROM t GROUP BY 1 ORDER BY 1",
    "SELECT count(*) FILTER (WHERE a > 3) FROM t",
    "SELECT * FROM t WHERE a BETWEEN 1 AND 2",
    "SELECT * FROM t WHERE a LIKE 'x%' ESCAPE '!'",
    "SELECT nextval('s1'), currval('s2')",
    "SELECT 'pg_class'::regclass",
    "INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b') RETURNING id",
    "UPDATE t SET a = 2, b = 'x' WHERE id = 3",
    "DELETE FROM t WHERE id = 3",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
    "select\tabalance\nfrom pgbench_accounts where aid=1",
];

/// The literal scanner's claim (crates/sql/src/literals.rs): once `normalize` has given
/// the scanner's shape for one text, every text the scanner reads to the same shape and
/// kinds has that shape for `normalize` too, whatever the values.
#[test]
fn a_scanned_shape_once_confirmed_holds_for_other_values() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/postgres");
    let mut texts: Vec<String> = SCANNER_HOSTILE.iter().map(|s| s.to_string()).collect();
    for file in ["refuse.yaml", "allow.yaml", "mask.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let cases: Vec<serde_json::Value> = serde_saphyr::from_str(&text).unwrap();
        texts.extend(cases.iter().map(|c| c["sql"].as_str().unwrap().to_string()));
    }
    let values = |kind: u8| -> &'static [&'static str] {
        match kind {
            b'i' => &["0", "7", "0042", "2147483648", "99999999999999999999999"],
            b'd' => &["0.5", "123.456", "00.10"],
            _ => &[
                "''", "'x'", "'it''s'", "'é'", "'--'", "'/*'", "'\"'", "'\n'", "'1'", "'$'",
            ],
        }
    };
    let mut confirmed = 0;
    for sql in &texts {
        let Some(scanned) = sluice_sql::literals::literal_shape(sql) else {
            continue;
        };
        if pg_query::normalize(sql).ok().as_deref() != Some(scanned.shape.as_str()) {
            continue;
        }
        confirmed += 1;
        for round in 0..5 {
            let mut variant = scanned.shape.clone();
            for (n, kind) in scanned.kinds.iter().enumerate().rev() {
                let choices = values(*kind);
                let value = choices[(round + n) % choices.len()];
                variant = variant.replace(&format!("${}", n + 1), value);
            }
            let again = sluice_sql::literals::literal_shape(&variant).expect("scans");
            assert_eq!(again, scanned, "{sql:?} -> {variant:?}");
            assert_eq!(
                pg_query::normalize(&variant).ok().as_deref(),
                Some(scanned.shape.as_str()),
                "{sql:?} -> {variant:?}"
            );
        }
    }
    assert!(
        confirmed > texts.len() / 2,
        "{confirmed} of {}",
        texts.len()
    );
}

/// Texts the scanner reads are answered without `normalize` once a text of their shape was
/// confirmed, and the answers are a fresh parse's; a shape the scanner reads differently
/// from the parser (a negative number, a sign folded into it) is never confirmed.
#[test]
fn scanned_texts_skip_normalize_once_confirmed() {
    let path = SearchPath::default();
    let cache = Classifier::new(64);
    for aid in [1, 98231, 7, 0, 4_000_000_000u64] {
        check_through(
            &cache,
            &format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
            &path,
        );
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.literal_hits), (1, 4), "{stats:?}");

    let cache = Classifier::new(64);
    for value in [5, 6, 7] {
        check_through(
            &cache,
            &format!("SELECT * FROM t WHERE a = -{value}"),
            &path,
        );
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.misses, stats.shape_hits, stats.literal_hits),
        (1, 2, 0),
        "{stats:?}"
    );

    // A shape made by `normalize` alone (the text had a parameter, which the scanner does
    // not read) is not borrowed by a text that merely scans to the same string.
    let cache = Classifier::new(64);
    check_through(&cache, "SELECT * FROM t WHERE a = -$1", &path);
    check_through(&cache, "SELECT * FROM t WHERE a = -5", &path);
    assert_eq!(cache.stats().literal_hits, 0, "{:?}", cache.stats());

    let cache = Classifier::new(64);
    for sql in SCANNER_HOSTILE {
        check_through(&cache, sql, &path);
        for _ in 0..2 {
            if let Some(scanned) = sluice_sql::literals::literal_shape(sql) {
                let mut variant = scanned.shape.clone();
                for (n, kind) in scanned.kinds.iter().enumerate().rev() {
                    let value = match kind {
                        b'i' => "3",
                        b'd' => "3.5",
                        _ => "'z'",
                    };
                    variant = variant.replace(&format!("${}", n + 1), value);
                }
                check_through(&cache, &variant, &path);
            }
        }
    }
    assert!(cache.stats().literal_hits > 10, "{:?}", cache.stats());
}
