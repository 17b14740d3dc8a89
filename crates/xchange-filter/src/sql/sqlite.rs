//! The SQLite dialect: JSON1 over a JSON text column, every value and path in a bind
//! parameter. What is translated is listed on [`Filter::to_sqlite`].
//!
//! A walk ([`Walk`]) is one `json_each` per path segment in a single FROM (table-valued
//! functions may read the columns of the ones before them), not nested subqueries:
//! SQLite's parser gives up at about fifteen nested subqueries. A value that is not an
//! array is walked as the one field of `{"w": value}`, so that one `json_each` serves both
//! cases and the rows of a wrapped value are told apart by their text key. Candidates are
//! tested through their JSON type (`json_type`, or `json_each.type`) and their SQL value
//! (`->> '$'`, or `json_each.value`), the type always first and inside a CASE where a
//! wrong type would be an error, so `{a: {$gt: 5}}` never compares a string with a number.

use serde_json::Value;

use super::compile::{Candidate, Compiler, Dialect, Out, Walk};
use super::{SqlFragment, SqlParam, quote_column, unsupported};
use crate::compare::{Class, class};
use crate::path::Segment;
use crate::{FieldPath, Filter, FilterError, RegexCond, TypeName};

/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER`.
const MAX_PARAMS: usize = 32_766;

/// SQLite's parser (before growable stacks) has 100 stack entries, and a statement that
/// nests deeper fails to prepare. [`parser_stack_estimate`] weighs the nesting of the
/// generated SQL; over 3,000 deliberately deep filters run against SQLite 3.40, none
/// estimated below 83 failed, and ordinary filters (the MongoDB table, random filters
/// three levels deep) stay under 70.
const PARSER_BUDGET: usize = 80;

/// SQLite allows 64 tables in one join; a walk uses one per segment, one more per numeric
/// segment and one for the elements it looks into.
const MAX_JOIN: usize = 64;

/// The columns of `json_each`, which would capture an unqualified document column.
pub(crate) const CAPTURED: &[&str] =
    &["key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json", "root", "j", "x", "b"];

impl Filter {
    /// Compiles the filter to a SQLite condition on `column`, a JSON text column given as
    /// `name` or `table.name` (letters, digits, `_`). An unqualified column may not be
    /// named like a column of `json_each` (`key`, `value`, `type`, `atom`, `id`,
    /// `parent`, `fullkey`, `path`, `json`, `root`), which would capture it, and no part may
    /// look like the generated aliases (`_e1`). Needs SQLite 3.38 or newer (`->`, `->>`).
    /// Values, field names and regex patterns travel only as bind parameters (`?1`, `?2`,
    /// ...); the column is checked and double-quoted.
    ///
    /// Translated, with the same answers as [`Filter::matches`]: every operator, dotted
    /// paths with numeric segments through arrays, equality (`$eq`, `$ne`, `$in`, `$nin`,
    /// `$all`) with any value, arrays and objects included. `$regex` goes through SQLite's
    /// `REGEXP` operator, which calls an application-defined `regexp(pattern, text)`
    /// function (sqlx: `SqliteConnectOptions::with_regexp`; rusqlite: register one built on
    /// the `regex` crate), the `$options` travelling as an inline `(?imsx)` prefix of the
    /// pattern.
    ///
    /// Refused with [`FilterError::UnsupportedInSql`]: ordering (`$gt`, ...) against a
    /// non-empty array or object (`[]` and `{}` are compiled); field names with `"`, `\`
    /// or control characters (SQLite matches path labels against the raw, escaped key
    /// text, so such keys cannot be reached; store documents as serde_json writes them); a
    /// path of more than about 30 segments (SQLite joins at most 64 tables); more than
    /// 32,766 bind parameters; and filters nested too deeply for the 100-entry parser stack
    /// of older SQLite builds (a conservative estimate: ordinary filters stay far below it).
    ///
    /// Known numeric difference: SQLite reads a JSON integer above `i64::MAX` as a float.
    pub fn to_sqlite(&self, column: &str) -> Result<SqlFragment, FilterError> {
        let root = quote_column(column, CAPTURED)?;
        Compiler::<Sqlite>::new().condition(self.expr(), &root)
    }
}

