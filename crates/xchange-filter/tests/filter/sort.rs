//! Sorting follows MongoDB's cross-type order and array rules, and ties keep input order.

use serde_json::{Value, json};
use xchange_filter::{Direction, FilterError, Sort};

fn ids(docs: &[Value]) -> Vec<i64> {
    docs.iter().map(|d| d["_id"].as_i64().expect("integer _id")).collect()
}

fn sorted(sort: &Sort, docs: &[Value]) -> Vec<i64> {
    let mut docs = docs.to_vec();
    sort.sort(&mut docs);
    ids(&docs)
}

fn mixed() -> Vec<Value> {
    vec![
        json!({"_id": 1, "a": 1}),
        json!({"_id": 2, "a": "x"}),
        json!({"_id": 3, "a": null}),
        json!({"_id": 4}),
        json!({"_id": 5, "a": {"b": 1}}),
        json!({"_id": 6, "a": [3, 0.5]}),
        json!({"_id": 7, "a": true}),
        json!({"_id": 8, "a": []}),
        json!({"_id": 9, "a": 1.0}),
    ]
}

#[test]
fn cross_type_order_ascending() {
    // [] < null = missing < numbers (the array by its smallest, 0.5) < strings < objects
    // < booleans; 1 and 1.0 tie and keep their input order.
    let sort = Sort::parse(&json!({"a": 1})).unwrap();
    assert_eq!(sorted(&sort, &mixed()), [8, 3, 4, 6, 1, 9, 2, 5, 7]);
}

#[test]
fn cross_type_order_descending() {
    // The array now sorts by its largest element, 3; ties still keep input order.
    let sort = Sort::parse(&json!({"a": -1})).unwrap();
    assert_eq!(sort.keys()[0].direction(), Direction::Descending);
    assert_eq!(sorted(&sort, &mixed()), [7, 5, 2, 6, 1, 9, 3, 4, 8]);
}

#[test]
fn several_fields_keep_the_written_order() {
    let docs = vec![
        json!({"_id": 1, "status": "b", "priority": 1}),
        json!({"_id": 2, "status": "a", "priority": 1}),
        json!({"_id": 3, "status": "a", "priority": 5}),
        json!({"_id": 4, "status": "b", "priority": 5}),
    ];
    let by_status: Sort = r#"{"status": 1, "priority": -1}"#.parse().unwrap();
    assert_eq!(sorted(&by_status, &docs), [3, 2, 4, 1]);
    let by_priority: Sort = serde_json::from_str(r#"{"priority": -1, "status": 1}"#).unwrap();
    assert_eq!(sorted(&by_priority, &docs), [3, 4, 2, 1]);
    let listed = Sort::parse(&json!([{"priority": -1}, {"status": 1}])).unwrap();
    assert_eq!(listed, by_priority);

    // A Value object has lost its key order unless serde_json keeps it in this build.
    match Sort::parse(&json!({"priority": -1, "status": 1})) {
        Err(FilterError::InvalidSort { .. }) => {}
        Ok(sort) => assert_eq!(sort, by_priority),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn paths_through_arrays_of_documents() {
    let docs = vec![
        json!({"_id": 1, "tags": [{"level": 3}, {"level": 9}]}),
        json!({"_id": 2, "tags": [{"level": 5}]}),
        json!({"_id": 3, "tags": [{"level": 4}, {"other": 1}]}),
    ];
    // Ascending by the smallest reached value; the document without `level` counts as
    // null, which is smaller than any number.
    assert_eq!(sorted(&Sort::parse(&json!({"tags.level": 1})).unwrap(), &docs), [3, 1, 2]);
    // Descending by the largest.
    assert_eq!(sorted(&Sort::parse(&json!({"tags.level": -1})).unwrap(), &docs), [1, 2, 3]);
}

#[test]
fn empty_sort_and_sort_by() {
    let docs = mixed();
    assert_eq!(sorted(&Sort::parse(&json!({})).unwrap(), &docs), ids(&docs));

    let mut rows: Vec<(&str, Value)> =
        vec![("c", json!({"n": 2})), ("a", json!({"n": 1})), ("b", json!({"n": 2}))];
    Sort::parse(&json!({"n": 1.0})).unwrap().sort_by(&mut rows, |r| &r.1);
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(names, ["a", "c", "b"]);
}
