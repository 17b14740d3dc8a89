//! Mongo-style filters for Xchange's job and registry queries: parse, match, sort, page,
//! and the same in SQL for SQLite and PostgreSQL.
//!
//! A filter arrives as JSON (`{"status": "open", "price": {"$lte": 10}}`), is parsed once
//! into a typed tree ([`Filter::parse`]), which refuses anything unknown, misplaced,
//! mistyped or over a [`Limits`] bound, and is then matched against any number of JSON
//! documents ([`Filter::matches`]), which cannot fail. [`Sort`] orders documents the way
//! MongoDB's `sort()` does; a [`Page`] adds a limit and a keyset [`Cursor`] (the last
//! row's [`SortValue`]s and [`RowId`]), ordering ties by id.
//!
//! The same answers come from SQL, with every value, field name and pattern in a bind
//! parameter ([`SqlFragment`]): [`Filter::to_sqlite`] (JSON1 on a JSON text column) and
//! [`Filter::to_postgres`] (plain SQL over a `jsonb` column, no extension or function)
//! compile a condition; [`Page::to_sqlite`] and [`Page::to_postgres`] a whole `SELECT` of
//! `(id, doc)` rows from a [`Table`], sorted, after the cursor, limited. Each method's
//! docs list what it refuses ([`FilterError::UnsupportedInSql`]) and its known
//! differences.
//!
//! The semantics are MongoDB's query semantics, restricted to the types JSON has. The
//! tests hold all three evaluators (in memory, SQLite, PostgreSQL) to the examples of
//! MongoDB's manual with their documented answers (`tests/filter/mongo_examples.json`),
//! and to each other on random documents and filters (`tests/filter/differential.rs`).
//!
//! # Grammar
//!
//! ```text
//! filter     = { (field: value-cond | logical)* }        all must hold; {} matches all
//! logical    = "$and" | "$or" | "$nor" : [filter, ...]   non-empty
//! field      = dotted path: "a", "size.uom", "items.0.name"
//! value-cond = literal                                   implicit $eq
//!            | { op: operand, ... }                      all must hold
//! op         = $eq $ne $gt $gte $lt $lte : literal
//!            | $in $nin : [literal, ...]
//!            | $exists : bool
//!            | $type : type | [type, ...]                type = name or code, below
//!            | $regex : string  ($options : "imsx" letters, in the same object)
//!            | $size : non-negative integer
//!            | $all : [literal, ...] | [{$elemMatch: em}, ...]
//!            | $elemMatch : em
//!            | $not : { op: operand, ... }
//! em         = filter (elements that are documents) | { op: operand, ... } (element values)
//! ```
//!
//! # Semantics, and where they differ from MongoDB
//!
//! - **Arrays.** A condition on a field that holds an array holds if it holds for an
//!   element, or (for equality, `$in`, `$type`) for the array as a whole. Paths go
//!   through arrays of documents (`instock.qty`); a numeric segment is an array index
//!   (`items.0.name`). `$size`, `$elemMatch` and `$all` act on the array itself.
//! - **Null and missing.** `{a: null}` (and `$in: [null]`, `$gte: null`, `$lte: null`)
//!   match a null or missing field; `$exists: false` only a missing one; `$ne`, `$nin`
//!   and `$not` match a missing field.
//! - **Types.** `$gt`, `$gte`, `$lt`, `$lte` compare only within a type class (numbers,
//!   strings, objects, arrays, booleans, null); integers and floats compare exactly by
//!   value. Strings compare by bytes (MongoDB's simple collation).
//! - **`$type`** names: `double` (1), `string` (2), `object` (3), `array` (4), `bool` (8),
//!   `null` (10), `int` (16), `long` (18), and `number` (no code). A JSON integer that
//!   fits 32 bits is an `int`, one that fits 64 bits a `long`; a number written with a
//!   fraction or exponent (`1.0`) is a `double`, as is an integer above `i64::MAX`. Other
//!   BSON types (`objectId`, `date`, ...) cannot occur in JSON and are refused.
//! - **`$regex`** uses the `regex` crate: linear time, no look-around or
//!   back-references (such patterns are refused), `$` without `m` matches only at the
//!   very end (PCRE also before a final newline), and `\d`, `\w`, `\s` are Unicode-aware
//!   (PCRE's are ASCII). `$options` takes `i`, `m`, `s`, `x`. A regex inside
//!   `$in`/`$nin` is not supported (JSON has no regex literal) and is refused, as are
//!   `$`-operator objects in those lists. SQLite runs the same crate (through an
//!   application-defined `regexp`); for PostgreSQL the pattern is translated from the
//!   crate's parsed form into explicit character ranges and look-arounds, so that it
//!   means the same there (`sql/pg_regex.rs`), or refused when it cannot be.
//! - **Key order.** Object equality and ordering ignore key order (`{a:1,b:2}` equals
//!   `{b:2,a:1}`); MongoDB compares documents field by field in stored order. A
//!   `serde_json::Value` does not keep key order in this workspace's build.
//! - **Numeric path segments** on an array select the element at that index (an array
//!   picked that way by the last segment is not looked into, as in MongoDB) and also look
//!   into element documents that have a field of that name. MongoDB also counts element
//!   documents *without* such a field as "missing", so that `{"items.0.name": null}`
//!   matches every array of documents; here they do not count.
//! - **Document `$elemMatch`** tries the elements that are objects; MongoDB also tries
//!   nested arrays as documents with keys `"0"`, `"1"`, ...
//! - **Refused:** `$where`, `$expr`, `$text`, `$jsonSchema`, `$comment`, `$mod`, bit and
//!   geo operators; `$not` at the top level (use `$nor`); objects that mix operators and
//!   field names.
//!
//! - **Sorting in SQL** is exact for scalar sort values (arrays stand for their
//!   elements); an array or object that is itself a sort value (an array in an array, an
//!   object) orders by type only, ties broken by id, where [`Sort`] compares contents.
//!   Pages still add up: no row twice, none lost.
//!
//! # Layout
//!
//! `parse.rs` (JSON to [`Expr`], [`Limits`]), `eval.rs` (matching), `path.rs`
//! ([`FieldPath`] and array traversal), `compare.rs` (MongoDB's value order,
//! [`TypeName`]), `sort.rs` ([`Sort`], [`SortValue`]), `page.rs` ([`Page`] in memory,
//! [`Cursor`]), `ast.rs` (the tree), `error.rs` ([`FilterError`]). `sql/`: `compile.rs`
//! (MongoDB's semantics over a `Dialect`'s primitives), `sqlite.rs` and `postgres.rs`
//! (the dialects), `pg_regex.rs` (`$regex` for PostgreSQL), `page.rs` (sorted, paged
//! statements), `mod.rs` ([`SqlFragment`], [`SqlParam`]). With the `fuzzing` feature,
//! `fuzzing.rs`: the fuzz target's logic, shared by `fuzz/` and the corpus replay in
//! `tests/filter/fuzz_corpus.rs`; not an API.
//!
//! Pure: no I/O, no async, no clock, no randomness. Depends on serde, serde_json,
//! thiserror, regex and regex-syntax only; it must not depend on `xchange-protocol` (the
//! node maps [`FilterError::code_name`] onto the status-code table) nor on any database
//! or runtime crate (the SQL is text; the tests alone run it, through sqlx).

