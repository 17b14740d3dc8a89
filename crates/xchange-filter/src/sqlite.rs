//! Compiling a filter to a SQLite JSON1 condition, with every value and every path in
//! bind parameters. What is translated is listed on [`Filter::to_sqlite`].
//!
//! The condition mirrors [`Filter::matches`](crate::Filter::matches), MongoDB's array
//! rules included. Each condition on a field is an `EXISTS` subquery whose FROM walks the
//! document one path segment at a time with `json_each` ([`Walk`]), yielding every value
//! the path reaches (SQL NULL for "missing") and whether an array there stands for its
//! elements; where MongoDB looks into arrays, a second `EXISTS` tries their elements.
//! Each candidate is tested through its JSON type (`json_type`, or `json_each.type`) and
//! its SQL value (`->> '$'`, or `json_each.value`), and the type is always tested first
//! (inside a CASE where a wrong type would be an error), so `{a: {$gt: 5}}` never
//! compares a string with a number. Every test yields 0 or 1, never NULL, so that `NOT`
//! is a negation.

use std::fmt::Write as _;

use serde_json::Value;

use crate::compare::Class;
use crate::path::Segment;
use crate::{CmpOp, Cond, ElemMatch, Expr, FieldPath, Filter, FilterError, TypeName};

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

/// Stand for the pieces of a field's walk (see [`Walk`]) until the walk is known to be
/// needed. No SQL this module writes contains them, and values never enter the SQL text.
const FROM: &str = "\u{1}from\u{1}";
const WHERE: &str = "\u{1}where\u{1}";
const J: &str = "\u{1}j\u{1}";
const X: &str = "\u{1}x\u{1}";

/// The places a field path reaches, as pieces of a flat query: `FROM {from} WHERE
/// {filter}` yields one row per place, where `{j}` is its JSON text (NULL when missing)
/// and `{x}` is 1 when an array there stands for its elements.
///
/// Each segment adds one `json_each` to the same FROM (table-valued functions may read
/// the columns of the ones before them), not a nested subquery: SQLite's parser gives up
/// at about fifteen nested subqueries. A value that is not an array is walked as the
/// one field of `{"w": value}`, so that one `json_each` serves both cases and the rows
/// of a wrapped value are told apart by their text key.
struct Walk {
    from: String,
    filter: String,
    j: String,
    x: String,
}

/// A SQL boolean expression and its bind parameters: `?1` is `params[0]`, and so on.
/// Numbered placeholders let one parameter appear several times.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlCondition {
    /// The expression, for a `WHERE` clause.
    pub sql: String,
    /// The values to bind, in placeholder order.
    pub params: Vec<SqlParam>,
}

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// An integer (JSON integers that fit 64 bits, and booleans as 0 or 1).
    Integer(i64),
    /// A float (JSON numbers with a fraction, and integers above `i64::MAX`).
    Real(f64),
    /// Text: strings, JSON paths, regex patterns.
    Text(String),
}

impl Filter {
    /// Compiles the filter to a SQLite condition on `column`, a JSON text column given as
    /// `name` or `table.name` (letters, digits, `_`). An unqualified column may not be
    /// named like a column of `json_each` (`key`, `value`, `type`, `atom`, `id`,
    /// `parent`, `fullkey`, `path`, `json`, `root`), which would capture it. Needs SQLite
    /// 3.38 or newer (`->`, `->>`). Values, field names and regex patterns travel only
    /// as bind parameters (`?1`, `?2`, ...); the column is checked and double-quoted.
    ///
    /// Translated, with the same answers as [`Filter::matches`]: `$and`, `$or`, `$nor`,
    /// `$not`; `$eq` (and implicit equality), `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`,
    /// `$nin` and `$all` with numbers, strings, booleans and null; `$exists`, `$type`,
    /// `$size`, `$elemMatch` (both forms), `$all` of `$elemMatch`; dotted paths with
    /// numeric segments through arrays; `$regex`, through SQLite's `REGEXP` operator,
    /// which calls an application-defined `regexp(pattern, text)` function (sqlx:
    /// `SqliteConnectOptions::with_regexp`; rusqlite: register one built on the `regex`
    /// crate), the `$options` travelling as an inline `(?imsx)` prefix of the pattern.
    ///
    /// Refused with [`FilterError::UnsupportedInSql`]: equality, `$in`, `$nin`, `$all`
    /// and ordering with an array or object operand (`{tags: ["a", "b"]}`); field names
    /// with `"`, `\` or control characters (SQLite matches path labels against the raw,
    /// escaped key text, so such keys cannot be reached; store documents as serde_json
    /// writes them); a path of more than about 30 segments (SQLite joins at most 64
    /// tables); more than 32,766 bind parameters; and filters nested too deeply for the
    /// 100-entry parser stack of older SQLite builds (a conservative estimate: ordinary
    /// filters stay far below it).
    ///
    /// Known numeric difference: SQLite reads a JSON integer above `i64::MAX` as a float.
    pub fn to_sqlite(&self, column: &str) -> Result<SqlCondition, FilterError> {
        let root = quote_column(column)?;
        let mut c = Compiler { params: Vec::new(), aliases: 0 };
        let sql = c.expr(self.expr(), &root)?;
        if c.params.len() > MAX_PARAMS {
            return Err(unsupported("", "", "the condition needs more than 32766 bind parameters"));
        }
        if parser_stack_estimate(&sql) > PARSER_BUDGET {
            return Err(unsupported("", "", "the filter nests too deeply for SQLite's parser"));
        }
        Ok(SqlCondition { sql, params: c.params })
    }
}

