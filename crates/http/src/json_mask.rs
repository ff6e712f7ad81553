//! Masking JSON response bodies: values at JSON paths (`mask: [{ json: "$.items[*].email",
//! with: email }]`) and, in every string, what the detectors find.
//!
//! The paths understood are the plain ones: `$`, then any of `.name`, `['name']`, `[n]`,
//! `[*]` and `.*`. A path outside that is an error, and the gateway refuses the response
//! rather than guess which values it meant. A value a path selects is masked whole: a
//! string with the strategy, a number or boolean as its text, an object or array replaced
//! by the strategy's mask of its JSON text (so nothing inside it is shown).

use serde_json::Value;
use sluice_mask::{DetectorSet, MaskStrategy, Masker};

/// A JSON path this module cannot follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JSON path `{0}` is not one the gateway follows ($, .name, ['name'], [n], [*], .*)")]
pub struct PathError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Any,
}

fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let err = || PathError(path.to_string());
    let rest = path.strip_prefix('$').ok_or_else(err)?;
    let bytes = rest.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                let start = i + 1;
                let end = rest[start..]
                    .find(['.', '['])
                    .map_or(rest.len(), |n| start + n);
                let name = &rest[start..end];
                if name.is_empty() {
                    return Err(err());
                }
                steps.push(if name == "*" {
                    Step::Any
                } else {
                    Step::Key(name.to_string())
                });
                i = end;
            }
            b'[' => {
                let end = rest[i..].find(']').map(|n| i + n).ok_or_else(err)?;
                let inner = &rest[i + 1..end];
                let step = if inner == "*" {
                    Step::Any
                } else if let Some(quoted) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    Step::Key(quoted.to_string())
                } else {
                    Step::Index(inner.parse().map_err(|_| err())?)
                };
                steps.push(step);
                i = end + 1;
            }
            _ => return Err(err()),
        }
    }
    Ok(steps)
}

/// Checks a path before it is needed (at start, for every mask of every policy).
pub fn check_path(path: &str) -> Result<(), PathError> {
    parse(path).map(|_| ())
}

/// Masks the values `path` selects in `doc` with `strategy`.
pub fn mask_path(
    doc: &mut Value,
    path: &str,
    strategy: MaskStrategy,
    masker: &Masker,
) -> Result<(), PathError> {
    let steps = parse(path)?;
    visit(doc, &steps, &mut |value| {
        mask_whole(value, strategy, masker)
    });
    Ok(())
}

/// Masks what `detectors` find in every string of `doc` (object keys are left as they
/// are: they name fields, they are not data).
pub fn mask_detected(
    doc: &mut Value,
    detectors: &DetectorSet,
    strategy: MaskStrategy,
    masker: &Masker,
) {
    match doc {
        Value::String(text) => {
            if let Some(masked) = detectors.mask_text(masker, strategy, text) {
                if let std::borrow::Cow::Owned(masked) = masked {
                    *text = masked;
                }
            } else {
                *doc = Value::Null;
            }
        }
        // A card number sent as a JSON number is still a card number.
        Value::Number(number) => {
            let text = number.to_string();
            match detectors.mask_text(masker, strategy, &text) {
                Some(std::borrow::Cow::Borrowed(_)) => {}
                Some(std::borrow::Cow::Owned(masked)) => *doc = Value::String(masked),
                None => *doc = Value::Null,
            }
        }
        Value::Array(items) => {
            for item in items {
                mask_detected(item, detectors, strategy, masker);
            }
        }
        Value::Object(fields) => {
            for value in fields.values_mut() {
                mask_detected(value, detectors, strategy, masker);
            }
        }
        _ => {}
    }
}

fn visit(value: &mut Value, steps: &[Step], apply: &mut dyn FnMut(&mut Value)) {
    let Some((step, rest)) = steps.split_first() else {
        apply(value);
        return;
    };
    match (step, value) {
        (Step::Key(key), Value::Object(fields)) => {
            if let Some(next) = fields.get_mut(key) {
                visit(next, rest, apply);
            }
        }
        (Step::Index(n), Value::Array(items)) => {
            if let Some(next) = items.get_mut(*n) {
                visit(next, rest, apply);
            }
        }
        (Step::Any, Value::Array(items)) => {
            for next in items {
                visit(next, rest, apply);
            }
        }
        (Step::Any, Value::Object(fields)) => {
            for next in fields.values_mut() {
                visit(next, rest, apply);
            }
        }
        _ => {}
    }
}

pub(crate) fn mask_whole(value: &mut Value, strategy: MaskStrategy, masker: &Masker) {
    let text = match &mut *value {
        Value::Null => return,
        Value::String(s) => std::mem::take(s),
        other => other.to_string(),
    };
    *value = match masker.mask_value(strategy, &text) {
        Some(masked) => Value::String(masked),
        None => Value::Null,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker() -> Masker {
        Masker::new(b"test key of the json masking tests")
    }

    #[test]
    fn paths_select_what_they_name() {
        let mut doc = json!({
            "items": [
                { "email": "ada@example.com", "id": 1 },
                { "email": "alan@example.org", "id": 2, "card": { "number": "4111111111111111" } }
            ],
            "owner": { "email": "grace@example.net" }
        });
        mask_path(&mut doc, "$.items[*].email", MaskStrategy::Email, &masker()).unwrap();
        mask_path(
            &mut doc,
            "$.items[1]['card']",
            MaskStrategy::Redact,
            &masker(),
        )
        .unwrap();
        mask_path(&mut doc, "$.items[0].id", MaskStrategy::Null, &masker()).unwrap();
        assert_eq!(doc["items"][0]["email"], "a***@example.com");
        assert_eq!(doc["items"][1]["email"], "a***@example.org");
        assert_eq!(doc["items"][1]["card"], "****");
        assert_eq!(doc["items"][0]["id"], Value::Null);
        assert_eq!(doc["items"][1]["id"], 2);
        assert_eq!(doc["owner"]["email"], "grace@example.net", "not selected");
        mask_path(&mut doc, "$.*.email", MaskStrategy::Redact, &masker()).unwrap();
        assert_eq!(doc["owner"]["email"], "****");
    }

    #[test]
    fn detectors_scan_every_string() {
        let mut doc = json!({ "note": "card 4111 1111 1111 1111 on file", "n": 4111111111111111u64, "deep": [["mail ada@example.com"]] });
        let detectors = DetectorSet::all();
        mask_detected(&mut doc, &detectors, MaskStrategy::Redact, &masker());
        assert!(!doc.to_string().contains("4111 1111"), "{doc}");
        assert!(!doc.to_string().contains("ada@example.com"), "{doc}");
        assert!(!doc.to_string().contains("4111111111111111"), "{doc}");
    }

    #[test]
    fn paths_outside_the_subset_are_errors() {
        for bad in [
            "items",
            "$..email",
            "$.items[?(@.x)]",
            "$.",
            "$[",
            "$.a[1:2]",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["$", "$.a", "$.a.b[0]['c d'][*].*", "$[\"x\"]"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