mod ast;
mod compare;
mod error;
mod eval;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod page;
mod parse;
mod path;
mod sort;
mod sql;

pub use ast::{CmpOp, Cond, ElemMatch, Expr, RegexCond, RegexOptions};
pub use compare::{TypeName, compare_values, values_equal};
pub use error::FilterError;
pub use page::{Cursor, Page, RowId};
pub use parse::Limits;
pub use path::{FieldPath, Segment};
pub use sort::{Direction, MAX_SORT_FIELDS, Sort, SortKey, SortValue};
pub use sql::{SqlCondition, SqlFragment, SqlParam, Table};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A parsed, checked filter.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    /// Parses a filter with the default [`Limits`].
    pub fn parse(v: &Value) -> Result<Self, FilterError> {
        Self::parse_with(v, &Limits::default())
    }

    /// Parses a filter under the given limits.
    pub fn parse_with(v: &Value, limits: &Limits) -> Result<Self, FilterError> {
        Ok(Self { expr: parse::parse(v, limits)? })
    }

    /// Whether the document matches.
    pub fn matches(&self, doc: &Value) -> bool {
        self.expr.matches(doc)
    }

    /// The parsed tree, for compilers to other query languages.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl<'de> Deserialize<'de> for Filter {
    /// Deserializes JSON and parses it with the default [`Limits`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::parse(&v).map_err(serde::de::Error::custom)
    }
}