pub(crate) struct Sqlite;

impl Dialect for Sqlite {
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const DOLLAR: bool = false;

    /// The walk of `path` from `root` (JSON text), as `FieldPath::resolve` does it.
    fn walk(out: &mut Out, root: &str, path: &FieldPath) -> Result<Walk, FilterError> {
        let last = path.segments().len() - 1;
        let tables =
            path.segments().len() + path.segments().iter().filter(|s| s.index().is_some()).count() + 1;
        if tables > MAX_JOIN {
            return Err(unsupported(
                "",
                path.as_str(),
                "the path is too long for one SQLite join (64 tables)",
            ));
        }
        let (mut from, mut filter) = (Vec::new(), Vec::new());
        let mut input = format!("json_object('w', json({root}))");
        let (mut j, mut x) = (String::new(), "1".to_owned());
        for (i, segment) in path.segments().iter().enumerate() {
            let label = label(out, segment, path.as_str())?;
            let e = out.alias("e");
            from.push(format!("json_each({input}) {e}"));
            match segment.index() {
                None => {
                    filter.push(format!("(typeof({e}.key) = 'text' OR {e}.type = 'object')"));
                    // A wrapped scalar or missing value has no field.
                    j = format!("(CASE WHEN {e}.type = 'object' THEN {e}.value -> {label} END)");
                }
                Some(index) => {
                    // Branch 0: the field of that name (of a wrapped value, or of an
                    // element document that has it); branch 1: the element at the index.
                    let b = out.alias("b");
                    from.push(format!("json_each('[0, 1]') {b}"));
                    let at = out.param(SqlParam::Text(format!("$[{index}]")));
                    let position = out.param(SqlParam::Integer(i64::try_from(index).unwrap_or(i64::MAX)));
                    let picked =
                        if i == last { "1".to_owned() } else { format!("{e}.type IN ('object', 'array')") };
                    filter.push(format!(
                        "(CASE WHEN typeof({e}.key) = 'text' THEN {b}.value = 0 \
                         WHEN {b}.value = 0 THEN (CASE WHEN {e}.type = 'object' THEN json_type({e}.value, {label}) IS NOT NULL ELSE 0 END) \
                         ELSE {e}.key = {position} AND {picked} END)"
                    ));
                    j = format!(
                        "(CASE WHEN {b}.value = 1 THEN {e}.json -> {at} WHEN {e}.type = 'object' THEN {e}.value -> {label} END)"
                    );
                    if i == last {
                        x = format!(
                            "(CASE WHEN typeof({e}.key) = 'integer' AND {b}.value = 1 THEN 0 ELSE 1 END)"
                        );
                    }
                }
            }
            input =
                format!("(CASE WHEN json_type({j}) = 'array' THEN {j} ELSE json_object('w', json({j})) END)");
        }
        Ok(Walk { from: from.join(", "), filter: filter.join(" AND "), j, x })
    }

    fn reached(j: &str) -> (String, String) {
        (format!("coalesce(json_type({j}), 'missing')"), format!("({j} ->> '$')"))
    }

    fn elements(out: &mut Out, guard: &str, array: &str) -> (String, String, String) {
        let f = out.alias("f");
        // `json_each` of a plain string is an error, and SQLite does not promise to test
        // the guard first elsewhere, hence the CASE.
        let from = format!("json_each(CASE WHEN {guard} THEN {array} ELSE '[]' END) {f}");
        (from, format!("{f}.type"), format!("{f}.value"))
    }

    fn element_root(c: Candidate<'_>) -> String {
        format!("(CASE WHEN {} = 'object' THEN {} END)", c.ty, c.value)
    }

