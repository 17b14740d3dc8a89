//! Properties over random documents and filters.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use xchange_filter::{Filter, Sort};

const PATHS: &[&str] = &["a", "b", "a.b", "a.0", "b.c", "c"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(vec![0.5, 1.0, 2.5, -1.5]).prop_map(Value::from),
        prop::sample::select(vec!["", "a", "A", "ab", "b"]).prop_map(Value::from),
    ]
}

/// Small JSON values whose keys collide with the filter paths.
fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c", "0"]), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c"]), json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// An operator object for one field.
fn operators() -> impl Strategy<Value = Value> {
    let one = prop_oneof![
        json_value().prop_map(|v| json!({"$eq": v})),
        json_value().prop_map(|v| json!({"$ne": v})),
        (prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]), scalar())
            .prop_map(|(op, v)| json!({op: v})),
        prop::collection::vec(scalar(), 0..3).prop_map(|v| json!({"$in": v})),
        prop::collection::vec(scalar(), 0..3).prop_map(|v| json!({"$nin": v})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        prop::sample::select(vec!["null", "number", "int", "double", "string", "array", "object", "bool"])
            .prop_map(|t| json!({"$type": t})),
        (0u8..3).prop_map(|n| json!({"$size": n})),
        prop::collection::vec(scalar(), 0..3).prop_map(|v| json!({"$all": v})),
        scalar().prop_map(|v| json!({"$elemMatch": {"$gte": v}})),
        prop::sample::select(vec![json!({"$regex": "^a"}), json!({"$regex": "b$", "$options": "i"})]),
    ];
    one.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|ops| json!({"$not": ops})),
            (inner.clone(), inner).prop_map(|(x, y)| {
                let mut m = x.as_object().cloned().unwrap_or_default();
                m.extend(y.as_object().cloned().unwrap_or_default());
                Value::Object(m)
            }),
        ]
    })
}

fn clause() -> impl Strategy<Value = (String, Value)> {
    (prop::sample::select(PATHS), prop_oneof![json_value(), operators()]).prop_map(|(p, v)| (p.to_owned(), v))
}

/// Valid filters, nested with logical operators and document `$elemMatch`.
fn filter() -> impl Strategy<Value = Value> {
    let leaf = prop::collection::vec(clause(), 0..3)
        .prop_map(|cs| Value::Object(cs.into_iter().collect::<Map<String, Value>>()));
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (prop::sample::select(vec!["$and", "$or", "$nor"]), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(op, fs)| json!({op: fs})),
            (prop::sample::select(PATHS), inner).prop_map(|(p, f)| {
                // A filter with only operator keys would be read as the value form.
                if f.as_object().is_some_and(|m| m.is_empty() || m.keys().any(|k| k.starts_with('$'))) {
                    json!({p: {"$elemMatch": {"$and": [f]}}})
                } else {
                    json!({p: {"$elemMatch": f}})
                }
            }),
        ]
    })
}

/// Arbitrary JSON whose keys are often operators or odd paths: food for the parser.
fn hostile() -> impl Strategy<Value = Value> {
    let keys = vec![
        "a",
        "b.c",
        "a.0",
        "",
        "a..b",
        "$and",
        "$or",
        "$nor",
        "$not",
        "$eq",
        "$ne",
        "$gt",
        "$lte",
        "$in",
        "$nin",
        "$exists",
        "$type",
        "$regex",
        "$options",
        "$size",
        "$all",
        "$elemMatch",
        "$foo",
        "$where",
    ];
    let leaf = prop_oneof![
        scalar(),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z(\\[*+?{}]{0,6}".prop_map(Value::from),
        prop::sample::select(vec!["imsx", "q", "double", "objectId", "(?=a)"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(keys.clone()), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn parse(v: &Value) -> Filter {
    Filter::parse(v).unwrap_or_else(|e| panic!("generated filter {v} was refused: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_filter_and_its_nor_never_both_match(f in filter(), doc in document()) {
        let yes = parse(&f).matches(&doc);
        let no = parse(&json!({"$nor": [f]})).matches(&doc);
        prop_assert!(yes != no);
    }

    #[test]
    fn an_operator_object_and_its_not_never_both_match(path in prop::sample::select(PATHS), ops in operators(), doc in document()) {
        let yes = parse(&json!({path: ops})).matches(&doc);
        let no = parse(&json!({path: {"$not": ops}})).matches(&doc);
        prop_assert!(yes != no);
    }

    #[test]
    fn and_or_combine_like_booleans(f in filter(), g in filter(), doc in document()) {
        let (x, y) = (parse(&f).matches(&doc), parse(&g).matches(&doc));
        prop_assert_eq!(parse(&json!({"$and": [f, g]})).matches(&doc), x && y);
        prop_assert_eq!(parse(&json!({"$or": [f, g]})).matches(&doc), x || y);
    }

    #[test]
    fn parsing_is_total(v in hostile(), doc in document()) {
        // Never panics: either refused with a message, or a filter that can be run.
        match Filter::parse(&v) {
            Ok(f) => { f.matches(&doc); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = Sort::parse(&v);
    }

    #[test]
    fn sql_compilation_is_total_and_names_every_parameter(f in filter()) {
        match parse(&f).to_sqlite("t.doc") {
            Ok(sql) => {
                for n in 1..=sql.params.len() {
                    let placeholder = format!("?{n}");
                    let named = sql.sql.match_indices(&placeholder).any(|(i, _)| {
                        !sql.sql[i + placeholder.len()..].starts_with(|c: char| c.is_ascii_digit())
                    });
                    prop_assert!(named, "{} unused", placeholder);
                }
            }
            Err(e) => prop_assert!(matches!(e, xchange_filter::FilterError::UnsupportedInSql { .. }), "{}", e),
        }
    }

    #[test]
    fn sorting_orders_and_keeps_ties_stable(docs in prop::collection::vec(document(), 0..12), desc in any::<bool>()) {
        let sort = Sort::parse(&json!({"a": if desc { -1 } else { 1 }})).unwrap();
        let mut tagged: Vec<(usize, Value)> = docs.into_iter().enumerate().collect();
        sort.sort_by(&mut tagged, |t| &t.1);
        for w in tagged.windows(2) {
            let o = sort.compare(&w[0].1, &w[1].1);
            prop_assert!(o.is_le(), "{} before {}", w[0].1, w[1].1);
            if o.is_eq() {
                prop_assert!(w[0].0 < w[1].0, "ties keep input order");
            }
        }
        let mut seen: Vec<usize> = tagged.iter().map(|t| t.0).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..tagged.len()).collect::<Vec<_>>());
    }
}
