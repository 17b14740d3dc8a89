//! Request bodies, query strings and path parameters, read strictly, with the refusal
//! naming the field at fault.
//!
//! axum's own `Json`, `Query` and `Path` answer in plain text with their own statuses;
//! every refusal here is an [`ApiError`] from the status-code table instead: a body that is
//! not JSON is `malformed` (5015), JSON of the wrong shape (wrong type, unknown or missing
//! field) is `schema_invalid` (5014) with the field's path, and a body over the configured
//! limit is `too_large` (5019). A query parameter of the wrong type or an unknown one is
//! `schema_invalid` naming it, and a path segment that is not UTF-8 is `malformed`. The
//! content type is not checked: `curl -d` sends a form type.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use xchange_protocol::Code;

use crate::error::ApiError;

/// A JSON body parsed into `T`. Every body of the API is a JSON object: anything else is
/// refused before `T` sees it (serde would read a struct from an array, field by field).
#[derive(Debug)]
pub struct Strict<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Strict<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        if !starts_with(&bytes, b'{') {
            return Err(not_an_object(&bytes));
        }
        parse(&bytes).map(Strict)
    }
}

/// Whether the first byte that is not white space is `first`.
fn starts_with(bytes: &[u8], first: u8) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&first)
}

/// The refusal of a body that is not an object: `malformed` if it is not JSON at all.
fn not_an_object(bytes: &[u8]) -> ApiError {
    match parse::<serde::de::IgnoredAny>(bytes) {
        Ok(_) => ApiError::schema("the request body must be a JSON object"),
        Err(e) => e,
    }
}

/// A JSON object inside a body, for `#[serde(deserialize_with = ...)]` on an optional
/// struct field: `null` is absent, and an array is refused (serde would read the struct
/// from it, field by field).
pub fn optional_object<'de, D: serde::Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    use serde::Deserialize;
    use serde::de::{Error, Unexpected};
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        // The inner path goes into the message: the field at fault stays this one.
        value @ Value::Object(_) => {
            serde_path_to_error::deserialize(value).map(Some).map_err(D::Error::custom)
        }
        Value::Array(_) => Err(D::Error::invalid_type(Unexpected::Seq, &"an object")),
        Value::Bool(b) => Err(D::Error::invalid_type(Unexpected::Bool(b), &"an object")),
        Value::String(s) => Err(D::Error::invalid_type(Unexpected::Str(&s), &"an object")),
        Value::Number(_) => Err(D::Error::invalid_type(Unexpected::Other("a number"), &"an object")),
    }
}

/// A JSON body parsed into `T`, or `T::default()` when the body is empty or `null`.
#[derive(Debug)]
pub struct OrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !starts_with(&bytes, b'{') && !starts_with(&bytes, b'n') {
            return Err(not_an_object(&bytes));
        }
        parse::<Option<T>>(&bytes).map(|value| Self(value.unwrap_or_default()))
    }
}

/// Query parameters parsed into `T` (a struct with `deny_unknown_fields`).
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_refusal(&rejection.body_text())),
        }
    }
}

/// axum says `Failed to deserialize query string: PATH: WHAT` (no `PATH: ` when the
/// fault is the whole query, such as an unknown parameter).
fn query_refusal(text: &str) -> ApiError {
    let what = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    let field = match what.split_once(": ") {
        Some((head, _)) if !head.is_empty() && !head.contains(' ') => head,
        _ => "",
    };
    ApiError::schema(format!("invalid query string: {what}")).at(field)
}

/// Path parameters parsed into `T`.
#[derive(Debug)]
pub struct StrictPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for StrictPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::new(Code::Malformed, format!("the path parameter {key} is not UTF-8")).at(key)
                }
                ErrorKind::ParseErrorAtKey { key, .. } => {
                    ApiError::schema(format!("invalid path: {}", e.body_text())).at(key)
                }
                _ => ApiError::schema(format!("invalid path: {}", e.body_text())),
            }),
            Err(e) => {
                Err(ApiError::new(Code::Internal, format!("the path could not be read: {}", e.body_text())))
            }
        }
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

/// Whole numbers in JSON bodies, for `#[serde(deserialize_with = ...)]`: `5` and `5.0` are
/// the same number, and JSON Schema's `integer` (what the OpenAPI document says) takes
/// both, so both are read; `5.5` or a number out of the field's range is refused.
pub mod whole {
    use serde::de::{Error, Unexpected};
    use serde::{Deserialize, Deserializer};
    use serde_json::Number;

    fn convert<T: TryFrom<i128>>(n: &Number) -> Option<T> {
        let i = if let Some(u) = n.as_u64() {
            i128::from(u)
        } else if let Some(i) = n.as_i64() {
            i128::from(i)
        } else {
            let f = n.as_f64()?;
            // Below 2^64 in magnitude, so the cast is exact.
            if !f.is_finite() || f.fract() != 0.0 || f.abs() >= 18_446_744_073_709_551_616.0 {
                return None;
            }
            f as i128
        };
        T::try_from(i).ok()
    }

    fn read<'de, D: Deserializer<'de>, T: TryFrom<i128>>(n: &Number) -> Result<T, D::Error> {
        convert(n).ok_or_else(|| {
            let range = std::any::type_name::<T>();
            D::Error::invalid_value(
                Unexpected::Other(&format!("number {n}")),
                &format!("a whole {range}").as_str(),
            )
        })
    }

    /// A required (or defaulted) whole number.
    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        read::<D, T>(&Number::deserialize(d)?)
    }

    /// An optional whole number (`null` is absent).
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
        Option::<Number>::deserialize(d)?.map(|n| read::<D, T>(&n)).transpose()
    }
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

    #[test]
    fn query_refusals_name_the_parameter() {
        let err = query_refusal("Failed to deserialize query string: limit: invalid digit found in string");
        assert_eq!((err.code, err.field.as_deref()), (Code::SchemaInvalid, Some("limit")));
        assert_eq!(err.message, "invalid query string: limit: invalid digit found in string");
        let err = query_refusal("Failed to deserialize query string: unknown field `x`, expected `after`");
        assert_eq!((err.code, err.field), (Code::SchemaInvalid, None));
    }

    #[derive(Debug, Deserialize)]
    struct Numbers {
        #[serde(default, deserialize_with = "whole::optional")]
        small: Option<u32>,
        #[serde(default, deserialize_with = "whole::required")]
        signed: i64,
    }

    #[test]
    fn whole_numbers_may_have_a_zero_fraction() {
        let n = parse::<Numbers>(br#"{"small": 5.0, "signed": -7.0}"#).unwrap();
        assert_eq!((n.small, n.signed), (Some(5), -7));
        let n = parse::<Numbers>(br#"{"small": null}"#).unwrap();
        assert_eq!((n.small, n.signed), (None, 0));
        for bad in [
            r#"{"small": 5.5}"#,
            r#"{"small": -1}"#,
            r#"{"small": 4294967296}"#,
            r#"{"small": 4294967296.0}"#,
            r#"{"small": "5"}"#,
            r#"{"signed": 1e300}"#,
            r#"{"signed": 9223372036854775808}"#,
        ] {
            let err = parse::<Numbers>(bad.as_bytes()).unwrap_err();
            assert_eq!(err.code, Code::SchemaInvalid, "{bad}: {err}");
            assert!(err.field.is_some(), "{bad}: {err}");
        }
    }
}
