//! MongoDB's query semantics as SQL, over the primitives of a [`Dialect`].
//!
//! The structure mirrors `eval.rs`: [`Compiler::on_path`] is `on_path`, and
//! [`Compiler::single`] is `single`, so that a reader can check one against the other.

use std::marker::PhantomData;

use serde_json::Value;

use super::{SqlFragment, SqlParam, unsupported};
use crate::{CmpOp, Cond, ElemMatch, Expr, FieldPath, FilterError, RegexCond, TypeName};

/// Stand for the pieces of a field's walk until the walk is known to be needed. No SQL
/// this crate writes contains them, and values never enter the SQL text.
pub(crate) const FROM: &str = "\u{1}from\u{1}";
pub(crate) const WHERE: &str = "\u{1}where\u{1}";
pub(crate) const J: &str = "\u{1}j\u{1}";
pub(crate) const X: &str = "\u{1}x\u{1}";

/// The places a field path reaches, as pieces of a flat query: `FROM {from} WHERE
/// {filter}` yields one row per place, where `{j}` is its JSON value (SQL NULL when the
/// field is missing there) and `{x}` is a condition that holds when an array there stands
/// for its elements too (MongoDB does not look into an array the path picked by index).
pub(crate) struct Walk {
    pub(crate) from: String,
    pub(crate) filter: String,
    pub(crate) j: String,
    pub(crate) x: String,
}

/// One candidate value: SQL expressions for its JSON type (the dialect's type names,
/// with `'array'`, `'object'`, `'null'` in common, and `'missing'` when absent: never
/// NULL) and for its value.
#[derive(Clone, Copy)]
pub(crate) struct Candidate<'s> {
    pub(crate) ty: &'s str,
    pub(crate) value: &'s str,
}

/// The parameters and aliases of one statement.
pub(crate) struct Out {
    pub(crate) params: Vec<SqlParam>,
    aliases: usize,
    dollar: bool,
}

impl Out {
    pub(crate) fn new(dollar: bool) -> Self {
        Self { params: Vec::new(), aliases: 0, dollar }
    }

    /// Adds a parameter and returns its placeholder.
    pub(crate) fn param(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        let n = self.params.len();
        if self.dollar { format!("${n}") } else { format!("?{n}") }
    }

    /// A fresh table alias. The leading `_` keeps them apart from the user's column names,
    /// which `quote_column` refuses in that shape.
    pub(crate) fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("_{prefix}{}", self.aliases)
    }
}

/// What differs between SQLite and PostgreSQL.
pub(crate) trait Dialect {
    const TRUE: &'static str;
    const FALSE: &'static str;
    /// Whether placeholders are `$N` (else `?N`).
    const DOLLAR: bool;

