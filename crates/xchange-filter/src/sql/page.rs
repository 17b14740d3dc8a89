//! A [`Page`] as one SQL statement: the filter, MongoDB's sort, a keyset cursor and a
//! limit, for SQLite and PostgreSQL.
//!
//! Each sort field becomes a few columns computed per row: a rank for the value's type
//! in MongoDB's cross-type order (empty array 0, null and missing 1, numbers 2, strings
//! 3, objects 4, arrays 5, booleans 6) and the value itself, in a column of its type
//! (SQLite: one column, whose own ordering already puts numbers before text; PostgreSQL:
//! a `numeric` column and a `text` column ordered by bytes). The value is the smallest
//! (ascending) or largest (descending) of the candidates the path reaches, arrays standing
//! for their elements, as [`Sort::values`](crate::Sort::values) picks it. The statement
//! orders by those columns, then by id; the cursor is the same lexicographic comparison
//! against the last row's values, written out as `c1 > p1 OR (c1 = p1 AND c2 > p2) ...`
//! because the directions may differ from field to field.
//!
//! Not exact: arrays and objects that are themselves sort values (an array in an array,
//! an object) order by type only in SQL, ties broken by id; in memory they compare by
//! content. Scalars, and arrays of scalars, order exactly.

use serde_json::Value;

use super::compile::{Candidate, Compiler, Dialect, FROM, J, Out, WHERE, X};
use super::postgres::Postgres;
use super::sqlite::{Sqlite, scalar};
use super::{SqlFragment, SqlParam, quote_column};
use crate::compare::{Class, class};
use crate::{Filter, FilterError, Page, RowId, SortKey, SortValue};

/// The table a page is read from.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    /// The table, as `name` or `schema.name`.
    pub name: &'a str,
    /// The id column: the primary key, `INTEGER`/`bigint` or text.
    pub id: &'a str,
    /// The document column: JSON text (SQLite) or `jsonb` (PostgreSQL).
    pub doc: &'a str,
    /// Whether the ids are text, which PostgreSQL must then order by bytes.
    pub text_id: bool,
}

impl Page {
    /// The page as a SQLite statement selecting `(id, doc)` rows in order. See
    /// [`Filter::to_sqlite`] for the filter; the sort is exact except for arrays and
    /// objects that are sort values themselves (the `sql/page.rs` docs say how).
    pub fn to_sqlite(&self, filter: &Filter, table: &Table<'_>) -> Result<SqlFragment, FilterError> {
        statement::<Sqlite>(self, filter, table)
    }

    /// The page as a PostgreSQL statement selecting `(id, doc)` rows in order. See
    /// [`Filter::to_postgres`] for the filter; the sort is exact except for arrays and
    /// objects that are sort values themselves (the `sql/page.rs` docs say how).
    pub fn to_postgres(&self, filter: &Filter, table: &Table<'_>) -> Result<SqlFragment, FilterError> {
        statement::<Postgres>(self, filter, table)
    }
}

