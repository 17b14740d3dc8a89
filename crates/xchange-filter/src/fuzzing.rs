//! The logic of the `filter` fuzz target, shared by `fuzz/fuzz_targets/filter.rs`
//! (cargo-fuzz) and the corpus replay in `tests/filter/fuzz_corpus.rs`. Behind the
//! `fuzzing` feature; not part of the crate's API.
//!
//! [`filter`] reads the bytes as JSON and, whatever they hold, must get an answer or an
//! error, never a panic, from: the parser ([`Filter::parse`], and the serde path, which
//! must agree with it), both SQL compilers ([`Filter::to_sqlite`], [`Filter::to_postgres`]:
//! they compile, or refuse with [`FilterError::UnsupportedInSql`]), the matcher on fixed
//! documents (where `{"$nor": [f]}` must match exactly what `f` does not), the sort parser
//! ([`Sort::parse`] of the same JSON) and a page with a cursor, in memory
//! ([`Page::select`]) and in both SQL dialects.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::{Cursor, Filter, FilterError, Limits, Page, RowId, Sort, SqlFragment, Table};

/// The documents every filter is matched against: MongoDB's manual's inventory, with
/// arrays of scalars and of documents, nulls, missing fields and every JSON type.
fn documents() -> &'static [Value] {
    static DOCS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        vec![
            json!({"item": "journal", "qty": 25, "size": {"h": 14, "w": 21, "uom": "cm"}, "status": "A",
                   "tags": ["blank", "red"], "dim_cm": [14, 21],
                   "instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}]}),
            json!({"item": "notebook", "qty": 50.5, "size": {"h": 8.5, "w": 11, "uom": "in"}, "status": "A",
                   "tags": ["red", "blank", "plain"], "dim_cm": [14, 21], "price": null,
                   "instock": [{"warehouse": "C", "qty": 5}]}),
            json!({"item": "paper", "qty": -100, "size": {"h": 8.5, "w": 11, "uom": "in"}, "status": "D",
                   "tags": [], "dim_cm": [[1, 2], 22.85, "x"], "flag": true,
                   "items": [{"name": "a", "0": {"name": "b"}}, [1, {"name": "c"}]]}),
            json!({"item": "planner", "qty": 9_223_372_036_854_775_807_i64, "size": {},
                   "status": "", "tags": [["blank", "red"]], "big": 18_446_744_073_709_551_615_u64,
                   "f": 1e300, "neg": -0.0, "text": "Ünïcödé\nline two"}),
            json!({"_id": 5, "item": null, "qty": [1, [2, [3]]], "status": {"a": 1, "b": [true, false]},
                   "job_objectives": [1, 2, 3, 4], "submitted_by": "acme-bot", "deadline_ms": 1_767_225_660_000_u64}),
            json!({}),
        ]
    })
}

/// The table of the paged statements.
const TABLE: Table<'static> = Table { name: "jobs", id: "id", doc: "doc", text_id: false };

/// Runs one input through parser, compilers, matcher, sorter and pager; panics on a
/// broken property.
pub fn filter(bytes: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else { return };
    let docs = documents();
    let parsed = Filter::parse(&v);
    assert_eq!(
        serde_json::from_slice::<Filter>(bytes).is_ok(),
        parsed.is_ok(),
        "the serde path and the parser disagree"
    );
    match &parsed {
        Ok(f) => {
            compiled(f.to_sqlite("doc"));
            compiled(f.to_postgres("doc"));
            negation(&v, f, docs);
        }
        Err(e) => described(e),
    }
    match Sort::parse(&v) {
        Ok(sort) => paged(sort, parsed.ok(), docs),
        Err(e) => described(&e),
    }
}

/// A compiler's answer: SQL with numbered placeholders for its parameters, or a refusal
/// of something SQL cannot express.
fn compiled(result: Result<SqlFragment, FilterError>) {
    match result {
        Ok(fragment) => placeholders(&fragment),
        Err(e @ FilterError::UnsupportedInSql { .. }) => described(&e),
        Err(e) => panic!("a parsed filter is refused by a SQL compiler with another error: {e}"),
    }
}

/// The SQL names its parameters `?1`/`$1` up to `?n`/`$n`, each at least once and none
/// beyond, and nothing from the filter is pasted into it: the text is ASCII (the filter's
/// strings need not be) and its quotes pair up.
fn placeholders(fragment: &SqlFragment) {
    let sql = &fragment.sql;
    assert!(!sql.is_empty(), "empty SQL");
    assert!(
        sql.is_ascii() && sql.matches('\'').count().is_multiple_of(2),
        "SQL text with pasted input: {sql}"
    );
    let mut seen = vec![false; fragment.params.len()];
    for (i, b) in sql.bytes().enumerate() {
        if !matches!(b, b'?' | b'$') {
            continue;
        }
        let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<usize>() else { continue };
        assert!((1..=seen.len()).contains(&n), "placeholder {n} without a parameter ({} given)", seen.len());
        seen[n - 1] = true;
    }
    assert!(seen.iter().all(|s| *s), "a parameter no placeholder names");
}

/// Every error says something and names a code.
fn described(e: &FilterError) {
    assert!(!e.to_string().is_empty() && !e.code_name().is_empty(), "an error says nothing");
    let _ = (e.path(), e.operator());
}

/// `{"$nor": [f]}` parses (under limits one level deeper) and matches exactly the
/// documents `f` does not match.
fn negation(v: &Value, f: &Filter, docs: &[Value]) {
    let defaults = Limits::default();
    let deeper = Limits { max_depth: defaults.max_depth + 2, max_nodes: defaults.max_nodes + 1, ..defaults };
    let nor = Filter::parse_with(&json!({ "$nor": [v] }), &deeper)
        .unwrap_or_else(|e| panic!("the negation of a valid filter is refused: {e}"));
    for doc in docs.iter().chain([v]) {
        assert_ne!(f.matches(doc), nor.matches(doc), "$nor does not negate on {doc}");
    }
}

/// A page under `sort`, after the cursor of the first document, in memory and in SQL.
fn paged(sort: Sort, filter: Option<Filter>, docs: &[Value]) {
    let filter = filter.unwrap_or_else(|| Filter::parse(&json!({})).expect("the empty filter parses"));
    let rows: Vec<(RowId, &Value)> =
        docs.iter().enumerate().map(|(i, d)| (RowId::Int(i64::try_from(i).unwrap_or(0)), d)).collect();
    let mut sorted: Vec<Value> = docs.to_vec();
    sort.sort(&mut sorted);
    for pair in sorted.windows(2) {
        assert!(
            sort.compare(&pair[0], &pair[1]).is_le(),
            "sorted out of order: {} then {}",
            pair[0],
            pair[1]
        );
    }
    let cursor = Cursor::after(&sort, RowId::Int(0), &docs[0]);
    let text = serde_json::to_string(&cursor).expect("a cursor serializes");
    let back: Cursor = serde_json::from_str(&text).expect("a serialized cursor reads back");
    assert_eq!(back, cursor, "cursor round trip");
    let page = Page { sort, after: Some(cursor), limit: Some(3) };
    let hits = page.select(&filter, &rows, |(id, doc)| (id, doc)).expect("a cursor of the page's sort");
    assert!(hits.len() <= 3, "the limit is ignored");
    compiled(page.to_sqlite(&filter, &TABLE));
    compiled(page.to_postgres(&filter, &TABLE));
}