    fn eq(out: &mut Out, x: &Value, c: Candidate<'_>, _op: &str, loc: &str) -> Result<String, FilterError> {
        let Candidate { ty, value } = c;
        Ok(match x {
            Value::Null => format!("({ty} IN ('missing', 'null'))"),
            Value::Bool(b) => format!("({ty} = '{b}')"),
            Value::Number(_) | Value::String(_) => {
                let p = scalar(out, x);
                format!("({} AND {value} = {p})", class_test(x, ty))
            }
            // Structural equality, as `values_equal`: same length (number of keys), and
            // each element (each key's value) equal. A key of the operand must be present,
            // even when its value is null.
            Value::Array(items) => {
                let n = out.param(SqlParam::Integer(i64::try_from(items.len()).unwrap_or(i64::MAX)));
                let mut parts = vec![format!("json_array_length({value}) = {n}")];
                for (i, item) in items.iter().enumerate() {
                    let at = out.param(SqlParam::Text(format!("$[{i}]")));
                    parts.push(Self::eq(out, item, child(value, &at).as_candidate(), _op, loc)?);
                }
                format!("(CASE WHEN {ty} = 'array' THEN {} ELSE 0 END)", parts.join(" AND "))
            }
            Value::Object(map) => {
                let n = out.param(SqlParam::Integer(i64::try_from(map.len()).unwrap_or(i64::MAX)));
                let mut parts = vec![format!("(SELECT count(*) FROM json_each({value})) = {n}")];
                for (key, item) in map {
                    let at = label_of(out, key, loc)?;
                    let child = child(value, &at);
                    parts.push(format!("{} <> 'missing'", child.ty));
                    parts.push(Self::eq(out, item, child.as_candidate(), _op, loc)?);
                }
                format!("(CASE WHEN {ty} = 'object' THEN {} ELSE 0 END)", parts.join(" AND "))
            }
        })
    }

    fn in_values(
        out: &mut Out,
        xs: &[&Value],
        c: Candidate<'_>,
        op: &str,
        loc: &str,
    ) -> Result<String, FilterError> {
        let (mut numbers, mut strings, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for x in xs {
            match x {
                Value::Number(_) => numbers.push(scalar(out, x)),
                Value::String(_) => strings.push(scalar(out, x)),
                _ => rest.push(Self::eq(out, x, c, op, loc)?),
            }
        }
        let Candidate { ty, value } = c;
        if !numbers.is_empty() {
            rest.push(format!("({ty} IN ('integer', 'real') AND {value} IN ({}))", numbers.join(", ")));
        }
        if !strings.is_empty() {
            rest.push(format!("({ty} = 'text' AND {value} IN ({}))", strings.join(", ")));
        }
        Ok(format!("({})", rest.join(" OR ")))
    }

    fn cmp_scalar(out: &mut Out, sql_op: &str, x: &Value, c: Candidate<'_>) -> String {
        let Candidate { ty, value } = c;
        match x {
            // `->> '$'` and `json_each.value` give true as 1 and false as 0.
            Value::Bool(b) => {
                let p = out.param(SqlParam::Integer(i64::from(*b)));
                format!("({ty} IN ('true', 'false') AND {value} {sql_op} {p})")
            }
            _ => {
                let p = scalar(out, x);
                format!("({} AND {value} {sql_op} {p})", class_test(x, ty))
            }
        }
    }

    fn non_empty(c: Candidate<'_>) -> String {
        let Candidate { ty, value } = c;
        format!(
            "(CASE WHEN {ty} = 'array' THEN json_array_length({value}) > 0 \
             WHEN {ty} = 'object' THEN json({value}) <> '{{}}' ELSE 0 END)"
        )
    }

    fn type_test(t: TypeName, c: Candidate<'_>) -> String {
        let Candidate { ty, value } = c;
        let int32 = format!("{value} BETWEEN -2147483648 AND 2147483647");
        match t {
            TypeName::Double => format!("{ty} = 'real'"),
            TypeName::String => format!("{ty} = 'text'"),
            TypeName::Object => format!("{ty} = 'object'"),
            TypeName::Array => format!("{ty} = 'array'"),
            TypeName::Bool => format!("{ty} IN ('true', 'false')"),
            TypeName::Null => format!("{ty} = 'null'"),
            TypeName::Int => format!("({ty} = 'integer' AND {int32})"),
            TypeName::Long => format!("({ty} = 'integer' AND NOT {int32})"),
            TypeName::Number => format!("{ty} IN ('integer', 'real')"),
        }
    }

    fn regex(out: &mut Out, r: &RegexCond, c: Candidate<'_>, _loc: &str) -> Result<String, FilterError> {
        let o = r.options();
        let flags: String =
            [(o.case_insensitive, 'i'), (o.multi_line, 'm'), (o.dot_all, 's'), (o.extended, 'x')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, letter)| *letter)
                .collect();
        let pattern =
            if flags.is_empty() { r.pattern().to_owned() } else { format!("(?{flags}){}", r.pattern()) };
        let p = out.param(SqlParam::Text(pattern));
        let Candidate { ty, value } = c;
        Ok(format!("(CASE WHEN {ty} = 'text' THEN coalesce({value} REGEXP {p}, 0) ELSE 0 END)"))
    }

