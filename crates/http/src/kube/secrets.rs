//! Secret values masked in a response about Secrets.
//!
//! A Secret's values sit in `data` (base64) and `stringData`, and kubectl keeps a second
//! copy of what it applied in the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation. Responses carry Secrets as one object, as `items` of a list, as
//! `rows[*].object` of a table, or as the `object` of a watch event; all of them are
//! walked, so every place a value can be is masked, while key names (what `kubectl
//! describe` shows) stay.

use serde_json::Value;
use sluice_config::MaskStrategy;
use sluice_mask::Masker;

use crate::json_mask::mask_whole;

/// The annotation in which `kubectl apply` keeps the whole object it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Masks every Secret value in `doc`, the body (or one watch event) of a response to a
/// request on `secrets`. Returns how many values were masked.
pub fn mask_secret_values(doc: &mut Value, masker: &Masker) -> usize {
    let mut masked = 0;
    walk(doc, masker, &mut masked);
    masked
}

/// An error about a Secret (`kind: Status`) can quote its values (`Invalid value:
/// "aHVu..."`): its message and details are replaced, the reason and code kept.
pub fn withhold_status_message(doc: &mut Value) {
    let is_status = doc.get("kind").and_then(Value::as_str) == Some("Status");
    let Some(fields) = doc.as_object_mut().filter(|_| is_status) else {
        return;
    };
    if fields.contains_key("message") {
        fields.insert(
            "message".into(),
            Value::String(
                "sluice: the API server's message is withheld: it may quote the Secret's values"
                    .into(),
            ),
        );
    }
    fields.remove("details");
}

fn walk(value: &mut Value, masker: &Masker, masked: &mut usize) {
    match value {
        Value::Object(fields) => {
            for key in ["data", "stringData"] {
                if let Some(Value::Object(values)) = fields.get_mut(key) {
                    for v in values.values_mut() {
                        mask_whole(v, MaskStrategy::Redact, masker);
                        *masked += 1;
                    }
                }
            }
            if let Some(Value::Object(annotations)) = fields
                .get_mut("metadata")
                .and_then(|m| m.get_mut("annotations"))
            {
                if let Some(v) = annotations.get_mut(LAST_APPLIED) {
                    mask_whole(v, MaskStrategy::Redact, masker);
                    *masked += 1;
                }
            }
            for (key, v) in fields.iter_mut() {
                if key != "data" && key != "stringData" {
                    walk(v, masker, masked);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, masker, masked);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker() -> Masker {
        Masker::new(b"k")
    }

    #[test]
    fn every_shape_of_response_is_masked() {
        let secret = || {
            json!({
                "metadata": {"name": "db", "annotations": {
                    LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}",
                    "team": "payments"
                }},
                "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
                "stringData": {"token": "s3cr3t"},
                "type": "Opaque"
            })
        };
        let mut docs = vec![
            secret(),
            json!({"kind": "SecretList", "items": [secret(), secret()]}),
            json!({"kind": "Table", "rows": [{"cells": ["db"], "object": secret()}]}),
            json!({"type": "ADDED", "object": secret()}),
        ];
        for doc in &mut docs {
            assert!(mask_secret_values(doc, &masker()) > 0);
            let text = doc.to_string();
            for clear in ["aHVudGVyMg==", "YWRtaW4=", "s3cr3t"] {
                assert!(!text.contains(clear), "{clear} in {text}");
            }
            // Names of keys, and other annotations, stay.
            assert!(
                text.contains("password") && text.contains("payments"),
                "{text}"
            );
        }
    }

    #[test]
    fn status_messages_about_secrets_are_withheld() {
        let mut doc = json!({"kind": "Status", "code": 422, "reason": "Invalid",
            "message": "Secret \"db\" is invalid: type: Invalid value: \"aHVudGVyMg==\"",
            "details": {"causes": [{"message": "Invalid value: \"aHVudGVyMg==\""}]}});
        withhold_status_message(&mut doc);
        assert!(!doc.to_string().contains("aHVudGVyMg=="), "{doc}");
        assert_eq!(doc["code"], 422);
        assert_eq!(doc["reason"], "Invalid");
    }

    #[test]
    fn documents_without_values_are_left_alone() {
        let mut doc = json!({"kind": "Status", "message": "secrets \"x\" not found"});
        let before = doc.clone();
        assert_eq!(mask_secret_values(&mut doc, &masker()), 0);
        assert_eq!(doc, before);
    }
}
