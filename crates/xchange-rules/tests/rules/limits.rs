//! The limits on CEL conditions keep evaluation on a service thread's stack, loading
//! safe whatever the file holds, and no input panics.

use proptest::prelude::*;
use serde_json::json;
use xchange_rules::{MAX_EXPR_DEPTH, RulesError};

use crate::with_expr;

/// The stack evaluation must fit in: half of a tokio worker's or a test thread's 2 MiB,
/// leaving the rest to the service's own frames.
const EVAL_STACK: usize = 1 << 20;

/// A family of conditions, by nesting depth.
type Shape = Box<dyn Fn(usize) -> String>;

/// Builds `shape(n)` for growing `n` and returns the deepest that loads: the first larger
/// one must be refused for depth (by the tree check or by the parser's own limit).
fn deepest(shape: impl Fn(usize) -> String) -> (String, usize) {
    let mut best = None;
    for n in 1..=4 * MAX_EXPR_DEPTH {
        match with_expr(&shape(n)) {
            Ok(_) => best = Some((shape(n), n)),
            Err(RulesError::ExprTooDeep { .. }) => break,
            Err(RulesError::ExprSyntax { message, .. }) if message.contains("Recursion limit") => break,
            Err(e) => panic!("{}: unexpected {e:?}", shape(n)),
        }
    }
    best.expect("the smallest shape loads")
}

#[test]
fn the_deepest_conditions_evaluate_within_a_small_stack() {
    let shapes: Vec<(&str, Shape)> = vec![
        ("sum", Box::new(|n| vec!["job.a"; n].join(" + ") + " > 0")),
        ("select", Box::new(|n| format!("job{} == 1", ".a".repeat(n)))),
        ("index", Box::new(|n| format!("job.l{} == 1", "[0]".repeat(n)))),
        ("list", Box::new(|n| format!("{}job.a{} == job.l", "[".repeat(n), "]".repeat(n)))),
        ("map", Box::new(|n| format!("{}job.a{} == job.m", "{'a': ".repeat(n), "}".repeat(n)))),
        ("call", Box::new(|n| format!("{}job.a{} == 1", "int(".repeat(n), ")".repeat(n)))),
        ("ternary", Box::new(|n| format!("{}true{}", "job.b ? (".repeat(n), ") : false".repeat(n)))),
        ("else-chain", Box::new(|n| format!("{}true", "job.b ? false : ".repeat(n)))),
        ("and", Box::new(|n| format!("{}true{}", "(job.b && ".repeat(n), ")".repeat(n)))),
        ("parens", Box::new(|n| format!("{}job.b{}", "(".repeat(n), ")".repeat(n)))),
        ("comprehension", Box::new(|n| format!("job.l.exists(x, {} > 0)", vec!["x"; n].join(" + ")))),
    ];
    let job = json!({"a": 1, "b": true, "l": [[[[1]]]], "m": {"a": 1}});
    for (name, shape) in shapes {
        let (src, n) = deepest(shape);
        eprintln!("{name}: {n} levels load: {src}");
        assert!(n >= MAX_EXPR_DEPTH / 2 - 2, "{name}: only {n} levels fit: {src}");
        let rules = with_expr(&src).unwrap();
        let job = job.clone();
        // A stack overflow aborts the test binary, which fails the run.
        let trace = std::thread::Builder::new()
            .stack_size(EVAL_STACK)
            .spawn(move || rules.evaluate(&job, 0).unwrap().trace)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(trace.len(), 1, "{name}");
    }
}

#[test]
fn deeply_nested_sources_are_refused_without_crashing_the_loader() {
    // The CEL parser recurses per level of nesting; the loader's own thread and the
    // parser's recursion limit keep it from overflowing, however deep the source.
    for src in [
        format!("{}1{} == 1", "(".repeat(400), ")".repeat(400)),
        format!("{}1{} == 1", "[".repeat(400), "]".repeat(400)),
        format!("{}1{} == 1", "size(".repeat(150), ")".repeat(150)),
        format!("{}true", "job.b ? false : ".repeat(60)),
    ] {
        assert!(src.len() <= xchange_rules::MAX_EXPR_BYTES);
        let e = with_expr(&src).unwrap_err();
        assert!(
            matches!(&e, RulesError::ExprTooDeep { .. })
                || matches!(&e, RulesError::ExprSyntax { message, .. } if message.contains("Recursion limit")),
            "{}...: {e:?}",
            &src[..20]
        );
    }
    // A run of `!` is flat for the parser and for the tree.
    let nots = with_expr(&format!("{}true", "!".repeat(1000))).unwrap();
    assert_eq!(nots.evaluate(&json!({}), 0).unwrap().trace.len(), 1);
}

/// Tokens of CEL, recombined at random: mostly nonsense, sometimes a valid condition.
const TOKENS: &[&str] = &[
    "job",
    "now_ms",
    ".",
    "a",
    "l",
    "s",
    "m",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    "?",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "<",
    "&&",
    "||",
    "!",
    "in",
    "1",
    "0",
    "2u",
    "1.5",
    "'s'",
    "b'x'",
    "true",
    "null",
    "size",
    "int",
    "exists",
    "map",
    "filter",
    "all",
    "x",
    "has",
    " ",
    "?.",
    "9223372036854775807",
];

proptest! {
    #[test]
    fn no_expression_panics_the_loader_or_the_evaluator(idx in proptest::collection::vec(0..TOKENS.len(), 1..40)) {
        let src: String = idx.iter().map(|&i| TOKENS[i]).collect();
        if let Ok(rules) = with_expr(&src) {
            for job in [
                json!({}),
                json!({"a": 1, "l": [1, "x", null], "s": "str", "m": {"a": [1]}}),
                json!({"a": -9_223_372_036_854_775_807_i64, "l": [], "s": "", "m": {}}),
                json!({"a": 1.5e300, "l": [[[]]], "s": 7, "m": null}),
            ] {
                let d = rules.evaluate(&job, i64::MAX).unwrap();
                prop_assert_eq!(d.trace.len(), 1);
            }
        }
    }
}