struct Compiler {
    params: Vec<SqlParam>,
    aliases: usize,
}

/// One candidate value: SQL expressions for its JSON type (`'missing'` when absent,
/// never NULL) and its SQL value (JSON text for objects and arrays).
struct Candidate<'s> {
    ty: &'s str,
    value: &'s str,
}

impl Compiler {
    fn param(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        format!("?{}", self.params.len())
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    /// `root` is a SQL expression holding the document as JSON text.
    fn expr(&mut self, e: &Expr, root: &str) -> Result<String, FilterError> {
        match e {
            Expr::And(items) => self.join(items, root, " AND ", "1"),
            Expr::Or(items) => self.join(items, root, " OR ", "0"),
            Expr::Nor(items) => Ok(format!("(NOT {})", self.join(items, root, " OR ", "0")?)),
            Expr::Field { path, conds } => {
                // The walk is written in after the conditions, and only if they use it:
                // `{$all: []}` does not, and a parameter that no placeholder names makes
                // SQLite refuse the whole statement.
                let parts =
                    conds.iter().map(|c| self.on_path(c, path.as_str())).collect::<Result<Vec<_>, _>>()?;
                let sql =
                    if parts.len() == 1 { parts.concat() } else { format!("({})", parts.join(" AND ")) };
                if !sql.contains(FROM) {
                    return Ok(sql);
                }
                let walk = self.walk(root, path)?;
                Ok(sql
                    .replace(FROM, &walk.from)
                    .replace(WHERE, &walk.filter)
                    .replace(J, &walk.j)
                    .replace(X, &walk.x))
            }
        }
    }

    fn join(&mut self, items: &[Expr], root: &str, op: &str, empty: &str) -> Result<String, FilterError> {
        if items.is_empty() {
            return Ok(empty.to_owned());
        }
        let parts = items.iter().map(|i| self.expr(i, root)).collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(op)))
    }

    /// `EXISTS` a reached value for which `test` holds.
    fn any_reached(
        &mut self,
        test: impl FnOnce(&mut Self, &Candidate<'_>) -> Result<String, FilterError>,
    ) -> Result<String, FilterError> {
        let ty = format!("coalesce(json_type({J}), 'missing')");
        let value = format!("({J} ->> '$')");
        let t = test(self, &Candidate { ty: &ty, value: &value })?;
        Ok(format!("EXISTS (SELECT 1 FROM {FROM} WHERE {WHERE} AND {t})"))
    }

    /// The walk of `path` from `root` (JSON text), as `FieldPath::resolve` does it.
    fn walk(&mut self, root: &str, path: &FieldPath) -> Result<Walk, FilterError> {
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
            let label = self.label(segment, path.as_str())?;
            let e = self.alias("e");
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
                    let b = self.alias("b");
                    from.push(format!("json_each('[0, 1]') {b}"));
                    let at = self.param(SqlParam::Text(format!("$[{index}]")));
                    let position = self.param(SqlParam::Integer(i64::try_from(index).unwrap_or(i64::MAX)));
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

    /// The JSON path of one object key, as a parameter.
    fn label(&mut self, segment: &Segment, loc: &str) -> Result<String, FilterError> {
        let name = segment.name();
        if name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(unsupported(
                "",
                loc,
                "SQLite cannot reach a key that contains a double quote, a backslash or a control character",
            ));
        }
        Ok(self.param(SqlParam::Text(format!("$.\"{name}\""))))
    }

    /// `cond` over the reached values of a field (MongoDB's path semantics).
    fn on_path(&mut self, cond: &Cond, loc: &str) -> Result<String, FilterError> {
        match cond {
            Cond::Ne(x) => {
                let eq = self.expanded(&Cond::Eq(x.clone()), loc).map_err(|e| renamed(e, "$ne"))?;
                Ok(format!("(NOT {eq})"))
            }
            Cond::Nin(xs) => {
                let is_in = self.expanded(&Cond::In(xs.clone()), loc).map_err(|e| renamed(e, "$nin"))?;
                Ok(format!("(NOT {is_in})"))
            }
            Cond::Not(conds) => {
                let parts = conds.iter().map(|c| self.on_path(c, loc)).collect::<Result<Vec<_>, _>>()?;
                Ok(format!("(NOT ({}))", parts.join(" AND ")))
            }
            Cond::Exists(wanted) => {
                let any = self.any_reached(|_, c| Ok(format!("{} <> 'missing'", c.ty)))?;
                Ok(if *wanted { any } else { format!("(NOT {any})") })
            }
            Cond::Size(_) => self.any_reached(|this, c| this.single(cond, c, loc)),
            Cond::ElemMatch(em) => self.elem_match_on_path(em, loc),
            Cond::All(xs) if xs.is_empty() => Ok("0".to_owned()),
            Cond::All(xs) => {
                let parts = xs
                    .iter()
                    .map(|x| self.expanded(&Cond::Eq(x.clone()), loc).map_err(|e| renamed(e, "$all")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!("({})", parts.join(" AND ")))
            }
            Cond::AllElemMatch(ems) if ems.is_empty() => Ok("0".to_owned()),
            Cond::AllElemMatch(ems) => {
                let mut parts = Vec::with_capacity(ems.len());
                for em in ems {
                    parts.push(self.elem_match_on_path(em, loc)?);
                }
                Ok(format!("({})", parts.join(" AND ")))
            }
            Cond::Eq(_) | Cond::Cmp(..) | Cond::In(_) | Cond::Type(_) | Cond::Regex(_) => {
                self.expanded(cond, loc)
            }
        }
    }

    /// `$elemMatch` on the reached arrays, in the walk's own subquery: one nesting level
    /// less than [`Self::elem_match`] costs, which counts against SQLite's parser stack.
    fn elem_match_on_path(&mut self, em: &ElemMatch, loc: &str) -> Result<String, FilterError> {
        let g = self.alias("g");
        let inner = self.elem_test(em, &g, loc)?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM {FROM}, json_each(CASE WHEN json_type({J}) = 'array' THEN {J} ELSE '[]' END) {g} \
             WHERE {WHERE} AND {inner})"
        ))
    }

    /// What an element (alias `e` of a `json_each`) must satisfy for `$elemMatch`.
    fn elem_test(&mut self, em: &ElemMatch, e: &str, loc: &str) -> Result<String, FilterError> {
        Ok(match em {
            ElemMatch::Doc(expr) => {
                let root = format!("(CASE WHEN {e}.type = 'object' THEN {e}.value END)");
                format!("{e}.type = 'object' AND {}", self.expr(expr, &root)?)
            }
            ElemMatch::Value(conds) => {
                let (ty, value) = (format!("{e}.type"), format!("{e}.value"));
                let parts = conds
                    .iter()
                    .map(|x| self.single(x, &Candidate { ty: &ty, value: &value }, loc))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.join(" AND ")
            }
        })
    }

    /// Whether `cond` holds for a reached value, or for an element of a reached array
    /// that may be looked into.
    fn expanded(&mut self, cond: &Cond, loc: &str) -> Result<String, FilterError> {
        let whole_ty = format!("coalesce(json_type({J}), 'missing')");
        let whole_value = format!("({J} ->> '$')");
        let whole = self.single(cond, &Candidate { ty: &whole_ty, value: &whole_value }, loc)?;
        let f = self.alias("f");
        let (element_ty, element_value) = (format!("{f}.type"), format!("{f}.value"));
        let element = self.single(cond, &Candidate { ty: &element_ty, value: &element_value }, loc)?;
        Ok(format!(
            "(EXISTS (SELECT 1 FROM {FROM} WHERE {WHERE} AND {whole}) OR EXISTS (SELECT 1 FROM {FROM}, \
             json_each(CASE WHEN {X} = 1 AND json_type({J}) = 'array' THEN {J} ELSE '[]' END) {f} \
             WHERE {WHERE} AND {element}))"
        ))
    }

    /// `cond` on one candidate as it is (MongoDB's `matchesSingleElement`). Always 0 or
    /// 1, never NULL, so that `NOT` stays a negation.
    fn single(&mut self, cond: &Cond, c: &Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let Candidate { ty, value } = *c;
        Ok(match cond {
            Cond::Eq(x) => self.eq(x, c, "$eq", loc)?,
            Cond::Ne(x) => format!("(NOT {})", self.eq(x, c, "$ne", loc)?),
            Cond::In(xs) => self.is_in(xs, c, "$in", loc)?,
            Cond::Nin(xs) => format!("(NOT {})", self.is_in(xs, c, "$nin", loc)?),
            Cond::All(xs) if xs.is_empty() => "0".to_owned(),
            Cond::All(xs) => {
                let parts = xs.iter().map(|x| self.eq(x, c, "$all", loc)).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" AND "))
            }
            Cond::Cmp(op, x) => self.cmp(*op, x, c, loc)?,
            Cond::Exists(true) => format!("({ty} <> 'missing')"),
            Cond::Exists(false) => format!("({ty} = 'missing')"),
            Cond::Type(types) => {
                let parts: Vec<String> = types.iter().map(|t| type_test(*t, c)).collect();
                format!("({})", parts.join(" OR "))
            }
            Cond::Regex(r) => {
                let o = r.options();
                let mut flags = String::new();
                for (on, letter) in
                    [(o.case_insensitive, 'i'), (o.multi_line, 'm'), (o.dot_all, 's'), (o.extended, 'x')]
                {
                    if on {
                        flags.push(letter);
                    }
                }
                let pattern = if flags.is_empty() {
                    r.pattern().to_owned()
                } else {
                    format!("(?{flags}){}", r.pattern())
                };
                let p = self.param(SqlParam::Text(pattern));
                format!("(CASE WHEN {ty} = 'text' THEN coalesce({value} REGEXP {p}, 0) ELSE 0 END)")
            }
            Cond::Size(n) => {
                let p = self.param(SqlParam::Integer(i64::try_from(*n).unwrap_or(i64::MAX)));
                format!("(CASE WHEN {ty} = 'array' THEN json_array_length({value}) = {p} ELSE 0 END)")
            }
            Cond::ElemMatch(em) => self.elem_match(em, c, loc)?,
            Cond::AllElemMatch(ems) if ems.is_empty() => "0".to_owned(),
            Cond::AllElemMatch(ems) => {
                let parts =
                    ems.iter().map(|em| self.elem_match(em, c, loc)).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" AND "))
            }
            Cond::Not(conds) => {
                let parts = conds.iter().map(|x| self.single(x, c, loc)).collect::<Result<Vec<_>, _>>()?;
                format!("(NOT ({}))", parts.join(" AND "))
            }
        })
    }

    fn elem_match(&mut self, em: &ElemMatch, c: &Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let e = self.alias("e");
        let inner = self.elem_test(em, &e, loc)?;
        // SQLite does not promise to test the type first, and `json_each` of a plain
        // string is an error, hence the CASE.
        let (ty, value) = (c.ty, c.value);
        Ok(format!(
            "({ty} = 'array' AND EXISTS (SELECT 1 FROM json_each(CASE WHEN {ty} = 'array' THEN {value} ELSE '[]' END) {e} \
             WHERE {inner}))"
        ))
    }

    fn eq(&mut self, x: &Value, c: &Candidate<'_>, op: &str, loc: &str) -> Result<String, FilterError> {
        let ty = c.ty;
        Ok(match x {
            Value::Null => format!("({ty} IN ('missing', 'null'))"),
            Value::Bool(b) => format!("({ty} = '{b}')"),
            Value::Number(_) | Value::String(_) => {
                let p = self.scalar(x);
                format!("({} AND {} = {p})", class_test(x, ty), c.value)
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(unsupported(
                    op,
                    loc,
                    "comparing with an array or an object is not compiled to SQL yet",
                ));
            }
        })
    }

    fn is_in(&mut self, xs: &[Value], c: &Candidate<'_>, op: &str, loc: &str) -> Result<String, FilterError> {
        if xs.is_empty() {
            return Ok("0".to_owned());
        }
        let (mut numbers, mut strings, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for x in xs {
            match x {
                Value::Number(_) => numbers.push(self.scalar(x)),
                Value::String(_) => strings.push(self.scalar(x)),
                _ => rest.push(self.eq(x, c, op, loc)?),
            }
        }
        if !numbers.is_empty() {
            rest.push(format!(
                "({} IN ('integer', 'real') AND {} IN ({}))",
                c.ty,
                c.value,
                numbers.join(", ")
            ));
        }
        if !strings.is_empty() {
            rest.push(format!("({} = 'text' AND {} IN ({}))", c.ty, c.value, strings.join(", ")));
        }
        Ok(format!("({})", rest.join(" OR ")))
    }

    fn cmp(&mut self, op: CmpOp, x: &Value, c: &Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let sql_op = match op {
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        };
        Ok(match x {
            Value::Null if matches!(op, CmpOp::Gte | CmpOp::Lte) => {
                format!("({} IN ('missing', 'null'))", c.ty)
            }
            Value::Null => "0".to_owned(),
            // `->> '$'` and `json_each.value` give true as 1 and false as 0.
            Value::Bool(b) => {
                let p = self.param(SqlParam::Integer(i64::from(*b)));
                format!("({} IN ('true', 'false') AND {} {sql_op} {p})", c.ty, c.value)
            }
            Value::Number(_) | Value::String(_) => {
                let p = self.scalar(x);
                format!("({} AND {} {sql_op} {p})", class_test(x, c.ty), c.value)
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(unsupported(
                    op.as_str(),
                    loc,
                    "comparing with an array or an object is not compiled to SQL yet",
                ));
            }
        })
    }

    /// A number or string as a parameter.
    fn scalar(&mut self, x: &Value) -> String {
        let p = match x {
            Value::String(s) => SqlParam::Text(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => SqlParam::Integer(i),
                None => SqlParam::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => SqlParam::Text(other.to_string()),
        };
        self.param(p)
    }
}

/// The deepest weighted nesting of the SQL: a subquery costs 9, a CASE 6, anything
/// else in parentheses 2 (measured: SQLite 3.40 overflows at 11 nested `EXISTS (SELECT
/// ... WHERE ... AND ...)`, 16 nested CASEs, 48 nested NOTs). Only this module's own
/// text is scanned: values are in parameters, so parentheses in them do not count.
fn parser_stack_estimate(sql: &str) -> usize {
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

/// The type test for a scalar operand's class.
fn class_test(x: &Value, ty: &str) -> String {
    match crate::compare::class(x) {
        Class::Number => format!("{ty} IN ('integer', 'real')"),
        _ => format!("{ty} = 'text'"),
    }
}

fn type_test(t: TypeName, c: &Candidate<'_>) -> String {
    let Candidate { ty, value } = *c;
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

/// Validates `name` or `table.name` and double-quotes each part.
fn quote_column(column: &str) -> Result<String, FilterError> {
    const CAPTURED: &[&str] =
        &["key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json", "root", "j", "x", "b"];
    let invalid = || FilterError::InvalidColumn { column: column.to_owned() };
    let parts: Vec<&str> = column.split('.').collect();
    let ident = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(|p| ident(p)) {
        return Err(invalid());
    }
    if parts.len() == 1 && CAPTURED.contains(&parts[0].to_ascii_lowercase().as_str()) {
        return Err(invalid());
    }
    let mut quoted = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            quoted.push('.');
        }
        let _ = write!(quoted, "\"{p}\"");
    }
    Ok(quoted)
}

/// The error of a condition compiled through another one (`$ne` through `$eq`) names
/// the operator the user wrote.
fn renamed(e: FilterError, op: &str) -> FilterError {
    match e {
        FilterError::UnsupportedInSql { path, reason, .. } => {
            FilterError::UnsupportedInSql { op: op.to_owned(), path, reason }
        }
        other => other,
    }
}

fn unsupported(op: &str, loc: &str, reason: &'static str) -> FilterError {
    FilterError::UnsupportedInSql { op: op.to_owned(), path: loc.to_owned(), reason }
}
