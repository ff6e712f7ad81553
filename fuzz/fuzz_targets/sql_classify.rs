//! The SQL classifier on arbitrary text: `sluice_sql::classify` with the default search
//! path, the classification cache in front of it (`Classifier`), and the helpers that run
//! on the same text (`syntax_error_position` for refusals, `normalized_text` for approval
//! tickets).
//!
//! The input is UTF-8 (what the session hands the classifier: a Query's or Parse's
//! string, which cannot hold NUL). A NUL in the input splits it into two statements
//! strings, classified one after the other through one cache, so the second can be
//! answered from an entry the first made, exactly or by shape (its constants replaced by
//! parameters), the shape found by `pg_query::normalize` or by the literal scanner.
//!
//! Invariants:
//! - nothing panics: what cannot be parsed or judged is an `Err`;
//! - the cache never changes an answer: whatever `Classifier::classify` returns, from an
//!   exact or a shape hit, equals what `classify` returns for that text (one text must
//!   never borrow another's verdict);
//! - a shape the literal scanner found for a text answered by shape is the shape
//!   `pg_query::normalize` gives that text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_sql::{classify, normalized_text, syntax_error_position, Classifier, SearchPath};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = SearchPath::default();
    let classifier = Classifier::new(8);
    for (i, sql) in text.split('\0').take(2).enumerate() {
        let literal_hits = classifier.stats().literal_hits;
        let cached = classifier.classify(sql, &path);
        if classifier.stats().literal_hits > literal_hits {
            let scanned = sluice_sql::literals::literal_shape(sql).expect("scanned");
            assert_eq!(
                pg_query::normalize(sql).ok().as_deref(),
                Some(scanned.shape.as_str()),
                "the literal scanner's shape of {sql:?} is not the parser's"
            );
        }
        // The first string meets an empty cache, which classifies it afresh itself; the
        // second may be answered from the first's entries.
        if i > 0 {
            match (classify(sql, &path), &cached) {
                (Ok(fresh), Ok(cached)) => assert_eq!(
                    &fresh,
                    &**cached,
                    "the cache answered {sql:?} differently ({:?})",
                    classifier.stats()
                ),
                (Err(_), Err(_)) => {}
                (fresh, cached) => panic!(
                    "the cache answered {sql:?} with {cached:?}, classify with {fresh:?} ({:?})",
                    classifier.stats()
                ),
            }
        }
        match cached {
            Ok(_) => {
                let _ = normalized_text(sql);
            }
            Err(_) => {
                let _ = syntax_error_position(sql);
            }
        }
    }
});
