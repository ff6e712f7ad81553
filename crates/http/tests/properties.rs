//! Whatever the target, the gateway and the resource read the same path: a target the
//! gateway accepts is forwarded in a spelling that reads back as exactly what was judged,
//! and no accepted path holds a segment a server could resolve or split.

use proptest::prelude::*;
use sluice_http::HttpTarget;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_paths_are_unambiguous_and_round_trip(raw in "(/([a-zA-Z0-9._~%/\\\\-]|%2[eEfF]|%5[cC]|%2[0-9]){0,6}){1,4}(\\?[a-z=&%0-9]{0,8})?") {
        if let Ok(judged) = HttpTarget::parse("GET", &raw) {
            let segments: Vec<&str> = judged.path[1..].split('/').collect();
            for (i, segment) in segments.iter().enumerate() {
                prop_assert!(*segment != "." && *segment != "..", "{raw}: {}", judged.path);
                prop_assert!(!segment.contains('\\'), "{raw}");
                prop_assert!(!segment.is_empty() || i == segments.len() - 1, "{raw}");
            }
            let forwarded = judged.forwarded();
            let again = HttpTarget::parse("GET", &forwarded);
            prop_assert_eq!(again, Ok(judged), "{} forwarded as {}", raw, forwarded);
        }
    }
}
