//! The PostgreSQL compiler's output: values, field names and patterns only in
//! parameters, each cast to its type; refusals with a reason. Whether the SQL means what
//! `matches` means is for `table.rs` and `differential.rs`, on a real database.

use serde_json::{Value, json};
use xchange_filter::{Filter, FilterError, SqlCondition, SqlParam};

use crate::db::{in_memory, with_dbs};
use crate::sqlite::placeholders_match;

fn compile(filter: Value) -> SqlCondition {
    let sql =
        Filter::parse(&filter).unwrap().to_postgres("jobs.doc").unwrap_or_else(|e| panic!("{filter}: {e}"));
    placeholders_match(&sql, '$');
    sql
}

fn text(s: &str) -> SqlParam {
    SqlParam::Text(s.to_owned())
}

#[test]
fn values_keys_and_patterns_never_reach_the_sql_text() {
    let evil = "x'); DROP TABLE jobs; --";
    let sql = compile(json!({
        "a'b) OR 1=1 --": evil,
        "c": {"$regex": "x'\\); DROP TABLE jobs; --", "$gt": evil},
        "d": {"$nin": [evil, {"k'": [evil]}]},
        "e.0": {"$size": 2},
    }));
    assert!(!sql.sql.contains("DROP") && !sql.sql.contains("1=1") && !sql.sql.contains("a'b"), "{}", sql.sql);
    for p in [text(evil), text("a'b) OR 1=1 --"), text(&json!(evil).to_string()), SqlParam::Integer(0)] {
        assert!(sql.params.contains(&p), "{p:?} in {:?}", sql.params);
    }
    assert!(sql.sql.contains("\"jobs\".\"doc\""));
    // Every placeholder says its type, so binding strings and integers is enough.
    let bytes = sql.sql.as_bytes();
    for (i, _) in sql.sql.match_indices('$').filter(|(i, _)| bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    {
        let rest = &sql.sql[i + 1..];
        let after = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        assert!(
            after.starts_with("::"),
            "uncast placeholder at {}",
            &sql.sql[i..(i + 20).min(sql.sql.len())]
        );
    }
}

#[test]
fn an_exact_shape() {
    let sql = compile(json!({"a": {"$exists": true}}));
    assert_eq!(
        sql.sql,
        "EXISTS (SELECT 1 FROM LATERAL (SELECT \"jobs\".\"doc\" -> $1::text AS v, TRUE AS x \
         WHERE jsonb_typeof(\"jobs\".\"doc\") IS DISTINCT FROM 'array' UNION ALL SELECT _e2.v -> $1::text, TRUE \
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(\"jobs\".\"doc\") = 'array' THEN \"jobs\".\"doc\" END) _e2(v) \
         WHERE jsonb_typeof(_e2.v) = 'object') _w1 WHERE TRUE AND coalesce(jsonb_typeof(_w1.v), 'missing') <> 'missing')"
    );
    assert_eq!(sql.params, [text("a")]);
}

#[test]
fn equality_is_one_jsonb_comparison_and_regexes_are_translated() {
    let sql = compile(json!({"size": {"h": 14, "w": [1.0, null]}}));
    assert!(sql.params.contains(&text(r#"{"h":14,"w":[1.0,null]}"#)), "{:?}", sql.params);
    assert!(sql.sql.contains("IS NOT DISTINCT FROM $2::jsonb"), "{}", sql.sql);
    let sql = compile(json!({"s": {"$regex": "^k", "$options": "i"}}));
    assert!(sql.params.contains(&text("\\A[Kk\\u212A]")), "{:?}", sql.params);
    let sql = compile(json!({"s": {"$gte": "b"}}));
    assert!(sql.sql.contains("COLLATE \"C\" >= $2::text"), "strings order by bytes: {}", sql.sql);
}

#[test]
fn what_is_not_compiled_is_refused() {
    for (filter, op, path, reason) in [
        (json!({"a": {"$gt": [1]}}), "$gt", "a", "non-empty array"),
        (json!({"a": {"$regex": "x{300}"}}), "$regex", "a", "255"),
        (json!({"a.b": {"$not": {"$regex": "(?R)^x$", "$options": "m"}}}), "$regex", "a.b", "CRLF"),
    ] {
        let e = Filter::parse(&filter).unwrap().to_postgres("doc").unwrap_err();
        assert!(matches!(e, FilterError::UnsupportedInSql { .. }), "{e:?}");
        assert_eq!((e.operator(), e.path()), (Some(op), path), "{e}");
        assert!(e.to_string().contains(reason), "{e}");
    }
    let f = Filter::parse(&json!({"a": 1})).unwrap();
    for bad in ["v", "X", "", "a.b.c", "doc; DROP TABLE t", "d\"oc", "_w1", "t._e3"] {
        assert!(matches!(f.to_postgres(bad), Err(FilterError::InvalidColumn { .. })), "{bad}");
    }
    assert!(f.to_postgres("value").is_ok() && f.to_postgres("t.v").is_ok());
}

/// Keys SQLite cannot reach (quotes, backslashes) and other odd ones, on PostgreSQL.
#[test]
fn odd_keys_are_reached() {
    let keys = ["a'b", "a\"b", "a\\b", "é", "a b", "😀", "{}", "$x"];
    let docs: Vec<Value> = keys.iter().map(|k| json!({"o": {*k: 1}, "p": [{*k: [2]}]})).collect();
    with_dbs(|dbs| {
        dbs.load(&docs);
        for k in keys.iter().filter(|k| !k.starts_with('$')) {
            for filter in [json!({format!("o.{k}"): 1}), json!({format!("p.{k}"): 2}), json!({"o": {*k: 1}})]
            {
                let parsed = Filter::parse(&filter).unwrap();
                if let Some(got) = dbs.postgres(&parsed) {
                    assert_eq!(got.unwrap(), in_memory(&parsed, &docs), "{filter}");
                }
            }
        }
    });
}
