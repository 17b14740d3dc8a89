//! Paging and queries shared by the list endpoints.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// The default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page size.
pub const MAX_LIMIT: u32 = 1000;

/// A page of a list endpoint, from the query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Items per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A query: a Mongo-style filter and a page.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// A Mongo-style filter (`$eq`, `$in`, `$elemMatch`, ...); absent matches everything.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Items per page (1-1000, default 100).
    #[serde(default, deserialize_with = "crate::body::whole::optional")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// One page of results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The page size asked for, within bounds.
pub fn limit(asked: Option<u32>) -> Result<u32, crate::error::ApiError> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => {
            Err(crate::error::ApiError::invalid(format!("limit must be between 1 and {MAX_LIMIT}"))
                .at("limit"))
        }
    }
}
