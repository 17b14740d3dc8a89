//! JSON Schemas (draft 2020-12) generated from the Rust types.
//!
//! The generated files are committed under `schemas/v1/` at the workspace root; a test
//! fails when they differ from what the types generate. Regenerate them with
//! `cargo run -p xchange-protocol --example gen_schemas --features schema`.

use schemars::JsonSchema;
use serde_json::{Map, Value};

use crate::envelope::{
    AcceptBody, AckBody, CfpBody, CodeBody, Envelope, ErrorBody, FailureBody, HeartbeatBody, InformBody,
    ProgressBody, ProposeBody,
};
use crate::task::{Budget, TaskSpec};

fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// The schema of a whole AIXP/1 envelope, bodies included.
pub fn envelope_schema() -> Value {
    schema_of::<Envelope>()
}

/// Every committed schema with its file name (without `.json`): the envelope, each body
/// type, the task specification and the budget.
pub fn all_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("envelope", envelope_schema()),
        ("cfp_body", schema_of::<CfpBody>()),
        ("propose_body", schema_of::<ProposeBody>()),
        ("code_body", schema_of::<CodeBody>()),
        ("accept_body", schema_of::<AcceptBody>()),
        ("progress_body", schema_of::<ProgressBody>()),
        ("heartbeat_body", schema_of::<HeartbeatBody>()),
        ("inform_body", schema_of::<InformBody>()),
        ("failure_body", schema_of::<FailureBody>()),
        ("ack_body", schema_of::<AckBody>()),
        ("error_body", schema_of::<ErrorBody>()),
        ("task_spec", schema_of::<TaskSpec>()),
        ("budget", schema_of::<Budget>()),
    ]
}

/// The text of a committed schema file: pretty JSON with object members sorted by name
/// (so that the text does not depend on serde_json's `preserve_order` feature), and a
/// trailing newline.
pub fn schema_file_text(schema: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect::<Map<_, _>>())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut text = serde_json::to_string_pretty(&sorted(schema)).expect("a json value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/v1")
    }

    const REGENERATE: &str = "cargo run -p xchange-protocol --example gen_schemas --features schema";

    #[test]
    fn committed_schemas_are_up_to_date() {
        let mut stale = Vec::new();
        for (name, schema) in all_schemas() {
            let path = dir().join(format!("{name}.json"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != schema_file_text(&schema) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "schema files differ from the types: {stale:?}; regenerate them with `{REGENERATE}`"
        );
        let mut extra: Vec<String> = std::fs::read_dir(dir())
            .expect("schemas/v1 exists")
            .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
            .filter(|f| !all_schemas().iter().any(|(n, _)| format!("{n}.json") == *f))
            .collect();
        extra.sort();
        assert!(extra.is_empty(), "files in schemas/v1 that no type generates: {extra:?}");
    }

    #[test]
    fn file_text_is_sorted_and_ends_with_a_newline() {
        let text =
            schema_file_text(&serde_json::json!({ "b": 1, "a": { "d": [ { "f": 1, "e": 2 } ], "c": 0 } }));
        assert_eq!(
            text,
            "{\n  \"a\": {\n    \"c\": 0,\n    \"d\": [\n      {\n        \"e\": 2,\n        \"f\": 1\n      }\n    ]\n  },\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn the_body_is_flattened_into_the_envelope() {
        let schema = envelope_schema();
        let variants = schema["oneOf"].as_array().expect("one variant per kind");
        assert_eq!(variants.len(), crate::Kind::ALL.len());
        for (variant, kind) in variants.iter().zip(crate::Kind::ALL) {
            assert_eq!(variant["properties"]["kind"]["const"], kind.as_str());
        }
        assert_eq!(schema["properties"]["to"]["$ref"], "#/$defs/Recipient");
        assert!(schema.get("additionalProperties").is_none(), "unknown fields must be allowed");
    }

    #[cfg(feature = "validate")]
    mod validate {
        use serde_json::json;

        use super::*;
        use crate::Kind;
        use crate::fixtures::sample;

        fn validator() -> jsonschema::Validator {
            jsonschema::validator_for(&envelope_schema()).expect("the envelope schema compiles")
        }

        fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
            v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
        }

        #[test]
        fn real_envelopes_of_every_kind_validate() {
            let v = validator();
            for kind in Kind::ALL {
                let mut raw = serde_json::to_value(sample(kind)).unwrap();
                assert_eq!(errors(&v, &raw), Vec::<String>::new(), "{kind}");
                // Unknown fields are allowed, as on the wire.
                raw["x_future"] = json!(1);
                raw["body"]["x_future"] = json!(1);
                assert!(v.is_valid(&raw), "{kind} with unknown fields");
            }
            let mut pool_heartbeat = serde_json::to_value(sample(Kind::Heartbeat)).unwrap();
            pool_heartbeat["to"] = json!("pool.global.word-count");
            assert!(v.is_valid(&pool_heartbeat));
        }

        #[test]
        fn the_schema_refuses_what_the_decoder_refuses() {
            let v = validator();
            let base = serde_json::to_value(sample(Kind::Cfp)).unwrap();
            let cases: [(&str, Value); 10] = [
                ("kind", json!("gossip")),
                ("body", json!({ "price": 1 })),
                ("aixp", json!("one")),
                ("from", json!("not-an-agent")),
                ("to", json!("pool.global")),
                ("to", json!("pool.a.b.c")),
                ("hops", json!(256)),
                ("nonce", json!("UPPER")),
                ("lineage", json!(["x"])),
                ("conversation", json!(12)),
            ];
            for (field, value) in cases {
                let mut raw = base.clone();
                raw[field] = value.clone();
                assert!(!v.is_valid(&raw), "{field} = {value} should not validate");
                assert!(serde_json::from_value::<Envelope>(raw).is_err(), "{field} = {value}");
            }
            let mut no_body = base.clone();
            no_body.as_object_mut().unwrap().remove("body");
            assert!(!v.is_valid(&no_body));
            let mut bad_name = base;
            bad_name["body"]["task"]["capability"] = json!("word count");
            assert!(!v.is_valid(&bad_name));
        }

        #[test]
        fn every_committed_schema_compiles() {
            for (name, schema) in all_schemas() {
                jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}