    /// The walk of `path` from `root`, a document-valued SQL expression.
    fn walk(out: &mut Out, root: &str, path: &FieldPath) -> Result<Walk, FilterError>;
    /// The type and value expressions of the place `j` of a walk.
    fn reached(j: &str) -> (String, String);
    /// A FROM item yielding the elements of `array` when `guard` holds and nothing
    /// otherwise, and the type and value expressions of an element.
    fn elements(out: &mut Out, guard: &str, array: &str) -> (String, String, String);
    /// The document an element that is an object stands for, as a root for a walk.
    fn element_root(c: Candidate<'_>) -> String;
    /// Equality with a non-null value.
    fn eq(out: &mut Out, x: &Value, c: Candidate<'_>, op: &str, loc: &str) -> Result<String, FilterError>;
    /// Equality with one of the non-null values (at least one).
    fn in_values(
        out: &mut Out,
        xs: &[&Value],
        c: Candidate<'_>,
        op: &str,
        loc: &str,
    ) -> Result<String, FilterError>;
    /// Ordering against a boolean, a number or a string, with `sql_op` one of `<`,
    /// `<=`, `>`, `>=`: only values of the same class hold.
    fn cmp_scalar(out: &mut Out, sql_op: &str, x: &Value, c: Candidate<'_>) -> String;
    /// Whether an array or an object is non-empty (only asked of arrays and objects, but
    /// must not fail on anything else).
    fn non_empty(c: Candidate<'_>) -> String;
    fn type_test(t: TypeName, c: Candidate<'_>) -> String;
    fn regex(out: &mut Out, r: &RegexCond, c: Candidate<'_>, loc: &str) -> Result<String, FilterError>;
    fn size(out: &mut Out, n: usize, c: Candidate<'_>) -> String;
    /// Refuses SQL that the database would not run (too many parameters, too deep).
    fn check(sql: &str, params: usize) -> Result<(), FilterError>;
}

/// The compiler for one dialect; `out` collects parameters across several calls, so
/// that a statement can hold a filter and more.
pub(crate) struct Compiler<D> {
    pub(crate) out: Out,
    dialect: PhantomData<D>,
}

impl<D: Dialect> Compiler<D> {
    pub(crate) fn new() -> Self {
        Self { out: Out::new(D::DOLLAR), dialect: PhantomData }
    }

    /// Compiles a whole filter on the document column `root` (already quoted).
    pub(crate) fn condition(mut self, e: &Expr, root: &str) -> Result<SqlFragment, FilterError> {
        let sql = self.expr(e, root)?;
        D::check(&sql, self.out.params.len())?;
        Ok(SqlFragment { sql, params: self.out.params })
    }

    /// `root` is a SQL expression holding the document.
    pub(crate) fn expr(&mut self, e: &Expr, root: &str) -> Result<String, FilterError> {
        match e {
            Expr::And(items) => self.join(items, root, " AND ", D::TRUE),
            Expr::Or(items) => self.join(items, root, " OR ", D::FALSE),
            Expr::Nor(items) => Ok(format!("(NOT {})", self.join(items, root, " OR ", D::FALSE)?)),
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
                Ok(self.with_walk(&sql, root, path)?)
            }
        }
    }

    /// Writes the walk of `path` into SQL that uses the markers.
    pub(crate) fn with_walk(
        &mut self,
        sql: &str,
        root: &str,
        path: &FieldPath,
    ) -> Result<String, FilterError> {
        Ok(self.with_walk_all(&[sql], root, path)?.concat())
    }

    /// Writes one walk of `path` into several pieces of SQL that use the markers.
    pub(crate) fn with_walk_all(
        &mut self,
        sqls: &[&str],
        root: &str,
        path: &FieldPath,
    ) -> Result<Vec<String>, FilterError> {
        let walk = D::walk(&mut self.out, root, path)?;
        Ok(sqls
            .iter()
            .map(|sql| {
                sql.replace(FROM, &walk.from)
                    .replace(WHERE, &walk.filter)
                    .replace(J, &walk.j)
                    .replace(X, &walk.x)
            })
            .collect())
    }

    fn join(&mut self, items: &[Expr], root: &str, op: &str, empty: &str) -> Result<String, FilterError> {
        if items.is_empty() {
            return Ok(empty.to_owned());
        }
        let parts = items.iter().map(|i| self.expr(i, root)).collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(op)))
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
                let (ty, _) = D::reached(J);
                let any = format!("EXISTS (SELECT 1 FROM {FROM} WHERE {WHERE} AND {ty} <> 'missing')");
                Ok(if *wanted { any } else { format!("(NOT {any})") })
            }
            Cond::Size(_) => {
                let (ty, value) = D::reached(J);
                let t = self.single(cond, Candidate { ty: &ty, value: &value }, loc)?;
                Ok(format!("EXISTS (SELECT 1 FROM {FROM} WHERE {WHERE} AND {t})"))
            }
            Cond::ElemMatch(em) => self.elem_match_on_path(em, loc),
            Cond::All(xs) if xs.is_empty() => Ok(D::FALSE.to_owned()),
            Cond::All(xs) => {
                let parts = xs
                    .iter()
                    .map(|x| self.expanded(&Cond::Eq(x.clone()), loc).map_err(|e| renamed(e, "$all")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!("({})", parts.join(" AND ")))
            }
            Cond::AllElemMatch(ems) if ems.is_empty() => Ok(D::FALSE.to_owned()),
            Cond::AllElemMatch(ems) => {
                let parts =
                    ems.iter().map(|em| self.elem_match_on_path(em, loc)).collect::<Result<Vec<_>, _>>()?;
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
        let (ty, value) = D::reached(J);
        let (from, ety, evalue) = D::elements(&mut self.out, &format!("{ty} = 'array'"), &value);
        let inner = self.elem_test(em, Candidate { ty: &ety, value: &evalue }, loc)?;
        Ok(format!("EXISTS (SELECT 1 FROM {FROM}, {from} WHERE {WHERE} AND {inner})"))
    }

    /// What an element must satisfy for `$elemMatch`.
    fn elem_test(&mut self, em: &ElemMatch, e: Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        Ok(match em {
            ElemMatch::Doc(expr) => {
                format!("{} = 'object' AND {}", e.ty, self.expr(expr, &D::element_root(e))?)
            }
            ElemMatch::Value(conds) => {
                let parts = conds.iter().map(|x| self.single(x, e, loc)).collect::<Result<Vec<_>, _>>()?;
                parts.join(" AND ")
            }
        })
    }

    /// Whether `cond` holds for a reached value, or for an element of a reached array
    /// that may be looked into.
    fn expanded(&mut self, cond: &Cond, loc: &str) -> Result<String, FilterError> {
        let (ty, value) = D::reached(J);
        let whole = self.single(cond, Candidate { ty: &ty, value: &value }, loc)?;
        let (from, ety, evalue) = D::elements(&mut self.out, &format!("{X} AND {ty} = 'array'"), &value);
        let element = self.single(cond, Candidate { ty: &ety, value: &evalue }, loc)?;
        Ok(format!(
            "(EXISTS (SELECT 1 FROM {FROM} WHERE {WHERE} AND {whole}) OR EXISTS (SELECT 1 FROM {FROM}, {from} \
             WHERE {WHERE} AND {element}))"
        ))
    }

    /// `cond` on one candidate as it is (MongoDB's `matchesSingleElement`).
    fn single(&mut self, cond: &Cond, c: Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let ty = c.ty;
        Ok(match cond {
            Cond::Eq(x) => self.eq(x, c, "$eq", loc)?,
            Cond::Ne(x) => format!("(NOT {})", self.eq(x, c, "$ne", loc)?),
            Cond::In(xs) => self.is_in(xs, c, "$in", loc)?,
            Cond::Nin(xs) => format!("(NOT {})", self.is_in(xs, c, "$nin", loc)?),
            Cond::All(xs) if xs.is_empty() => D::FALSE.to_owned(),
            Cond::All(xs) => {
                let parts = xs.iter().map(|x| self.eq(x, c, "$all", loc)).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" AND "))
            }
            Cond::Cmp(op, x) => self.cmp(*op, x, c, loc)?,
            Cond::Exists(true) => format!("({ty} <> 'missing')"),
            Cond::Exists(false) => format!("({ty} = 'missing')"),
            Cond::Type(types) => {
                let parts: Vec<String> = types.iter().map(|t| D::type_test(*t, c)).collect();
                format!("({})", parts.join(" OR "))
            }
            Cond::Regex(r) => D::regex(&mut self.out, r, c, loc)?,
            Cond::Size(n) => D::size(&mut self.out, *n, c),
            Cond::ElemMatch(em) => self.elem_match(em, c, loc)?,
            Cond::AllElemMatch(ems) if ems.is_empty() => D::FALSE.to_owned(),
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

    fn elem_match(&mut self, em: &ElemMatch, c: Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let (from, ty, value) = D::elements(&mut self.out, &format!("{} = 'array'", c.ty), c.value);
        let inner = self.elem_test(em, Candidate { ty: &ty, value: &value }, loc)?;
        Ok(format!("({} = 'array' AND EXISTS (SELECT 1 FROM {from} WHERE {inner}))", c.ty))
    }

    /// Equality, with `null` standing for missing too.
    fn eq(&mut self, x: &Value, c: Candidate<'_>, op: &str, loc: &str) -> Result<String, FilterError> {
        match x {
            Value::Null => Ok(format!("({} IN ('missing', 'null'))", c.ty)),
            _ => D::eq(&mut self.out, x, c, op, loc),
        }
    }

    fn is_in(&mut self, xs: &[Value], c: Candidate<'_>, op: &str, loc: &str) -> Result<String, FilterError> {
        let mut parts = Vec::new();
        if xs.iter().any(Value::is_null) {
            parts.push(self.eq(&Value::Null, c, op, loc)?);
        }
        let values: Vec<&Value> = xs.iter().filter(|x| !x.is_null()).collect();
        if !values.is_empty() {
            parts.push(D::in_values(&mut self.out, &values, c, op, loc)?);
        }
        Ok(if parts.is_empty() { D::FALSE.to_owned() } else { format!("({})", parts.join(" OR ")) })
    }

    /// `$gt`-style operators hold only within a type class. `{$gte: null}` and `{$lte:
    /// null}` are MongoDB's other spellings of `{$eq: null}`. Arrays and objects are
    /// compiled only against the empty ones, which every array (object) is at least.
    fn cmp(&mut self, op: CmpOp, x: &Value, c: Candidate<'_>, loc: &str) -> Result<String, FilterError> {
        let ty = c.ty;
        let sql_op = match op {
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        };
        let container = match x {
            Value::Null if matches!(op, CmpOp::Gte | CmpOp::Lte) => {
                return Ok(format!("({ty} IN ('missing', 'null'))"));
            }
            Value::Null => return Ok(D::FALSE.to_owned()),
            Value::Array(items) if items.is_empty() => "array",
            Value::Object(map) if map.is_empty() => "object",
            Value::Array(_) | Value::Object(_) => {
                return Err(unsupported(
                    op.as_str(),
                    loc,
                    "ordering against a non-empty array or object is not compiled to SQL",
                ));
            }
            _ => return Ok(D::cmp_scalar(&mut self.out, sql_op, x, c)),
        };
        let non_empty = D::non_empty(c);
        Ok(match op {
            CmpOp::Gt => format!("({ty} = '{container}' AND {non_empty})"),
            CmpOp::Gte => format!("({ty} = '{container}')"),
            CmpOp::Lt => D::FALSE.to_owned(),
            CmpOp::Lte => format!("({ty} = '{container}' AND NOT {non_empty})"),
        })
    }
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