    fn size(out: &mut Out, n: usize, c: Candidate<'_>) -> String {
        let p = out.param(SqlParam::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        let Candidate { ty, value } = c;
        format!("(CASE WHEN {ty} = 'array' THEN json_array_length({value}) = {p} ELSE 0 END)")
    }

    fn check(sql: &str, params: usize) -> Result<(), FilterError> {
        if params > MAX_PARAMS {
            return Err(unsupported("", "", "the condition needs more than 32766 bind parameters"));
        }
        if parser_stack_estimate(sql) > PARSER_BUDGET {
            return Err(unsupported("", "", "the filter nests too deeply for SQLite's parser"));
        }
        Ok(())
    }
}

/// The type and value of a member of a JSON text `value` (an array or an object), at the
/// JSON path in placeholder `at`.
struct Child {
    ty: String,
    value: String,
}

impl Child {
    fn as_candidate(&self) -> Candidate<'_> {
        Candidate { ty: &self.ty, value: &self.value }
    }
}

fn child(value: &str, at: &str) -> Child {
    Child {
        ty: format!("coalesce(json_type({value}, {at}), 'missing')"),
        value: format!("({value} ->> {at})"),
    }
}

/// The JSON path of one object key of a path, as a parameter.
fn label(out: &mut Out, segment: &Segment, loc: &str) -> Result<String, FilterError> {
    label_of(out, segment.name(), loc)
}

fn label_of(out: &mut Out, name: &str, loc: &str) -> Result<String, FilterError> {
    if name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(unsupported(
            "",
            loc,
            "SQLite cannot reach a key that contains a double quote, a backslash or a control character",
        ));
    }
    Ok(out.param(SqlParam::Text(format!("$.\"{name}\""))))
}

/// A number or string as a parameter.
pub(crate) fn scalar(out: &mut Out, x: &Value) -> String {
    let p = match x {
        Value::String(s) => SqlParam::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlParam::Integer(i),
            None => SqlParam::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => SqlParam::Text(other.to_string()),
    };
    out.param(p)
}

/// The type test for a scalar operand's class.
fn class_test(x: &Value, ty: &str) -> String {
    match class(x) {
        Class::Number => format!("{ty} IN ('integer', 'real')"),
        _ => format!("{ty} = 'text'"),
    }
}

/// The deepest weighted nesting of the SQL: a subquery costs 9, a CASE 6, anything
/// else in parentheses 2 (measured: SQLite 3.40 overflows at 11 nested `EXISTS (SELECT
/// ... WHERE ... AND ...)`, 16 nested CASEs, 48 nested NOTs). Only this crate's own
/// text is scanned: values are in parameters, so parentheses in them do not count.
pub(crate) fn parser_stack_estimate(sql: &str) -> usize {
    let (mut stack, mut depth, mut deepest) = (Vec::new(), 0, 0);
    for (i, ch) in sql.char_indices() {
        match ch {
            '(' => {
                let rest = &sql[i + 1..];
                let weight = if rest.starts_with("SELECT") {
                    9
                } else if rest.starts_with("CASE") {
                    6
                } else {
                    2
                };
                stack.push(weight);
                depth += weight;
                deepest = deepest.max(depth);
            }
            ')' => depth -= stack.pop().unwrap_or(0),
            _ => {}
        }
    }
    deepest
}
