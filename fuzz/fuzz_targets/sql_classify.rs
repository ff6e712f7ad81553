//! The SQL classifier on arbitrary text: `sluice_sql::classify` with the default search
//! path, the classification cache in front of it (`Classifier`), and the helpers that run
//! on the same text (`syntax_error_position` for refusals, `normalized_text` for approval
//! tickets).
//!
//! The input is UTF-8 (what the session hands the classifier: a Query's or Parse's
//! string, which cannot hold NUL). A NUL in the input splits it into two statements
//! strings, classified one after the other through one cache, so the second can be
//! answered from an entry the first made, exactly or by shape (its constants replaced by
//! parameters).
//!
//! Invariants:
//! - nothing panics: what cannot be parsed or judged is an `Err`;
//! - the cache never changes an answer: whatever `Classifier::classify` returns, from an
//!   exact or a shape hit, equals what `classify` returns for that text (one text must
//!   never borrow another's verdict).
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
        let cached = classifier.classify(sql, &path);
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
