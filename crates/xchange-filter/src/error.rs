//! The one error type of the crate.

use std::borrow::Cow;

/// Why a filter or a sort was refused.
///
/// Every variant names where in the filter the problem is (`path`): the field path, with
/// the enclosing logical operators and list indices, for example `$or.1.price` or
/// `results.$elemMatch.score`; an empty path is the top level of the filter. Messages are
/// lower case, without a trailing period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// A filter document (the whole filter, an item of `$and`/`$or`/`$nor`, the operand of
    /// a document `$elemMatch`) is not a JSON object.
    #[error("a filter must be an object, found {found} at {}", at(.path))]
    NotAnObject {
        /// Where.
        path: String,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An operator that MongoDB does not have, or a misspelt one (`$foo`, `$regexp`).
    #[error("unknown operator {op} at {}", at(.path))]
    UnknownOperator {
        /// The operator as written.
        op: String,
        /// Where.
        path: String,
    },
    /// A MongoDB operator this crate deliberately does not implement (`$where`, `$expr`,
    /// `$text`, `$mod`, geo and bit operators, ...).
    #[error("operator {op} is not supported (at {})", at(.path))]
    UnsupportedOperator {
        /// The operator.
        op: String,
        /// Where.
        path: String,
    },
    /// A known operator in a place where it has no meaning: `$gt` at the top level,
    /// `$or` inside a field's operators, `$not` at the top level, `$options` alone.
    #[error("operator {op} cannot be used at {}: {reason}", at(.path))]
    MisplacedOperator {
        /// The operator.
        op: String,
        /// Where.
        path: String,
        /// What to write instead.
        reason: &'static str,
    },
    /// An operator's operand has the wrong type or value (`$in` with a non-array, `$size`
    /// with a negative number, `$type` with an unknown type name, ...).
    #[error("invalid operand for {op} at {}: expected {expected}", at(.path))]
    InvalidOperand {
        /// The operator.
        op: String,
        /// Where.
        path: String,
        /// What the operator accepts.
        expected: &'static str,
    },
    /// An object mixes `$`-operators with plain field names, so it is neither an operator
    /// expression nor a literal document.
    #[error("{} mixes operators and field names in one object", at(.path))]
    MixedOperatorsAndFields {
        /// Where.
        path: String,
    },
    /// A field path that cannot be resolved: empty, with an empty segment, or with a
    /// segment that starts with `$`.
    #[error("invalid field path {field:?} at {}: {reason}", at(.path))]
    InvalidPath {
        /// The path as written.
        field: String,
        /// Where.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The `$regex` pattern does not compile (syntax the `regex` crate lacks, such as
    /// look-around and back-references, is reported here too).
    #[error("invalid regular expression for $regex at {}: {message}", at(.path))]
    InvalidRegex {
        /// Where.
        path: String,
        /// The regex crate's explanation.
        message: String,
    },
    /// The filter nests more objects and arrays than [`Limits::max_depth`](crate::Limits).
    #[error("the filter nests deeper than the limit of {limit} levels at {}", at(.path))]
    TooDeep {
        /// Where the limit was crossed.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// The filter has more conditions than [`Limits::max_nodes`](crate::Limits).
    #[error("the filter has more than the limit of {limit} conditions (crossed at {})", at(.path))]
    TooManyNodes {
        /// Where the limit was crossed.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// An `$in`, `$nin` or `$all` list is longer than [`Limits::max_list_len`](crate::Limits).
    #[error("{op} at {} lists {len} values, more than the limit of {limit}", at(.path))]
    ListTooLong {
        /// The operator.
        op: String,
        /// Where.
        path: String,
        /// The list's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A `$regex` pattern is longer than [`Limits::max_regex_len`](crate::Limits) bytes.
    #[error("$regex pattern at {} is {len} bytes long, more than the limit of {limit}", at(.path))]
    RegexTooLong {
        /// Where.
        path: String,
        /// The pattern's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A `$regex` compiles to more than [`Limits::max_regex_size`](crate::Limits) bytes.
    #[error("$regex pattern at {} compiles to more than the limit of {limit} bytes", at(.path))]
    RegexTooLarge {
        /// Where.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// A filter that a SQL compiler does not translate (see [`Filter::to_sqlite`] and
    /// [`Filter::to_postgres`] for what they refuse); matching it in memory works.
    ///
    /// [`Filter::to_sqlite`]: crate::Filter::to_sqlite
    /// [`Filter::to_postgres`]: crate::Filter::to_postgres
    #[error("cannot compile {} at {} to SQL: {reason}", if .op.is_empty() { "the filter" } else { .op.as_str() }, at(.path))]
    UnsupportedInSql {
        /// The operator (empty when the problem is the path).
        op: String,
        /// Where.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A column or table name given to a SQL compiler is not `name` or `table.name`, or
    /// would be captured by a column or alias of the generated SQL (`value`, `v`, `_e1`).
    #[error(
        "invalid column or table {column:?}: expected `name` or `table.name` (letters, digits, _), \
         not a name the generated SQL uses (json_each's columns, v, x, _e1-like aliases)"
    )]
    InvalidColumn {
        /// The column as given.
        column: String,
    },
    /// A sort specification that is not `{"field": 1 | -1, ...}` or a list of such objects.
    #[error("invalid sort at {}: {reason}", at(.path))]
    InvalidSort {
        /// The field (empty for the whole sort).
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl FilterError {
    /// The name of the status code this error is refused with.
    ///
    /// For now every variant answers `"schema_invalid"` (5014, HTTP 422 in
    /// `xchange-protocol`'s table). The closest existing codes are `invalid_request`
    /// (5038, HTTP 400: the request's filter or sort is wrong) for the syntax variants and
    /// `too_large` (5019, HTTP 413) for the limit variants ([`TooDeep`](Self::TooDeep),
    /// [`TooManyNodes`](Self::TooManyNodes), [`ListTooLong`](Self::ListTooLong),
    /// [`RegexTooLong`](Self::RegexTooLong), [`RegexTooLarge`](Self::RegexTooLarge)); the
    /// node decides when it maps them. This crate does not depend on `xchange-protocol`,
    /// so the name is returned as a string.
    pub fn code_name(&self) -> &'static str {
        "schema_invalid"
    }

    /// Where in the filter the problem is (empty: the top level).
    pub fn path(&self) -> &str {
        match self {
            Self::NotAnObject { path, .. }
            | Self::UnknownOperator { path, .. }
            | Self::UnsupportedOperator { path, .. }
            | Self::MisplacedOperator { path, .. }
            | Self::InvalidOperand { path, .. }
            | Self::MixedOperatorsAndFields { path }
            | Self::InvalidPath { path, .. }
            | Self::InvalidRegex { path, .. }
            | Self::TooDeep { path, .. }
            | Self::TooManyNodes { path, .. }
            | Self::ListTooLong { path, .. }
            | Self::RegexTooLong { path, .. }
            | Self::RegexTooLarge { path, .. }
            | Self::InvalidSort { path, .. }
            | Self::UnsupportedInSql { path, .. } => path,
            Self::InvalidColumn { .. } => "",
        }
    }

    /// The operator the error is about, when there is one.
    pub fn operator(&self) -> Option<&str> {
        match self {
            Self::UnknownOperator { op, .. }
            | Self::UnsupportedOperator { op, .. }
            | Self::MisplacedOperator { op, .. }
            | Self::InvalidOperand { op, .. }
            | Self::ListTooLong { op, .. } => Some(op),
            Self::UnsupportedInSql { op, .. } if !op.is_empty() => Some(op),
            Self::InvalidRegex { .. } | Self::RegexTooLong { .. } | Self::RegexTooLarge { .. } => {
                Some("$regex")
            }
            _ => None,
        }
    }
}

/// How a location reads in a message.
fn at(path: &str) -> Cow<'_, str> {
    if path.is_empty() { Cow::Borrowed("the top level") } else { Cow::Owned(format!("`{path}`")) }
}
