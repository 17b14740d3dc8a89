//! Compiling filters to SQL with bind parameters only, for SQLite (JSON1, a JSON text
//! column) and PostgreSQL (a `jsonb` column).
//!
//! MongoDB's semantics live here once, in [`Compiler`]: which values a condition is tried
//! on (the values a path reaches, the elements of reached arrays), what `$ne`, `$nin` and
//! `$not` negate, how `$all` and `$elemMatch` decompose. A [`Dialect`] supplies the SQL
//! for the primitive tests (equality, ordering, `$type`, `$regex`, `$size`) and for the
//! walk that yields every value a path reaches ([`Walk`]). Each condition on a field is
//! an `EXISTS` over that walk; every test yields true or false, never NULL, so that `NOT`
//! is a negation.

mod compile;
mod page;
mod pg_regex;
mod postgres;
mod sqlite;

pub use page::Table;

/// SQL text and its bind parameters: a condition for a `WHERE` clause
/// ([`Filter::to_sqlite`](crate::Filter::to_sqlite),
/// [`Filter::to_postgres`](crate::Filter::to_postgres)) or a whole statement
/// ([`Page::to_sqlite`](crate::Page::to_sqlite)). Placeholders are numbered (`?1` in
/// SQLite, `$1` in PostgreSQL) and name `params[0]`, `params[1]`, ...; one parameter may
/// appear several times.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFragment {
    /// The SQL text.
    pub sql: String,
    /// The values to bind, in placeholder order.
    pub params: Vec<SqlParam>,
}

/// The name this type had when only conditions were compiled.
pub type SqlCondition = SqlFragment;

/// A value to bind. PostgreSQL statements cast each placeholder to the type they need
/// (`$1::jsonb`, `$2::int`), so binding `Integer` as `i64`, `Real` as `f64` and `Text` as
/// a string is always right.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// An integer (JSON integers that fit 64 bits, and booleans as 0 or 1).
    Integer(i64),
    /// A float (JSON numbers with a fraction, and integers above `i64::MAX`).
    Real(f64),
    /// Text: strings, JSON paths, JSON text, regex patterns.
    Text(String),
}

/// Checks `name` or `table.name` (ASCII letters, digits, `_`, not a letter or digit
/// first) and double-quotes each part. `captured` are the column names the generated
/// subqueries expose, which an unqualified column must not be named like; names shaped
/// like the generated aliases (`_e1`) are refused for the same reason.
pub(crate) fn quote_column(column: &str, captured: &[&str]) -> Result<String, crate::FilterError> {
    let invalid = || crate::FilterError::InvalidColumn { column: column.to_owned() };
    let parts: Vec<&str> = column.split('.').collect();
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let alias_like = |s: &str| {
        s.strip_prefix('_').is_some_and(|rest| {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            letters.len() < rest.len() && letters.chars().all(|c| c.is_ascii_alphabetic())
        })
    };
    if parts.len() > 2 || !parts.iter().all(|p| ident(p) && !alias_like(p)) {
        return Err(invalid());
    }
    if parts.len() == 1 && captured.contains(&parts[0].to_ascii_lowercase().as_str()) {
        return Err(invalid());
    }
    Ok(parts.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join("."))
}

pub(crate) fn unsupported(op: &str, loc: &str, reason: &'static str) -> crate::FilterError {
    crate::FilterError::UnsupportedInSql { op: op.to_owned(), path: loc.to_owned(), reason }
}
