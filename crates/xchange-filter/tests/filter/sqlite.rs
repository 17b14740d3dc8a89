//! The SQLite compiler's output: values and paths only in parameters, placeholders that
//! match them, and refusals for what it does not translate. Whether the SQL means what
//! `matches` means is for the differential test against a real database.

use serde_json::{Value, json};
use xchange_filter::{Filter, FilterError, SqlCondition, SqlParam};

fn compile(filter: Value) -> SqlCondition {
    let sql =
        Filter::parse(&filter).unwrap().to_sqlite("jobs.doc").unwrap_or_else(|e| panic!("{filter}: {e}"));
    placeholders_match(&sql, '?');
    sql
}

/// Every parameter is named by a placeholder (`mark` and a number), and every
/// placeholder has a parameter. A `?` is always a placeholder; a `$` only before a digit
/// (PostgreSQL's SQL has `$` in regex literals).
pub(crate) fn placeholders_match(sql: &SqlCondition, mark: char) {
    let mut used = vec![false; sql.params.len()];
    let bytes = sql.sql.as_bytes();
    for (i, _) in sql.sql.match_indices(mark) {
        let digits: String =
            bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).map(|&b| b as char).collect();
        let Ok(n) = digits.parse::<usize>() else {
            assert!(mark != '?', "bare ? in {}", sql.sql);
            continue;
        };
        assert!(n >= 1 && n <= used.len(), "{mark}{n} has no parameter");
        used[n - 1] = true;
    }
    assert!(used.iter().all(|u| *u), "a parameter is not used: {:?}", sql.params);
}

fn text(s: &str) -> SqlParam {
    SqlParam::Text(s.to_owned())
}

#[test]
fn values_and_paths_travel_as_parameters() {
    let sql = compile(json!({"status": "open", "size.h": {"$lt": 15.5}, "qty": {"$in": [1, 2]}}));
    for p in [text("$.\"status\""), text("open"), text("$.\"size\""), text("$.\"h\""), SqlParam::Real(15.5)] {
        assert!(sql.params.contains(&p), "{p:?} in {:?}", sql.params);
    }
    assert!(sql.params.contains(&SqlParam::Integer(1)) && sql.params.contains(&SqlParam::Integer(2)));
    assert!(sql.sql.contains("\"jobs\".\"doc\""));
    assert!(!sql.sql.contains("open") && !sql.sql.contains("status") && !sql.sql.contains("15.5"));
}

#[test]
fn hostile_values_and_keys_never_reach_the_sql_text() {
    let evil = "x'); DROP TABLE jobs; --";
    let sql = compile(
        json!({ "a'b) OR 1=1 --": evil, "c": {"$regex": "x'\\); DROP TABLE jobs; --"}, "d": {"$nin": [evil]} }),
    );
    assert!(!sql.sql.contains("DROP") && !sql.sql.contains("1=1") && !sql.sql.contains("a'b"), "{}", sql.sql);
    assert!(sql.params.contains(&text(evil)));
    assert!(sql.params.contains(&text("$.\"a'b) OR 1=1 --\"")));
}

#[test]
fn an_exact_shape() {
    // One segment, `$exists`: the walk is one `json_each` over the wrapped document.
    let sql = compile(json!({"a": {"$exists": true}}));
    assert_eq!(
        sql.sql,
        "EXISTS (SELECT 1 FROM json_each(json_object('w', json(\"jobs\".\"doc\"))) _e1 \
         WHERE (typeof(_e1.key) = 'text' OR _e1.type = 'object') AND \
         coalesce(json_type((CASE WHEN _e1.type = 'object' THEN _e1.value -> ?1 END)), 'missing') <> 'missing')"
    );
    assert_eq!(sql.params, [text("$.\"a\"")]);
}

