//! Pages: the order of [`Page::select`] in memory, and the SQL statements of both
//! dialects against it, read whole and page by page through cursors.

use proptest::prelude::*;
use serde_json::{Value, json};
use xchange_filter::{Cursor, Filter, FilterError, Page, RowId, Sort, SortValue, Table};

use crate::arb::{number, parse, property};
use crate::db::{Dbs, TABLE, with_dbs};

const T: Table<'static> = Table { name: TABLE, id: "id", doc: "doc", text_id: false };

/// The ids of a page in memory; document `i` has id `i`.
fn in_memory(page: &Page, filter: &Filter, docs: &[Value]) -> Vec<i64> {
    let rows: Vec<(RowId, Value)> = (0..).zip(docs).map(|(i, d)| (RowId::Int(i), d.clone())).collect();
    let picked = page.select(filter, &rows, |(id, doc)| (id, doc)).expect("a valid page");
    picked.iter().map(|(id, _)| if let RowId::Int(i) = id { *i } else { unreachable!() }).collect()
}

/// Reads every page of `limit` rows through cursors, with `run` executing a page.
fn page_by_page(sort: &Sort, docs: &[Value], limit: u32, mut run: impl FnMut(&Page) -> Vec<i64>) -> Vec<i64> {
    let mut page = Page { sort: sort.clone(), after: None, limit: Some(limit) };
    let mut all = Vec::new();
    loop {
        let ids = run(&page);
        let Some(&last) = ids.last() else { return all };
        all.extend(&ids);
        assert!(all.len() <= docs.len(), "pages repeat rows: {all:?}");
        let doc = &docs[usize::try_from(last).expect("an index")];
        page.after = Some(Cursor::after(sort, RowId::Int(last), doc));
    }
}

fn sort(v: Value) -> Sort {
    Sort::parse(&v).expect("a valid sort")
}

#[test]
fn order_is_the_sort_then_the_id() {
    let docs = vec![
        json!({"a": 2}),
        json!({"a": [1, 5]}),
        json!({"a": "x"}),
        json!({}),
        json!({"a": []}),
        json!({"a": 2.0}),
        json!({"a": null}),
    ];
    let all = Filter::parse(&json!({})).unwrap();
    let up = Page { sort: sort(json!({"a": 1})), ..Page::default() };
    assert_eq!(in_memory(&up, &all, &docs), [4, 3, 6, 1, 0, 5, 2]);
    let down = Page { sort: sort(json!({"a": -1})), limit: Some(3), ..Page::default() };
    assert_eq!(in_memory(&down, &all, &docs), [2, 1, 0]);
    let after = Page { after: Some(Cursor::after(&down.sort, RowId::Int(1), &docs[1])), ..down.clone() };
    assert_eq!(in_memory(&after, &all, &docs), [0, 5, 3]);
    // A cursor of another sort is refused rather than misread.
    let wrong = Page { after: Some(Cursor { values: vec![], id: RowId::Int(0) }), ..up };
    let rows: Vec<(RowId, Value)> = vec![];
    assert!(matches!(wrong.select(&all, &rows, |(i, d)| (i, d)), Err(FilterError::InvalidSort { .. })));
    assert!(matches!(wrong.to_sqlite(&all, &T), Err(FilterError::InvalidSort { .. })));
}

#[test]
fn cursors_round_trip_through_json() {
    let cursor = Cursor {
        values: vec![SortValue::EmptyArray, SortValue::Value(json!([]))],
        id: RowId::Text("j1".into()),
    };
    let text = serde_json::to_string(&cursor).unwrap();
    assert_eq!(text, r#"{"values":["empty_array",{"value":[]}],"id":"j1"}"#);
    assert_eq!(serde_json::from_str::<Cursor>(&text).unwrap(), cursor);
}

/// Documents whose sort values are scalars (the SQL order is exact for them): `a` and
/// `b` are scalars or arrays of scalars, `d` an object or an array of objects with a
/// scalar `b`.
fn sortable_document() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        2 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => number(),
        3 => prop::sample::select(vec!["", "a", "B", "ab", "é", "a\nb"]).prop_map(Value::from),
    ];
    let scalars =
        || prop_oneof![scalar.clone(), prop::collection::vec(scalar.clone(), 0..3).prop_map(Value::Array)];
    let object = scalar.clone().prop_map(|s| json!({"b": s}));
    let objects = prop_oneof![object.clone(), prop::collection::vec(object, 0..3).prop_map(Value::Array)];
    (prop::option::of(scalars()), prop::option::of(scalars()), prop::option::of(objects)).prop_map(
        |(a, b, d)| {
            let fields = [("a", a), ("b", b), ("d", d)];
            Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect())
        },
    )
}

