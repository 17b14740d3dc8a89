//! Random documents and filters, made to hit the places where evaluators disagree: null
//! against missing, arrays of scalars and of documents, arrays in arrays, integers against
//! doubles, strings with newlines and non-ASCII letters, paths with numeric segments.

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseResult, TestRunner};
use serde_json::{Map, Value, json};
use xchange_filter::{Filter, Limits};

/// Field paths of filters: every one meets arrays, objects and scalars in some document.
pub(crate) const PATHS: &[&str] = &["a", "b", "c", "a.b", "a.0", "a.1", "b.c", "a.b.c", "a.0.b", "a.b.0"];

/// Keys of documents: the segments of [`PATHS`], `0` and `1` included.
const KEYS: &[&str] = &["a", "b", "c", "0", "1"];

/// Strings that regular expressions, case folding and byte order treat differently:
/// newlines (`.`, `$`), the Kelvin sign and `ſ` (which fold to `k` and `s`), a non-ASCII
/// digit (`\d`), `é` against `É`, `ß`. The first five are the common ones.
pub(crate) const STRINGS: &[&str] = &[
    "a", "b", "ab", "", "A", "aa", "a\nb", "ab\n", "\nb", "é", "É", "\u{212A}", "k", "ſ", "ß", "١", "x y",
    "a_b",
];

/// Numbers: integers and doubles that are equal (`1`, `1.0`), an int against a long, an
/// integer above 2^53, doubles with and without a fraction. No integral double of 1e16 or
/// more: PostgreSQL's `jsonb` cannot tell it from an integer (a documented difference).
pub(crate) fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (-1i64..3).prop_map(Value::from),
        4 => prop::sample::select(&FLOATS[..5]).prop_map(Value::from),
        1 => prop::sample::select(BIG_INTEGERS).prop_map(Value::from),
        1 => prop::sample::select(&FLOATS[5..]).prop_map(Value::from),
    ]
}

/// Integers at the edges: of 32 bits (`int` against `long`), and above 2^53.
pub(crate) const BIG_INTEGERS: &[i64] =
    &[2_147_483_647, 2_147_483_648, 5_000_000_000, 9_007_199_254_740_993, -2_147_483_649];

/// Doubles, the first five common; `2.0` equals the integer 2, `2147483648.0` is an
/// integral double beyond 32 bits, `9007199254740992.0` is 2^53.
pub(crate) const FLOATS: &[f64] =
    &[0.5, 1.0, 2.5, -1.5, 2.0, 0.1, 1e-7, 2_147_483_648.0, 9_007_199_254_740_992.0];

pub(crate) fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => number(),
        3 => prop::sample::select(&STRINGS[..5]).prop_map(Value::from),
        1 => prop::sample::select(STRINGS).prop_map(Value::from),
    ]
}

fn object_of(
    inner: impl Strategy<Value = Value>,
    keys: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(keys), inner, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// Small JSON values whose keys collide with the filter paths.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            object_of(inner, KEYS),
        ]
    })
}

/// Documents with fields `a`, `b`, `c`; `a` is often an array of documents.
pub(crate) fn document() -> impl Strategy<Value = Value> {
    let docs = prop::collection::vec(object_of(json_value(), KEYS), 0..4).prop_map(|v| json!(v));
    let field = prop_oneof![3 => json_value(), 1 => docs];
    object_of(field, &["a", "b", "c"])
}

/// `$regex` patterns whose meaning differs between regex dialects: anchors and
/// newlines, `.`, classes, word boundaries, case folding.
pub(crate) const REGEXES: &[&str] = &[
    "^a",
    "a$",
    "b$",
    "^$",
    "",
    ".",
    "^.$",
    "^a.b$",
    "a\\nb",
    "\\w",
    "^\\w+$",
    "\\d",
    "\\s",
    "\\bab\\b",
    "\\Bb",
    "[^a]",
    "^[a-z]+$",
    "(a|b)b",
    "a{2}",
    "k",
    "^s$",
    "ß",
    "é",
    "^A",
    "^b",
    "a b",
    "(?i)é",
    "^\\D*$",
    "[[:alpha:]]",
    "\\p{Lu}",
    "(?-u:\\w)",
    "\\b{start}a",
    "(?m)b$",
    "(?s:.)b",
];

/// `$options` letters, alone and together.
pub(crate) const OPTIONS: &[&str] = &["", "i", "m", "s", "x", "im", "ms", "is"];

/// A `$regex` with its `$options`.
pub(crate) fn regex_operand(pattern: &str, options: &str) -> Value {
    if options.is_empty() {
        json!({"$regex": pattern})
    } else {
        json!({"$regex": pattern, "$options": options})
    }
}

fn regex() -> impl Strategy<Value = Value> {
    (prop::sample::select(REGEXES), prop::sample::select(OPTIONS)).prop_map(|(p, o)| regex_operand(p, o))
}

/// An operand for ordering: scalars, and the empty array and object (the SQL compilers
/// refuse other arrays and objects there).
fn bound() -> impl Strategy<Value = Value> {
    prop_oneof![8 => scalar(), 1 => Just(json!([])), 1 => Just(json!({}))]
}

