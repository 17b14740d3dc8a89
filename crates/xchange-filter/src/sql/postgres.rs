//! The PostgreSQL dialect: plain SQL over a `jsonb` column, every value and path in a
//! bind parameter. What is translated is listed on [`Filter::to_postgres`].
//!
//! A walk ([`Walk`]) is one `LATERAL` subquery per path segment, a `UNION ALL` of the
//! ways MongoDB goes on from a value: into an object's field (SQL NULL when the field is
//! missing, and for scalars, null and missing), into the object elements of an array, and
//! for a numeric segment to the element at that index. Candidates are `jsonb` values
//! (SQL NULL for missing) tested through `jsonb_typeof` first, so `{a: {$gt: 5}}` never
//! compares a string with a number. `jsonb` equality is MongoDB's equality on JSON
//! (numbers by value, `1 = 1.0`; objects whatever their key order), so equality with any
//! value, arrays and objects included, is one comparison; strings are ordered by bytes
//! (`COLLATE "C"`), never by the database's locale.

use serde_json::Value;

use super::compile::{Candidate, Compiler, Dialect, Out, Walk};
use super::{SqlFragment, SqlParam, pg_regex, quote_column, unsupported};
use crate::{FieldPath, Filter, FilterError, RegexCond, TypeName};

/// The most parameters one PostgreSQL statement can carry (a 16-bit count).
const MAX_PARAMS: usize = 65_535;

/// The columns of the generated subqueries, which would capture an unqualified document
/// column.
pub(crate) const CAPTURED: &[&str] = &["v", "x"];

impl Filter {
    /// Compiles the filter to a PostgreSQL condition on `column`, a `jsonb` column given
    /// as `name` or `table.name` (letters, digits, `_`; an unqualified column may not be
    /// named `v` or `x`, and no part may look like the generated aliases, `_w1`). Values,
    /// field names and regex patterns travel only as bind parameters (`$1`, `$2`, ...,
    /// each cast to the type it needs); the column is checked and double-quoted. Plain
    /// SQL over `jsonb` functions: no extension, no function to create. Needs
    /// PostgreSQL 11 or newer and a UTF-8 database.
    ///
    /// Translated, with the same answers as [`Filter::matches`]: every operator, dotted
    /// paths with numeric segments through arrays, equality with any value. `$regex` is
    /// translated to PostgreSQL's own regular-expression dialect so that it means exactly
    /// what the `regex` crate means (see `pg_regex.rs`): case folding, `\w`, `\d`, `\s`
    /// and `.` become explicit Unicode character ranges, `^`/`$` with `m` and word
    /// boundaries become look-arounds.
    ///
    /// Refused with [`FilterError::UnsupportedInSql`]: ordering (`$gt`, ...) against a
    /// non-empty array or object; `$regex` patterns with a counted repetition above 255
    /// (PostgreSQL's bound), with CRLF-mode anchors (`(?R)`), or whose translation is over
    /// 256 KiB; more than 65,535 bind parameters.
    ///
    /// Known differences, from how `jsonb` stores numbers: a number is told to be an
    /// integer (`$type` `int`, `long`) or a `double` by its text, and `jsonb` writes
    /// exponents out, so a double written `1e16` (serde_json's form from 1e16 up) counts
    /// as a `long` here, though `1.5` and `1e300` stay doubles. Numbers compare by their
    /// decimal text, which for doubles is the shortest text that reads back as the same
    /// double, so an integer above 2^53 and a double closer than the double's rounding
    /// step may compare the other way round. Strings with the character U+0000 cannot be
    /// stored in `jsonb` at all.
    ///
    /// Run these queries with `jit = off` (for the session, or `SET LOCAL`): the planner
    /// counts 100 rows for every `jsonb_array_elements`, so a nested condition looks costly
    /// enough for the JIT, which then spends seconds compiling a query that runs in a
    /// millisecond.
    pub fn to_postgres(&self, column: &str) -> Result<SqlFragment, FilterError> {
        let root = quote_column(column, CAPTURED)?;
        Compiler::<Postgres>::new().condition(self.expr(), &root)
    }
}

pub(crate) struct Postgres;

impl Dialect for Postgres {
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";
    const DOLLAR: bool = true;

    fn walk(out: &mut Out, root: &str, path: &FieldPath) -> Result<Walk, FilterError> {
        let last = path.segments().len() - 1;
        let mut from = Vec::new();
        let (mut p, mut x) = (root.to_owned(), String::new());
        for (i, segment) in path.segments().iter().enumerate() {
            let name = out.param(SqlParam::Text(segment.name().to_owned()));
            let (w, e) = (out.alias("w"), out.alias("e"));
            // An object's field, or missing: `->` gives SQL NULL for scalars, null,
            // missing values and absent keys.
            let mut branches = vec![format!(
                "SELECT {p} -> {name}::text AS v, TRUE AS x WHERE jsonb_typeof({p}) IS DISTINCT FROM 'array'"
            )];
            let elements = format!(
                "SELECT {e}.v -> {name}::text, TRUE FROM jsonb_array_elements(CASE WHEN jsonb_typeof({p}) = 'array' THEN {p} END) {e}(v) \
                 WHERE jsonb_typeof({e}.v) = 'object'"
            );
            match segment.index() {
                // Each object element of an array, missing where it lacks the field.
                None => branches.push(elements),
                Some(index) => {
                    // Only the object elements that have a field of that name (see
                    // `path.rs`), and the element at the index.
                    branches.push(format!("{elements} AND {e}.v -> {name}::text IS NOT NULL"));
                    let at = out.param(SqlParam::Integer(
                        i64::try_from(index).unwrap_or(i64::MAX).min(i32::MAX.into()),
                    ));
                    let picked = format!("{p} -> {at}::int");
                    let (go_on, expand) = if i == last {
                        ("TRUE".to_owned(), "FALSE")
                    } else {
                        (format!("jsonb_typeof({picked}) IN ('object', 'array')"), "TRUE")
                    };
                    branches.push(format!(
                        "SELECT {picked}, {expand} WHERE jsonb_typeof({p}) = 'array' AND {picked} IS NOT NULL AND {go_on}"
                    ));
                }
            }
            from.push(format!("LATERAL ({}) {w}", branches.join(" UNION ALL ")));
            (p, x) = (format!("{w}.v"), format!("{w}.x"));
        }
        Ok(Walk { from: from.join(", "), filter: "TRUE".to_owned(), j: p, x })
    }