#[test]
fn operators_compile_with_their_parameters() {
    let sql = compile(json!({"s": {"$regex": "^ab", "$options": "ix"}}));
    assert!(sql.params.contains(&text("(?ix)^ab")), "{:?}", sql.params);
    assert!(sql.sql.contains("REGEXP"));

    let sql = compile(json!({"items.0.name": "x"}));
    assert!(sql.params.contains(&text("$[0]")) && sql.params.contains(&SqlParam::Integer(0)));

    let sql = compile(json!({"tags": {"$size": 3}}));
    assert!(sql.params.contains(&SqlParam::Integer(3)) && sql.sql.contains("json_array_length"));

    let sql = compile(json!({"n": {"$type": ["int", "long"]}}));
    assert!(sql.sql.contains("BETWEEN -2147483648 AND 2147483647"));

    let sql = compile(json!({"on": true, "off": {"$gt": false}}));
    assert!(sql.sql.contains("= 'true'") && sql.params.contains(&SqlParam::Integer(0)));

    let big = compile(json!({"n": 18446744073709551615_u64}));
    assert!(big.params.contains(&SqlParam::Real(18446744073709551615.0)));

    for filter in [
        json!({"a": null}),
        json!({"a": {"$gte": null}}),
        json!({"a": {"$ne": 1}, "b": {"$nin": ["x", null]}}),
        json!({"$nor": [{"a": 1}], "$or": [{"b": 2}, {"c": {"$not": {"$lt": 3}}}]}),
        json!({"r": {"$elemMatch": {"product": "xyz", "score": {"$gte": 8}}}}),
        json!({"r": {"$elemMatch": {"$gte": 80, "$lt": 85}}}),
        json!({"q": {"$all": [{"$elemMatch": {"size": "M"}}, {"$elemMatch": {"num": 100}}]}}),
        json!({"t": {"$all": ["a", "b"]}}),
        json!({}),
    ] {
        compile(filter);
    }
}

#[test]
fn constant_answers_need_no_walk() {
    // `$all: []` and an empty `$in` match nothing; no parameter may be left unnamed.
    let sql = compile(json!({"tags": {"$all": []}}));
    assert_eq!((sql.sql.as_str(), sql.params.len()), ("0", 0));
    compile(json!({"tags": {"$not": {"$all": []}}, "x": {"$in": []}}));
    assert_eq!(compile(json!({})).sql, "1");
}

#[test]
fn what_is_not_compiled_is_refused() {
    for (filter, op, path) in [
        (json!({"a": {"$gt": [1]}}), "$gt", "a"),
        (json!({"a": {"$lte": {"b": 1}}}), "$lte", "a"),
        (json!({"a": {"$not": {"$lt": [[]]}}}), "$lt", "a"),
    ] {
        let e = Filter::parse(&filter).unwrap().to_sqlite("doc").unwrap_err();
        assert!(matches!(e, FilterError::UnsupportedInSql { .. }), "{e:?}");
        assert_eq!((e.operator(), e.path()), (Some(op), path), "{e}");
        assert!(e.to_string().contains(op) && e.to_string().contains(path), "{e}");
    }
    // Equality with arrays and objects, and ordering against empty ones, are compiled.
    for filter in [
        json!({"tags": ["red", "blank"]}),
        json!({"size": {"h": 14, "w": [1, {"x": null}]}}),
        json!({"a": {"$in": [1, [2]], "$nin": [{}], "$ne": []}}),
        json!({"a": {"$all": [[1]], "$gt": [], "$lte": {}}}),
    ] {
        compile(filter);
    }
    let e = Filter::parse(&json!({"a\"b": 1})).unwrap().to_sqlite("doc").unwrap_err();
    assert!(matches!(e, FilterError::UnsupportedInSql { .. }), "{e:?}");
    let e = Filter::parse(&json!({"a": {"b\\c": 1}})).unwrap().to_sqlite("doc").unwrap_err();
    assert!(matches!(e, FilterError::UnsupportedInSql { .. }), "a key inside an equality operand: {e:?}");
    let long: Vec<&str> = ["a"; 70].to_vec();
    let e = Filter::parse(&json!({ long.join("."): 1 })).unwrap().to_sqlite("doc").unwrap_err();
    assert!(matches!(e, FilterError::UnsupportedInSql { .. }) && e.to_string().contains("64"), "{e}");
}

#[test]
fn filters_too_deep_for_sqlites_parser_are_refused() {
    let mut f = json!({"a": 1});
    for _ in 0..7 {
        f = json!({"x.0.y": {"$elemMatch": {"$or": [f, {"z": {"$not": {"$gt": 1}}}]}}});
    }
    let parsed =
        Filter::parse_with(&f, &xchange_filter::Limits { max_depth: 64, ..Default::default() }).unwrap();
    let e = parsed.to_sqlite("doc").unwrap_err();
    assert!(e.to_string().contains("too deeply"), "{e}");
}

#[test]
fn columns_are_checked_and_quoted() {
    let f = Filter::parse(&json!({"a": 1})).unwrap();
    assert!(f.to_sqlite("doc").unwrap().sql.contains("json(\"doc\")"));
    assert!(f.to_sqlite("t.value").unwrap().sql.contains("json(\"t\".\"value\")"));
    for bad in ["value", "KEY", "", "a.b.c", "doc; DROP TABLE t", "1doc", "d\"oc", "t.", "_e1.doc", "t._w12"]
    {
        let e = f.to_sqlite(bad).unwrap_err();
        assert!(matches!(e, FilterError::InvalidColumn { .. }), "{bad}: {e:?}");
    }
}