/// What a dialect adds for sorting.
pub(crate) trait SortDialect: Dialect {
    /// The value columns after the rank: name, value for ranks that do not use it, and
    /// what to write after the column to compare it (a collation).
    const COLUMNS: &'static [(&'static str, &'static str, &'static str)];
    /// Whether a sort key is one `LEFT JOIN LATERAL` (else one scalar subquery a column).
    const LATERAL: bool;
    /// What orders text ids by bytes.
    const TEXT_ID_COLLATE: &'static str;

    fn rank(c: Candidate<'_>) -> String;
    fn values(c: Candidate<'_>) -> Vec<String>;
    /// Whether an array candidate is empty (must not fail on anything else).
    fn is_empty_array(c: Candidate<'_>) -> String;
    /// Placeholders for a cursor's rank and values, cast as the columns are.
    fn cursor(out: &mut Out, rank: i64, v: Option<&Value>) -> Vec<String>;
    fn id(out: &mut Out, id: &RowId) -> String;
    fn limit(out: &mut Out, n: u32) -> String;
}

fn statement<D: SortDialect>(
    page: &Page,
    filter: &Filter,
    table: &Table<'_>,
) -> Result<SqlFragment, FilterError> {
    let name = quote_column(table.name, &[])?;
    let (id, doc) = (quote_column(table.id, &[])?, quote_column(table.doc, &[])?);
    if id.contains('.') || doc.contains('.') {
        return Err(FilterError::InvalidColumn { column: format!("{}.{}", table.id, table.doc) });
    }
    page.check_cursor()?;
    let keys = page.sort.keys();
    let mut c = Compiler::<D>::new();
    let root = format!("_t0.{doc}");
    let condition = c.expr(filter.expr(), &root)?;
    let mut items = vec![format!("_t0.{id} AS id"), format!("_t0.{doc} AS doc")];
    let (mut joins, mut order, mut columns) = (String::new(), Vec::new(), Vec::new());
    for (i, key) in keys.iter().enumerate() {
        let (key_items, join) = sort_key(&mut c, &root, key, i)?;
        items.extend(key_items);
        joins.push_str(&join);
        let dir = if descending(key) { "DESC" } else { "ASC" };
        let names =
            std::iter::once(("r", "")).chain(D::COLUMNS.iter().map(|(name, _, collate)| (*name, *collate)));
        for (name, collate) in names {
            let column = format!("q.{name}{i}{collate}");
            order.push(format!("{column} {dir}"));
            columns.push((column, !descending(key)));
        }
    }
    let id_collate = if table.text_id { D::TEXT_ID_COLLATE } else { "" };
    order.push(format!("q.id{id_collate} ASC"));
    columns.push((format!("q.id{id_collate}"), true));
    let after = match &page.after {
        Some(after) => {
            let mut params = Vec::new();
            for v in &after.values {
                params.extend(match v {
                    SortValue::EmptyArray => D::cursor(&mut c.out, 0, None),
                    SortValue::Value(v) => D::cursor(&mut c.out, rank(v), Some(v)),
                });
            }
            params.push(D::id(&mut c.out, &after.id));
            later_than(&columns, &params)
        }
        None => D::TRUE.to_owned(),
    };
    let mut sql = format!(
        "SELECT q.id, q.doc FROM (SELECT {} FROM {name} AS _t0{joins} WHERE {condition}) AS q WHERE {after} ORDER BY {}",
        items.join(", "),
        order.join(", ")
    );
    if let Some(n) = page.limit {
        sql.push_str(&format!(" LIMIT {}", D::limit(&mut c.out, n)));
    }
    D::check(&sql, c.out.params.len())?;
    Ok(SqlFragment { sql, params: c.out.params })
}

fn descending(key: &SortKey) -> bool {
    key.direction() == crate::Direction::Descending
}

/// The columns of sort key `i`: select items, and a join for dialects that use one.
fn sort_key<D: SortDialect>(
    c: &mut Compiler<D>,
    root: &str,
    key: &SortKey,
    i: usize,
) -> Result<(Vec<String>, String), FilterError> {
    let (ty, value) = D::reached(J);
    let whole = Candidate { ty: &ty, value: &value };
    let (from, ety, evalue) = D::elements(&mut c.out, &format!("{X} AND {ty} = 'array'"), &value);
    let element = Candidate { ty: &ety, value: &evalue };
    let row = |rank: String, values: Vec<String>| {
        let names = D::COLUMNS.iter().map(|(name, ..)| *name);
        let values = values.into_iter().zip(names).map(|(v, name)| format!("{v} AS {name}"));
        std::iter::once(format!("{rank} AS r")).chain(values).collect::<Vec<_>>().join(", ")
    };
    let fillers = D::COLUMNS.iter().map(|(_, filler, _)| (*filler).to_owned()).collect();
    // The candidates: a reached value that is not an array looked into; an empty array
    // looked into (which sorts first); the elements of a non-empty one.
    let candidates = format!(
        "SELECT {} FROM {FROM} WHERE {WHERE} AND NOT ({X} AND {ty} = 'array') \
         UNION ALL SELECT {} FROM {FROM} WHERE {WHERE} AND {X} AND {ty} = 'array' AND {} \
         UNION ALL SELECT {} FROM {FROM}, {from} WHERE {WHERE}",
        row(D::rank(whole), D::values(whole)),
        row("0".to_owned(), fillers),
        D::is_empty_array(whole),
        row(D::rank(element), D::values(element)),
    );
    let dir = if descending(key) { "DESC" } else { "ASC" };
    let columns = std::iter::once(("r", "1", "")).chain(D::COLUMNS.iter().copied());
    let order: Vec<String> =
        columns.clone().map(|(name, _, collate)| format!("{name}{collate} {dir}")).collect();
    let order = order.join(", ");
    // No candidate at all (`a.b` on `a: [1, 2]`) sorts as null.
    let (items, join) = if D::LATERAL {
        let k = c.out.alias("k");
        let items = columns.map(|(name, filler, _)| format!("coalesce({k}.{name}, {filler}) AS {name}{i}"));
        let join = format!(
            " LEFT JOIN LATERAL (SELECT * FROM ({candidates}) AS _c ORDER BY {order} LIMIT 1) {k} ON TRUE"
        );
        (items.collect::<Vec<_>>(), join)
    } else {
        let items = columns.map(|(name, filler, _)| {
            format!("coalesce((SELECT {name} FROM ({candidates}) ORDER BY {order} LIMIT 1), {filler}) AS {name}{i}")
        });
        (items.collect(), String::new())
    };
    let mut pieces: Vec<&str> = items.iter().map(String::as_str).collect();
    pieces.push(&join);
    let mut done = c.with_walk_all(&pieces, root, key.path())?;
    let join = done.pop().unwrap_or_default();
    Ok((done, join))
}

/// MongoDB's cross-type rank of a sort value (see the module docs).
fn rank(v: &Value) -> i64 {
    match class(v) {
        Class::Null => 1,
        Class::Number => 2,
        Class::String => 3,
        Class::Object => 4,
        Class::Array => 5,
        Class::Bool => 6,
    }
}

/// Whether the row's `columns` come after `params` in lexicographic order, each column
/// ascending (`true`) or descending.
fn later_than(columns: &[(String, bool)], params: &[String]) -> String {
    let mut terms = Vec::with_capacity(columns.len());
    for (j, (column, ascending)) in columns.iter().enumerate() {
        let op = if *ascending { ">" } else { "<" };
        let mut parts: Vec<String> =
            columns[..j].iter().zip(params).map(|((c, _), p)| format!("{c} = {p}")).collect();
        parts.push(format!("{column} {op} {}", params[j]));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    format!("({})", terms.join(" OR "))
}

impl SortDialect for Sqlite {
    // SQLite orders numbers before text, and neither value column ever mixes them
    // within a rank.
    const COLUMNS: &'static [(&'static str, &'static str, &'static str)] = &[("v", "0", "")];
    const LATERAL: bool = false;
    const TEXT_ID_COLLATE: &'static str = "";

    fn rank(c: Candidate<'_>) -> String {
        format!(
            "(CASE {} WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'object' THEN 4 \
             WHEN 'array' THEN 5 WHEN 'true' THEN 6 WHEN 'false' THEN 6 ELSE 1 END)",
            c.ty
        )
    }

    fn values(c: Candidate<'_>) -> Vec<String> {
        // `->> '$'` and `json_each.value` give true as 1 and false as 0.
        vec![format!(
            "(CASE WHEN {} IN ('integer', 'real', 'text', 'true', 'false') THEN {} ELSE 0 END)",
            c.ty, c.value
        )]
    }

    fn is_empty_array(c: Candidate<'_>) -> String {
        format!("(CASE WHEN {} = 'array' THEN json_array_length({}) = 0 ELSE 0 END)", c.ty, c.value)
    }

    fn cursor(out: &mut Out, rank: i64, v: Option<&Value>) -> Vec<String> {
        let r = out.param(SqlParam::Integer(rank));
        let v = match v {
            Some(x @ (Value::Number(_) | Value::String(_))) => scalar(out, x),
            Some(Value::Bool(b)) => out.param(SqlParam::Integer(i64::from(*b))),
            _ => out.param(SqlParam::Integer(0)),
        };
        vec![r, v]
    }

    fn id(out: &mut Out, id: &RowId) -> String {
        out.param(row_id(id))
    }

    fn limit(out: &mut Out, n: u32) -> String {
        out.param(SqlParam::Integer(n.into()))
    }
}

impl SortDialect for Postgres {
    const COLUMNS: &'static [(&'static str, &'static str, &'static str)] =
        &[("n", "0", ""), ("s", "''", " COLLATE \"C\"")];
    const LATERAL: bool = true;
    const TEXT_ID_COLLATE: &'static str = " COLLATE \"C\"";

    fn rank(c: Candidate<'_>) -> String {
        format!(
            "(CASE {} WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 \
             WHEN 'boolean' THEN 6 ELSE 1 END)",
            c.ty
        )
    }

    fn values(c: Candidate<'_>) -> Vec<String> {
        let Candidate { ty, value } = c;
        vec![
            format!(
                "(CASE {ty} WHEN 'number' THEN ({value})::numeric \
                 WHEN 'boolean' THEN (CASE WHEN {value} = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END)"
            ),
            format!("(CASE WHEN {ty} = 'string' THEN {value} #>> '{{}}' ELSE '' END)"),
        ]
    }

    fn is_empty_array(c: Candidate<'_>) -> String {
        format!("coalesce({} = '[]'::jsonb, FALSE)", c.value)
    }

    fn cursor(out: &mut Out, rank: i64, v: Option<&Value>) -> Vec<String> {
        let r = out.param(SqlParam::Integer(rank));
        let n = match v {
            Some(Value::Number(n)) => out.param(SqlParam::Text(n.to_string())),
            Some(Value::Bool(b)) => out.param(SqlParam::Text(u8::from(*b).to_string())),
            _ => out.param(SqlParam::Text("0".to_owned())),
        };
        let s = match v {
            Some(Value::String(s)) => out.param(SqlParam::Text(s.clone())),
            _ => out.param(SqlParam::Text(String::new())),
        };
        vec![format!("{r}::int"), format!("{n}::numeric"), format!("{s}::text")]
    }

    fn id(out: &mut Out, id: &RowId) -> String {
        let cast = if matches!(id, RowId::Int(_)) { "bigint" } else { "text" };
        format!("{}::{cast}", out.param(row_id(id)))
    }

    fn limit(out: &mut Out, n: u32) -> String {
        format!("{}::bigint", out.param(SqlParam::Integer(n.into())))
    }
}

fn row_id(id: &RowId) -> SqlParam {
    match id {
        RowId::Int(i) => SqlParam::Integer(*i),
        RowId::Text(s) => SqlParam::Text(s.clone()),
    }
}
