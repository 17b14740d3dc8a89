//! Checks of a job's schemas and input before it is accepted: a job that could never run
//! is refused at the door, not failed later.

use serde_json::Value;
use xchange_filter::Filter;
use xchange_protocol::Code;
use xchange_store::{Store, StoreError};

use crate::error::{ApiError, ApiResult};
use crate::job::JobDocument;

/// Compiles `schema` (draft 2020-12 unless it says otherwise); refuses it under `field`.
/// Only an object is taken: a boolean schema would let every input through or none.
pub(crate) fn compile(schema: &Value, field: &str) -> ApiResult<jsonschema::Validator> {
    if !schema.is_object() {
        return Err(ApiError::schema(format!("{field} must be a JSON Schema object")).at(field));
    }
    jsonschema::validator_for(schema)
        .map_err(|e| ApiError::schema(format!("{field} is not a valid JSON Schema: {e}")).at(field))
}

/// Validates `instance` against `validator`, naming the first failing place under `field`.
pub(crate) fn check_instance(
    validator: &jsonschema::Validator,
    instance: &Value,
    field: &str,
) -> ApiResult<()> {
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(err) => {
            let pointer = err.instance_path().to_string();
            let at = pointer.trim_start_matches('/').replace('/', ".");
            let at = if at.is_empty() { field.to_owned() } else { format!("{field}.{at}") };
            Err(ApiError::schema(format!("{field} does not match its schema: {err}")).at(at))
        }
    }
}

/// Validates a job's input against its template and its own input schema, checks that its
/// output schema compiles and that its search constraints parse.
pub(crate) async fn job_input<S: Store>(
    store: &S,
    doc: &JobDocument,
    filter_limits: &xchange_filter::Limits,
) -> ApiResult<()> {
    let input = doc.job_init_data.clone().unwrap_or(Value::Null);
    if let Some(name) = &doc.template {
        let template = match store.get_template(name).await {
            Ok(t) => t,
            Err(StoreError::NotFound { .. }) => {
                return Err(
                    ApiError::new(Code::NotFound, format!("template {name:?} not found")).at("template")
                );
            }
            Err(e) => return Err(e.into()),
        };
        let validator = compile(&template.schema, "template")?;
        check_instance(&validator, &input, "job_init_data")?;
    }
    if let Some(schema) = &doc.input_schema {
        check_instance(&compile(schema, "input_schema")?, &input, "job_init_data")?;
    }
    if let Some(schema) = &doc.output_schema {
        compile(schema, "output_schema")?;
    }
    if let Some(search) = &doc.search {
        Filter::parse_with(search, filter_limits).map_err(|e| ApiError::filter(&e, "search"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn instance_errors_name_the_field() {
        let v = compile(&json!({"type": "object", "properties": {"n": {"type": "integer"}}}), "s").unwrap();
        assert!(check_instance(&v, &json!({"n": 3}), "job_init_data").is_ok());
        let err = check_instance(&v, &json!({"n": "x"}), "job_init_data").unwrap_err();
        assert_eq!((err.code, err.field.as_deref()), (Code::SchemaInvalid, Some("job_init_data.n")));
        let err = compile(&json!({"type": 12}), "input_schema").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("input_schema"));
        for not_an_object in [json!(false), json!(true), json!("x"), json!([])] {
            let err = compile(&not_an_object, "schema").unwrap_err();
            assert_eq!(
                (err.code, err.field.as_deref()),
                (Code::SchemaInvalid, Some("schema")),
                "{not_an_object}"
            );
        }
    }
}
