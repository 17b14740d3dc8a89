//! The one error answer of the HTTP API: a status code from the protocol's table, a
//! sentence, and the offending field when there is one.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use xchange_filter::FilterError;
use xchange_protocol::Code;
use xchange_store::StoreError;

/// Why a request was refused. Every refusal carries a code of the one status-code table
/// (`xchange_protocol::Code`); the HTTP status is that code's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The code from the table.
    pub code: Code,
    /// What went wrong, in words (lower case, no trailing period).
    pub message: String,
    /// The field of the request at fault (a JSON path such as `job_goal` or
    /// `filter.$or.1.price`), when there is one.
    pub field: Option<String>,
    /// For a refusal that passes (busy): how long to wait, sent as `Retry-After`.
    pub retry_after: Option<std::time::Duration>,
}

/// The body of every error answer: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The refusal.
    pub error: ErrorDetail,
}

/// One refusal, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The numeric status code, e.g. 5014.
    pub code: u16,
    /// Its stable name, e.g. `schema_invalid`.
    pub name: String,
    /// What went wrong.
    pub message: String,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None, retry_after: None }
    }

    /// The same refusal, telling the client to retry after `wait`.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// `Retry-After` in whole seconds, rounded up (at least 1), if the refusal has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Names the offending field.
    pub fn at(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// 5038: the request is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    /// 5014: the document does not match its schema.
    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(Code::SchemaInvalid, message)
    }

    /// 5020: no such resource.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(Code::NotFound, format!("{kind} {id:?} not found"))
    }

    /// A failed filter or sort, under the request field that held it (`filter`, `sort`).
    pub fn filter(err: &FilterError, field: &str) -> Self {
        let code = match err {
            FilterError::TooDeep { .. }
            | FilterError::TooManyNodes { .. }
            | FilterError::ListTooLong { .. }
            | FilterError::RegexTooLong { .. }
            | FilterError::RegexTooLarge { .. } => Code::TooLarge,
            _ => Code::SchemaInvalid,
        };
        let path = err.path();
        let at = if path.is_empty() { field.to_owned() } else { format!("{field}.{path}") };
        Self::new(code, format!("invalid {field}: {err}")).at(at)
    }

    /// The HTTP status of the code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.number(),
                name: self.code.name().to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let code = err.code();
        if code == Code::Internal || code == Code::Unavailable {
            // The database's own words may name tables and hosts; the log keeps them.
            tracing::error!(error = %err, "store failed");
            return Self::new(code, code.sentence().trim_end_matches('.').to_lowercase());
        }
        Self::new(code, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs();
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
