//! Properties over random documents and filters.

use proptest::prelude::*;
use serde_json::{Value, json};
use xchange_filter::{Filter, Sort};

use crate::arb::{PATHS, document, filter, operators, parse, property, scalar};

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

#[test]
fn a_filter_and_its_nor_never_both_match() {
    property(
        "nor",
        512,
        || (filter(), document()),
        |(f, doc)| {
            let yes = parse(&f).matches(&doc);
            let no = parse(&json!({"$nor": [f]})).matches(&doc);
            prop_assert!(yes != no);
            Ok(())
        },
    );
}

#[test]
fn an_operator_object_and_its_not_never_both_match() {
    let strategy = || (prop::sample::select(PATHS), operators(), document());
    property("not", 512, strategy, |(path, ops, doc)| {
        let yes = parse(&json!({path: ops})).matches(&doc);
        let no = parse(&json!({path: {"$not": ops}})).matches(&doc);
        prop_assert!(yes != no);
        Ok(())
    });
}

#[test]
fn and_or_combine_like_booleans() {
    property(
        "and_or",
        512,
        || (filter(), filter(), document()),
        |(f, g, doc)| {
            let (x, y) = (parse(&f).matches(&doc), parse(&g).matches(&doc));
            prop_assert_eq!(parse(&json!({"$and": [f.clone(), g.clone()]})).matches(&doc), x && y);
            prop_assert_eq!(parse(&json!({"$or": [f, g]})).matches(&doc), x || y);
            Ok(())
        },
    );
}

#[test]
fn parsing_is_total() {
    property(
        "parsing",
        512,
        || (hostile(), document()),
        |(v, doc)| {
            // Never panics: either refused with a message, or a filter that can be run.
            match Filter::parse(&v) {
                Ok(f) => {
                    f.matches(&doc);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let _ = Sort::parse(&v);
            Ok(())
        },
    );
}

#[test]
fn sql_compilation_is_total_and_names_every_parameter() {
    property("sql_total", 512, filter, |f| {
        let f = parse(&f);
        for (compiled, mark) in [(f.to_sqlite("t.doc"), '?'), (f.to_postgres("t.doc"), '$')] {
            match compiled {
                Ok(sql) => {
                    for n in 1..=sql.params.len() {
                        let placeholder = format!("{mark}{n}");
                        let named = sql.sql.match_indices(&placeholder).any(|(i, _)| {
                            !sql.sql[i + placeholder.len()..].starts_with(|c: char| c.is_ascii_digit())
                        });
                        prop_assert!(named, "{} unused", placeholder);
                    }
                }
                Err(e) => {
                    prop_assert!(matches!(e, xchange_filter::FilterError::UnsupportedInSql { .. }), "{}", e);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn sorting_orders_and_keeps_ties_stable() {
    let strategy = || (prop::collection::vec(document(), 0..12), any::<bool>());
    property("sorting", 512, strategy, |(docs, desc)| {
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
        Ok(())
    });
}
