//! In memory, SQLite and PostgreSQL give the same answers on random documents and
//! filters. MongoDB's semantics are the reference: `table.rs` holds the in-memory
//! evaluator to MongoDB's documented answers, and a disagreement here is a bug in
//! whichever evaluator is wrong (or a difference the crate documents, which the
//! generators then stay clear of, see `arb.rs`).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use crate::arb::{
    BIG_INTEGERS, FLOATS, OPTIONS, REGEXES, STRINGS, document, filter, parse, property, regex_operand,
};
use crate::db::{in_memory, with_dbs};

/// Loads `docs` and runs each filter on the three evaluators.
fn agree(docs: &[Value], filters: &[Value]) -> Result<(), TestCaseError> {
    with_dbs(|dbs| {
        dbs.load(docs);
        for f in filters {
            let parsed = parse(f);
            let expected = in_memory(&parsed, docs);
            match dbs.sqlite(&parsed) {
                Ok(got) => prop_assert_eq!(&got, &expected, "SQLite against in memory on {}", f),
                // The one refusal the generated filters may meet (see `to_sqlite`).
                Err(e) => {
                    prop_assert!(e.to_string().contains("nests too deeply"), "SQLite refused {}: {}", f, e)
                }
            }
            if let Some(got) = dbs.postgres(&parsed) {
                let got = got.map_err(|e| TestCaseError::fail(format!("PostgreSQL refused {f}: {e}")))?;
                prop_assert_eq!(&got, &expected, "PostgreSQL against in memory on {}", f);
            }
        }
        Ok(())
    })
}

#[test]
fn in_memory_sqlite_and_postgresql_agree() {
    let strategy = || (prop::collection::vec(document(), 1..10), prop::collection::vec(filter(), 1..4));
    property("differential", 256, strategy, |(docs, filters)| agree(&docs, &filters));
}

/// Every tricky pattern with every option on every tricky string: regex dialects differ
/// most there, so this is not left to chance.
#[test]
fn regexes_agree_on_every_tricky_string() {
    let mut docs: Vec<Value> = STRINGS.iter().map(|s| json!({"s": s})).collect();
    docs.push(json!({"s": ["x", "K", 1]}));
    docs.push(json!({"s": 5}));
    let filters: Vec<Value> =
        REGEXES.iter().flat_map(|p| OPTIONS.iter().map(move |o| json!({"s": regex_operand(p, o)}))).collect();
    agree(&docs, &filters).unwrap_or_else(|e| panic!("{e}"));
}

/// Every scalar operator with every operand on every kind of value: the corners of
/// MongoDB's type rules, not left to chance.
#[test]
fn operators_agree_on_every_value() {
    let mut values: Vec<Value> = vec![json!(null), json!(true), json!(false), json!(-1), json!(0), json!(2)];
    values.extend(BIG_INTEGERS.iter().map(|&i| json!(i)));
    values.extend(FLOATS.iter().map(|&f| json!(f)));
    values.extend(STRINGS[..8].iter().map(|&s| json!(s)));
    let containers = [
        json!([]),
        json!({}),
        json!([2, "a"]),
        json!([null]),
        json!([[2]]),
        json!({"b": 2}),
        json!([{"b": 2}]),
    ];
    let mut docs: Vec<Value> = values.iter().chain(&containers).map(|v| json!({"a": v})).collect();
    docs.push(json!({}));
    let mut filters = Vec::new();
    for x in values.iter().chain(&containers) {
        for op in ["$eq", "$ne", "$in", "$nin", "$all"] {
            let operand = if op.ends_with("in") || op == "$all" { json!([x]) } else { x.clone() };
            filters.push(json!({"a": {op: operand}}));
        }
        if x.as_array().is_none_or(Vec::is_empty) && x.as_object().is_none_or(serde_json::Map::is_empty) {
            for op in ["$gt", "$gte", "$lt", "$lte"] {
                filters.push(json!({"a": {op: x}}));
                filters.push(json!({"a": {"$elemMatch": {op: x}}}));
            }
        }
    }
    for t in ["null", "number", "int", "long", "double", "string", "array", "object", "bool"] {
        filters.push(json!({"a": {"$type": t}}));
    }
    for n in 0..3 {
        filters.push(json!({"a": {"$size": n}}));
    }
    filters.extend([json!({"a": {"$exists": true}}), json!({"a": {"$exists": false}}), json!({"a.b": null})]);
    agree(&docs, &filters).unwrap_or_else(|e| panic!("{e}"));
}