/// One or two sort fields, each either way.
fn sort_spec() -> impl Strategy<Value = Sort> {
    let field = (prop::sample::select(vec!["a", "b", "d.b", "b.0", "c"]), any::<bool>());
    prop::collection::vec(field, 1..3).prop_map(|fields| {
        let mut list: Vec<Value> = Vec::new();
        for (path, up) in fields {
            if !list.iter().any(|f| f.get(path).is_some()) {
                list.push(json!({path: if up { 1 } else { -1 }}));
            }
        }
        sort(Value::Array(list))
    })
}

/// The databases taking part: SQLite, and PostgreSQL when it is set up.
fn databases(dbs: &Dbs) -> Vec<&'static str> {
    if dbs.has_postgres() { vec!["SQLite", "PostgreSQL"] } else { vec!["SQLite"] }
}

/// A page's ids, read from `db`.
fn run(dbs: &mut Dbs, db: &str, page: &Page, filter: &Filter) -> Vec<i64> {
    if db == "SQLite" {
        let sql = page.to_sqlite(filter, &T).expect("compiles for SQLite");
        dbs.sqlite_ids(&sql.sql, &sql.params)
    } else {
        let sql = page.to_postgres(filter, &T).expect("compiles for PostgreSQL");
        dbs.postgres_ids(&sql.sql, &sql.params)
    }
}

#[test]
fn sql_pages_follow_the_order_in_memory() {
    let filters =
        || prop::sample::select(vec![json!({}), json!({"b": {"$exists": true}}), json!({"a": {"$ne": 1}})]);
    let strategy =
        move || (prop::collection::vec(sortable_document(), 0..10), sort_spec(), filters(), 1u32..4);
    property("pages", 128, strategy, |(docs, sort, filter, limit)| {
        let filter = parse(&filter);
        let whole = Page { sort: sort.clone(), ..Page::default() };
        let expected = in_memory(&whole, &filter, &docs);
        let paged = page_by_page(&sort, &docs, limit, |p| in_memory(p, &filter, &docs));
        prop_assert_eq!(&paged, &expected, "in memory, page by page");
        with_dbs(|dbs| {
            dbs.load(&docs);
            for db in databases(dbs) {
                prop_assert_eq!(&run(dbs, db, &whole, &filter), &expected, "{}, whole", db);
                let paged = page_by_page(&sort, &docs, limit, |p| run(dbs, db, p, &filter));
                prop_assert_eq!(&paged, &expected, "{}, by pages", db);
            }
            Ok(())
        })
    });
}

/// Where SQL is not exact (arrays and objects as sort values order by type only), its
/// pages still add up to its own order: no row twice, none lost.
#[test]
fn sql_pages_add_up_even_where_the_order_is_inexact() {
    let docs = vec![
        json!({"a": {"x": 2}}),
        json!({"a": [[3], 1]}),
        json!({"a": {"x": 1}}),
        json!({"a": [[1]]}),
        json!({"a": "s"}),
        json!({"a": {"x": 1}}),
    ];
    let all = Filter::parse(&json!({})).unwrap();
    with_dbs(|dbs| {
        dbs.load(&docs);
        for db in databases(dbs) {
            for direction in [1, -1] {
                let sort = sort(json!({"a": direction}));
                let expected = run(dbs, db, &Page { sort: sort.clone(), ..Page::default() }, &all);
                let paged = page_by_page(&sort, &docs, 2, |p| run(dbs, db, p, &all));
                assert_eq!(paged, expected, "{db}, {direction}");
            }
        }
    });
}