/// Any value, scalars more often.
fn literal() -> impl Strategy<Value = Value> {
    prop_oneof![4 => scalar(), 1 => json_value()]
}

/// One operator of a field (without `$not`).
fn operator() -> impl Strategy<Value = Value> {
    let list = || prop::collection::vec(literal(), 0..4);
    prop_oneof![
        literal().prop_map(|v| json!({"$eq": v})),
        literal().prop_map(|v| json!({"$ne": v})),
        (prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]), bound())
            .prop_map(|(op, v)| json!({op: v})),
        list().prop_map(|v| json!({"$in": v})),
        list().prop_map(|v| json!({"$nin": v})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        prop::sample::select(vec![
            "null", "number", "int", "long", "double", "string", "array", "object", "bool"
        ])
        .prop_map(|t| json!({"$type": t})),
        (0u8..4).prop_map(|n| json!({"$size": n})),
        list().prop_map(|v| json!({"$all": v})),
        regex(),
    ]
}

/// An operator object for one field: mostly one operator; else two, `$not`, value
/// `$elemMatch`.
pub(crate) fn operators() -> impl Strategy<Value = Value> {
    let nested = operator().prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|ops| json!({"$not": ops})),
            inner.clone().prop_map(|ops| json!({"$elemMatch": ops})),
            (inner.clone(), inner).prop_map(|(x, y)| {
                let mut m = x.as_object().cloned().unwrap_or_default();
                m.extend(y.as_object().cloned().unwrap_or_default());
                Value::Object(m)
            }),
        ]
    });
    prop_oneof![3 => operator(), 2 => nested]
}

/// A field path, short ones more often.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&PATHS[..3]),
        3 => prop::sample::select(&PATHS[3..7]),
        1 => prop::sample::select(&PATHS[7..]),
    ]
    .prop_map(str::to_owned)
}

fn clause() -> impl Strategy<Value = Value> {
    (path(), prop_oneof![literal(), operators(), operators()]).prop_map(|(p, v)| json!({p: v}))
}

/// Valid filters: one condition more often than not, else several, nested with logical
/// operators, document `$elemMatch` and `$all` of `$elemMatch`.
pub(crate) fn filter() -> impl Strategy<Value = Value> {
    let leaf = prop::collection::vec(clause(), 1..3).prop_map(|cs| {
        Value::Object(
            cs.into_iter().filter_map(|c| c.as_object().cloned()).flatten().collect::<Map<String, Value>>(),
        )
    });
    // An empty filter matches everything: now and then, as an `$elemMatch` operand.
    let leaf = prop_oneof![12 => leaf, 1 => Just(json!({}))];
    let nested = leaf.prop_recursive(3, 8, 2, |inner| {
        // A filter with only operator keys would be read as the value form.
        let as_document = |f: Value| {
            if f.as_object().is_some_and(|m| m.is_empty() || m.keys().any(|k| k.starts_with('$'))) {
                json!({"$and": [f]})
            } else {
                f
            }
        };
        prop_oneof![
            2 => (prop::sample::select(vec!["$and", "$or", "$nor"]), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(op, fs)| json!({op: fs})),
            2 => (path(), inner.clone()).prop_map(move |(p, f)| json!({p: {"$elemMatch": as_document(f)}})),
            1 => (path(), prop::collection::vec(inner, 1..3)).prop_map(move |(p, fs)| {
                let ems: Vec<Value> = fs.into_iter().map(|f| json!({"$elemMatch": as_document(f)})).collect();
                json!({p: {"$all": ems}})
            }),
        ]
    });
    prop_oneof![3 => clause(), 2 => nested]
}

/// Checks a property on `cases` random values (`PROPTEST_CASES` when set: CI caps it),
/// shrinking a failure to a minimal input and saving its seed in
/// `tests/filter/regressions/{name}.txt`, which is replayed first on every run.
///
/// The property runs on a thread of its own with a large stack: generating deeply
/// nested filters takes more than a test thread's 2 MiB in an unoptimised build. The
/// strategy is made there too (recursive strategies cannot cross threads).
pub(crate) fn property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: impl FnOnce() -> S + Send + 'static,
    test: impl Fn(S::Value) -> TestCaseResult + Send + 'static,
) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(cases);
    let file: &'static str = Box::leak(format!("tests/filter/regressions/{name}.txt").into_boxed_str());
    let config = ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    };
    let outcome = std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(64 << 20)
        .spawn(move || TestRunner::new(config).run(&strategy(), test).map_err(|e| e.to_string()))
        .expect("spawn the property's thread")
        .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("{name}: {failure}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Parses a generated filter. Nesting is what the generators vary, so the depth limit
/// is raised above what they reach; every other limit is the default.
pub(crate) fn parse(v: &Value) -> Filter {
    Filter::parse_with(v, &Limits { max_depth: 40, ..Limits::default() })
        .unwrap_or_else(|e| panic!("generated filter {v} was refused: {e}"))
}
