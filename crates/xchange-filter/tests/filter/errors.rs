//! Every kind of bad filter is refused with its own variant, naming the operator and where.

use serde_json::{Value, json};
use xchange_filter::{Filter, FilterError, Limits, Sort};

fn refuse(filter: Value) -> FilterError {
    match Filter::parse(&filter) {
        Ok(f) => panic!("{filter} should be refused, parsed as {f:?}"),
        Err(e) => {
            assert_eq!(e.code_name(), "schema_invalid");
            e
        }
    }
}

/// The message names the operator (when there is one) and the location.
fn names(e: &FilterError, op: Option<&str>, path: &str) {
    let msg = e.to_string();
    assert_eq!(e.operator(), op, "{msg}");
    assert_eq!(e.path(), path, "{msg}");
    if let Some(op) = op {
        assert!(msg.contains(op), "message should name {op}: {msg}");
    }
    if path.is_empty() {
        assert!(msg.contains("top level"), "message should say where: {msg}");
    } else {
        assert!(msg.contains(&format!("`{path}`")), "message should name {path}: {msg}");
    }
    assert!(!msg.ends_with('.'), "no trailing period: {msg}");
}

#[test]
fn unknown_operators() {
    let e = refuse(json!({"a": {"$foo": 1}}));
    assert!(matches!(e, FilterError::UnknownOperator { .. }));
    names(&e, Some("$foo"), "a");

    let e = refuse(json!({"$foo": 1}));
    assert!(matches!(e, FilterError::UnknownOperator { .. }));
    names(&e, Some("$foo"), "");

    let e = refuse(json!({"$or": [{"a": 1}, {"b.c": {"$regexp": "x"}}]}));
    assert!(matches!(e, FilterError::UnknownOperator { .. }));
    names(&e, Some("$regexp"), "$or.1.b.c");

    let e = refuse(json!({"r": {"$elemMatch": {"s": {"$gtt": 1}}}}));
    names(&e, Some("$gtt"), "r.$elemMatch.s");
}

#[test]
fn unsupported_operators() {
    for (filter, op, path) in [
        (json!({"$where": "this.a > 1"}), "$where", ""),
        (json!({"$expr": {"$gt": ["$a", "$b"]}}), "$expr", ""),
        (json!({"a": {"$mod": [4, 0]}}), "$mod", "a"),
        (json!({"a": {"$geoWithin": {}}}), "$geoWithin", "a"),
    ] {
        let e = refuse(filter);
        assert!(matches!(e, FilterError::UnsupportedOperator { .. }), "{e:?}");
        names(&e, Some(op), path);
    }
}

#[test]
fn misplaced_operators() {
    for (filter, op, path) in [
        (json!({"$gt": 5}), "$gt", ""),
        (json!({"$not": {"a": 1}}), "$not", ""),
        (json!({"a": {"$or": [{"b": 1}]}}), "$or", "a"),
        (json!({"a": {"$options": "i"}}), "$options", "a"),
        (json!({"a": {"$elemMatch": {"$gt": 1, "$and": [{"b": 1}]}}}), "$and", "a.$elemMatch"),
        (json!({"$and": [{"$in": [1]}]}), "$in", "$and.0"),
    ] {
        let e = refuse(filter);
        assert!(matches!(e, FilterError::MisplacedOperator { .. }), "{e:?}");
        names(&e, Some(op), path);
    }
}

#[test]
fn wrong_operand_types() {
    for (filter, op, path) in [
        (json!({"a": {"$in": 5}}), "$in", "a"),
        (json!({"a": {"$nin": {"x": 1}}}), "$nin", "a"),
        (json!({"a": {"$in": [1, {"$regex": "^x"}]}}), "$in", "a"),
        (json!({"a": {"$size": -1}}), "$size", "a"),
        (json!({"a": {"$size": 2.5}}), "$size", "a"),
        (json!({"a": {"$size": "2"}}), "$size", "a"),
        (json!({"a": {"$exists": "yes"}}), "$exists", "a"),
        (json!({"a": {"$type": "objectId"}}), "$type", "a"),
        (json!({"a": {"$type": 7}}), "$type", "a"),
        (json!({"a": {"$type": []}}), "$type", "a"),
        (json!({"a": {"$type": [2, true]}}), "$type", "a"),
        (json!({"a": {"$regex": 5}}), "$regex", "a"),
        (json!({"a": {"$regex": "x", "$options": "q"}}), "$options", "a"),
        (json!({"a": {"$regex": "x", "$options": 1}}), "$options", "a"),
        (json!({"a": {"$elemMatch": 5}}), "$elemMatch", "a"),
        (json!({"a": {"$not": 5}}), "$not", "a"),
        (json!({"a": {"$not": {}}}), "$not", "a"),
        (json!({"a": {"$not": {"b": 1}}}), "$not", "a"),
        (json!({"a": {"$all": 5}}), "$all", "a"),
        (json!({"a": {"$all": [1, {"$elemMatch": {"b": 1}}]}}), "$all", "a"),
        (json!({"a": {"$all": [{"$elemMatch": {"b": 1}, "$gt": 1}]}}), "$all", "a"),
        (json!({"$and": []}), "$and", ""),
        (json!({"$or": {"a": 1}}), "$or", ""),
    ] {
        let e = refuse(filter.clone());
        assert!(
            matches!(e, FilterError::InvalidOperand { .. } | FilterError::MisplacedOperator { .. }),
            "{filter}: {e:?}"
        );
        if matches!(e, FilterError::InvalidOperand { .. }) {
            names(&e, Some(op), path);
        }
    }
}