    fn reached(j: &str) -> (String, String) {
        (format!("coalesce(jsonb_typeof({j}), 'missing')"), j.to_owned())
    }

    fn elements(out: &mut Out, guard: &str, array: &str) -> (String, String, String) {
        let f = out.alias("f");
        let from = format!("jsonb_array_elements(CASE WHEN {guard} THEN {array} END) {f}(v)");
        (from, format!("jsonb_typeof({f}.v)"), format!("{f}.v"))
    }

    fn element_root(c: Candidate<'_>) -> String {
        c.value.to_owned()
    }

    fn eq(out: &mut Out, x: &Value, c: Candidate<'_>, _op: &str, _loc: &str) -> Result<String, FilterError> {
        let p = json(out, x);
        Ok(format!("({} IS NOT DISTINCT FROM {p})", c.value))
    }

    fn in_values(
        out: &mut Out,
        xs: &[&Value],
        c: Candidate<'_>,
        _op: &str,
        _loc: &str,
    ) -> Result<String, FilterError> {
        let list: Vec<String> = xs.iter().map(|x| json(out, x)).collect();
        Ok(format!("coalesce({} IN ({}), FALSE)", c.value, list.join(", ")))
    }

    fn cmp_scalar(out: &mut Out, sql_op: &str, x: &Value, c: Candidate<'_>) -> String {
        let Candidate { ty, value } = c;
        match x {
            Value::String(s) => {
                let p = out.param(SqlParam::Text(s.clone()));
                format!("({ty} = 'string' AND ({value} #>> '{{}}') COLLATE \"C\" {sql_op} {p}::text)")
            }
            _ => {
                let class = if x.is_boolean() { "boolean" } else { "number" };
                let p = json(out, x);
                format!("({ty} = '{class}' AND {value} {sql_op} {p})")
            }
        }
    }

    fn non_empty(c: Candidate<'_>) -> String {
        format!("coalesce({} NOT IN ('[]'::jsonb, '{{}}'::jsonb), FALSE)", c.value)
    }

    fn type_test(t: TypeName, c: Candidate<'_>) -> String {
        let Candidate { ty, value } = c;
        // `jsonb` keeps a number's text (`1.0` stays `1.0`), which is how an integer is
        // told from a double.
        let integer_within = |lo: i64, hi: i64| {
            format!(
                "(CASE WHEN {ty} = 'number' AND ({value} #>> '{{}}') ~ '^-?[0-9]+$' \
                 THEN ({value})::numeric BETWEEN {lo} AND {hi} ELSE FALSE END)"
            )
        };
        let int32 = integer_within(i32::MIN.into(), i32::MAX.into());
        let int64 = integer_within(i64::MIN, i64::MAX);
        match t {
            TypeName::Double => format!("({ty} = 'number' AND NOT {int64})"),
            TypeName::String => format!("{ty} = 'string'"),
            TypeName::Object => format!("{ty} = 'object'"),
            TypeName::Array => format!("{ty} = 'array'"),
            TypeName::Bool => format!("{ty} = 'boolean'"),
            TypeName::Null => format!("{ty} = 'null'"),
            TypeName::Int => int32,
            TypeName::Long => format!("({int64} AND NOT {int32})"),
            TypeName::Number => format!("{ty} = 'number'"),
        }
    }

    fn regex(out: &mut Out, r: &RegexCond, c: Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let pattern = pg_regex::translate(r).map_err(|reason| unsupported("$regex", loc, reason))?;
        let p = out.param(SqlParam::Text(pattern));
        let Candidate { ty, value } = c;
        Ok(format!("(CASE WHEN {ty} = 'string' THEN ({value} #>> '{{}}') ~ {p}::text ELSE FALSE END)"))
    }

    fn size(out: &mut Out, n: usize, c: Candidate<'_>) -> String {
        // No array is longer than `i32::MAX`, so clamping keeps the answer.
        let p = out.param(SqlParam::Integer(i64::try_from(n).unwrap_or(i64::MAX).min(i32::MAX.into())));
        let Candidate { ty, value } = c;
        format!("(CASE WHEN {ty} = 'array' THEN jsonb_array_length({value}) = {p}::int ELSE FALSE END)")
    }

    fn check(_sql: &str, params: usize) -> Result<(), FilterError> {
        if params > MAX_PARAMS {
            return Err(unsupported("", "", "the condition needs more than 65535 bind parameters"));
        }
        Ok(())
    }
}

/// A value as a `jsonb` parameter (its JSON text, cast).
pub(crate) fn json(out: &mut Out, x: &Value) -> String {
    format!("{}::jsonb", out.param(SqlParam::Text(x.to_string())))
}
