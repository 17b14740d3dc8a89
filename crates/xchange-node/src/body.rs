//! Request bodies: JSON read strictly, with the refusal naming the field at fault.
//!
//! axum's own `Json` answers in plain text with its own statuses; every refusal here is
//! an [`ApiError`] from the status-code table instead: a body that is not JSON is
//! `malformed` (5015), JSON of the wrong shape (wrong type, unknown or missing field) is
//! `schema_invalid` (5014) with the field's path, and a body over the configured limit is
//! `too_large` (5019). The content type is not checked: `curl -d` sends a form type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use xchange_protocol::Code;

use crate::error::ApiError;

/// A JSON body parsed into `T`.
#[derive(Debug)]
pub struct Strict<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse(&read(req, state).await?).map(Strict)
    }
}

/// A JSON body parsed into `T`, or `T::default()` when the body is empty.
#[derive(Debug)]
pub struct OrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse(&bytes).map(OrDefault)
    }
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(Code::TooLarge, "the request body is larger than the configured limit")
        } else {
            ApiError::new(Code::Malformed, format!("the request body could not be read: {rejection}"))
        }
    })
}

/// Parses `bytes` as a `T`, refusing as the module docs say.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(Code::Malformed, "the request body is empty: a JSON document is expected"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(refusal)?;
    de.end()
        .map_err(|e| ApiError::new(Code::Malformed, format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Converts an already parsed document into a `T`: only shape errors are possible.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(refusal)
}

fn refusal(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let field = if path == "." { String::new() } else { path };
            ApiError::schema(inner.to_string()).at(field)
        }
        _ => ApiError::new(Code::Malformed, format!("the request body is not valid JSON: {inner}")),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn refusals_name_their_code_and_field() {
        let err = parse::<Doc>(b"{\"name\": ").unwrap_err();
        assert_eq!(err.code, Code::Malformed);
        let err = parse::<Doc>(b"").unwrap_err();
        assert_eq!(err.code, Code::Malformed);
        let err = parse::<Doc>(br#"{"name": "a", "inner": {"count": "x"}}"#).unwrap_err();
        assert_eq!((err.code, err.field.as_deref()), (Code::SchemaInvalid, Some("inner.count")));
        let err = parse::<Doc>(br#"{"name": "a", "extra": 1}"#).unwrap_err();
        assert_eq!(err.code, Code::SchemaInvalid);
        assert!(err.message.contains("extra"), "{}", err.message);
        let err = parse::<Doc>(br#"{"inner": null}"#).unwrap_err();
        assert!(err.message.contains("name"), "{}", err.message);
        let err = parse::<Doc>(br#"{"name": "a"} {"name": "b"}"#).unwrap_err();
        assert_eq!(err.code, Code::Malformed);
        assert!(parse::<Doc>(br#" {"name": "a"} "#).is_ok());
    }
}