#[test]
fn shapes_and_paths() {
    let e = refuse(json!({"a": {"$gt": 1, "b": 2}}));
    assert!(matches!(e, FilterError::MixedOperatorsAndFields { .. }));
    names(&e, None, "a");

    let e = refuse(json!({"a": {"$elemMatch": {"$gt": 1, "b": 2}}}));
    assert!(matches!(e, FilterError::MixedOperatorsAndFields { .. }));
    names(&e, None, "a.$elemMatch");

    let e = refuse(json!([{"a": 1}]));
    assert!(matches!(e, FilterError::NotAnObject { found: "an array", .. }));
    names(&e, None, "");

    let e = refuse(json!({"$and": [{"a": 1}, 5]}));
    assert!(matches!(e, FilterError::NotAnObject { .. }));
    names(&e, None, "$and.1");

    for bad in ["a..b", "", "a.$", "a.$[]", ".a"] {
        let e = refuse(json!({ bad: 1 }));
        assert!(matches!(&e, FilterError::InvalidPath { field, .. } if field == bad), "{e:?}");
    }
}

#[test]
fn regexes_the_crate_cannot_run() {
    for pattern in ["(?=x)", "(a)\\1", "("] {
        let e = refuse(json!({"a": {"$regex": pattern}}));
        assert!(matches!(e, FilterError::InvalidRegex { .. }), "{pattern}: {e:?}");
        names(&e, Some("$regex"), "a");
    }
}

#[test]
fn each_limit_has_its_variant() {
    // Depth: logical nesting.
    let mut deep = json!({"a": 1});
    for _ in 0..10 {
        deep = json!({"$and": [deep]});
    }
    let e = refuse(deep);
    assert!(matches!(e, FilterError::TooDeep { limit: 16, .. }), "{e:?}");
    assert!(e.to_string().contains("16"));
    assert!(e.path().starts_with("$and.0.$and.0"), "{}", e.path());

    // Depth: a literal.
    let mut literal = json!(1);
    for _ in 0..20 {
        literal = json!([literal]);
    }
    let e = refuse(json!({"tags": {"$eq": literal}}));
    assert!(matches!(e, FilterError::TooDeep { .. }), "{e:?}");
    names(&e, None, "tags");

    // Nodes.
    let many: Vec<Value> = (0..300).map(|i| json!({"a": i})).collect();
    let e = refuse(json!({"$or": many}));
    assert!(matches!(e, FilterError::TooManyNodes { limit: 256, .. }), "{e:?}");
    assert!(e.to_string().contains("256"));

    // Lists.
    let long: Vec<u32> = (0..1001).collect();
    let e = refuse(json!({"id": {"$in": long}}));
    assert!(matches!(e, FilterError::ListTooLong { len: 1001, limit: 1000, .. }), "{e:?}");
    names(&e, Some("$in"), "id");
    let e = refuse(json!({"id": {"$all": long}}));
    names(&e, Some("$all"), "id");
    assert!(Filter::parse(&json!({"id": {"$nin": (0..1000).collect::<Vec<u32>>()}})).is_ok());

    // Regex length.
    let e = refuse(json!({"s": {"$regex": "a".repeat(257)}}));
    assert!(matches!(e, FilterError::RegexTooLong { len: 257, limit: 256, .. }), "{e:?}");
    names(&e, Some("$regex"), "s");
    assert!(Filter::parse(&json!({"s": {"$regex": "a".repeat(256)}})).is_ok());

    // Compiled regex size: Unicode classes repeated are large.
    let e = refuse(json!({"s": {"$regex": "\\w{500}"}}));
    assert!(matches!(e, FilterError::RegexTooLarge { .. }), "{e:?}");
    names(&e, Some("$regex"), "s");
}

#[test]
fn limits_are_configurable() {
    let tight =
        Limits { max_depth: 2, max_nodes: 2, max_list_len: 2, max_regex_len: 3, max_regex_size: 1 << 20 };
    let parse = |v: Value| Filter::parse_with(&v, &tight);
    assert!(parse(json!({"a": {"$gt": 1}})).is_ok());
    assert!(matches!(parse(json!({"a": {"$in": [1]}})), Err(FilterError::TooDeep { .. })));
    assert!(matches!(parse(json!({"a": 1, "b": 2, "c": 3})), Err(FilterError::TooManyNodes { .. })));
    assert!(matches!(parse(json!({"a": {"$regex": "abcd"}})), Err(FilterError::RegexTooLong { .. })));
    let roomy = Limits { max_list_len: 2, ..Limits::default() };
    assert!(matches!(
        Filter::parse_with(&json!({"a": {"$in": [1, 2, 3]}}), &roomy),
        Err(FilterError::ListTooLong { .. })
    ));
}

#[test]
fn bad_sorts() {
    for (sort, path) in [
        (json!({"a": 2}), "a"),
        (json!({"a": "asc"}), "a"),
        (json!({"a..b": 1}), "a..b"),
        (json!(5), ""),
        (json!([{"a": 1, "b": 1}]), "0"),
        (json!([{"a": 1}, {"a": -1}]), "a"),
    ] {
        let e = Sort::parse(&sort).expect_err(&sort.to_string());
        assert!(matches!(e, FilterError::InvalidSort { .. }), "{e:?}");
        assert_eq!(e.path(), path, "{e}");
        assert_eq!(e.code_name(), "schema_invalid");
    }
    let many: String = (0..33).map(|i| format!("\"f{i}\": 1")).collect::<Vec<_>>().join(",");
    assert!(format!("{{{many}}}").parse::<Sort>().is_err());
    assert!("{\"a\": 1".parse::<Sort>().is_err());
}
