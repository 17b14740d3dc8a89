//! Assessing results: the task's output schema, then the outside verifier it names.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use xchange_protocol::TaskSpec;

/// An outside verifier: `Ok` accepts the result, `Err` rejects it with a reason.
pub type Verifier = Arc<dyn Fn(&TaskSpec, &Value) -> Result<(), String> + Send + Sync>;

/// Verifiers registered on a runtime, by name.
pub(crate) type Verifiers = parking_lot::RwLock<HashMap<String, Verifier>>;

/// Compiled schemas are kept per shard; a bound keeps a stream of distinct schemas from
/// growing the cache forever.
const MAX_SCHEMAS: usize = 1024;

/// Compiled output schemas, keyed by the schema's JSON text.
#[derive(Default)]
pub(crate) struct SchemaCache {
    compiled: HashMap<String, Result<Arc<jsonschema::Validator>, String>>,
}

impl SchemaCache {
    fn validator(&mut self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = schema.to_string();
        if let Some(v) = self.compiled.get(&key) {
            return v.clone();
        }
        if self.compiled.len() >= MAX_SCHEMAS {
            self.compiled.clear();
        }
        let v = jsonschema::validator_for(schema)
            .map(Arc::new)
            .map_err(|e| format!("the output schema is invalid: {e}"));
        self.compiled.insert(key, v.clone());
        v
    }

    /// Accepts `result` for `spec`, or says why not.
    pub(crate) fn assess(
        &mut self,
        verifiers: &Verifiers,
        spec: &TaskSpec,
        result: &Value,
    ) -> Result<(), String> {
        if let Some(schema) = &spec.output_schema {
            let validator = self.validator(schema)?;
            if let Err(e) = validator.validate(result) {
                return Err(format!("the result does not match the output schema: {e}"));
            }
        }
        if let Some(name) = &spec.verifier {
            let verifier = verifiers.read().get(name).cloned();
            let Some(verifier) = verifier else {
                return Err(format!("no verifier named {name:?} is registered"));
            };
            // A panicking verifier rejects the result instead of taking the shard down.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| verifier(spec, result)))
                .unwrap_or_else(|_| Err(format!("verifier {name:?} panicked")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(schema: Option<Value>, verifier: Option<&str>) -> TaskSpec {
        let mut s = TaskSpec::new("x", Value::Null);
        s.output_schema = schema;
        s.verifier = verifier.map(str::to_owned);
        s
    }

    #[test]
    fn schema_then_verifier() {
        let verifiers = Verifiers::default();
        let even: Verifier =
            Arc::new(
                |_, v| {
                    if v["n"].as_i64().is_some_and(|n| n % 2 == 0) { Ok(()) } else { Err("odd".into()) }
                },
            );
        verifiers.write().insert("even".into(), even);
        let schema =
            json!({ "type": "object", "required": ["n"], "properties": { "n": { "type": "integer" } } });
        let mut cache = SchemaCache::default();
        let s = spec(Some(schema), Some("even"));
        assert_eq!(cache.assess(&verifiers, &s, &json!({ "n": 2 })), Ok(()));
        assert!(cache.assess(&verifiers, &s, &json!({ "n": "two" })).unwrap_err().contains("output schema"));
        assert_eq!(cache.assess(&verifiers, &s, &json!({ "n": 3 })), Err("odd".into()));
        assert_eq!(cache.compiled.len(), 1, "compiled once");
        let unknown = spec(None, Some("nobody"));
        assert!(cache.assess(&verifiers, &unknown, &json!(1)).unwrap_err().contains("nobody"));
        let broken = spec(Some(json!({ "type": 12 })), None);
        assert!(cache.assess(&verifiers, &broken, &json!(1)).unwrap_err().contains("invalid"));
        assert_eq!(cache.assess(&verifiers, &spec(None, None), &json!(1)), Ok(()));
    }
}
