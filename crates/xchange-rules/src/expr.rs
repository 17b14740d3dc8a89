//! Computed conditions in CEL: parsed and checked once at load, evaluated per job.
//!
//! Only the standard library is available, without the `cel` crate's optional features
//! (regular expressions, `timestamp`/`duration`, base64): a condition sees the job and the
//! caller's `now_ms`, nothing else, and nothing it calls can reach a clock, a file or the
//! network. Limits (`MAX_EXPR_*`, `MAX_COMPREHENSIONS`) are checked in `check.rs`.

use std::sync::{Arc, OnceLock};

use cel::objects::{Key, Map};
use cel::parser::Expression;
use cel::{Context, Env};
use serde_json::Value;

use crate::RulesError;
use crate::check;

/// The name a condition sees the job document under.
pub const JOB_VAR: &str = "job";
/// The name a condition sees the caller's time under, in milliseconds since the epoch.
pub const NOW_VAR: &str = "now_ms";

/// A checked CEL condition and its source, for the trace.
#[derive(Debug)]
pub(crate) struct Expr {
    source: String,
    ast: Expression,
}

/// One environment for every rule set: the standard library never changes.
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

impl Expr {
    /// Parses and checks `source`. Must run on a thread with a large stack (see
    /// [`crate::Rules::from_toml`]): the CEL parser needs about 170 KiB of stack per level
    /// of nesting in a debug build.
    pub(crate) fn compile(rule: &str, source: &str) -> Result<Self, RulesError> {
        if source.len() > crate::MAX_EXPR_BYTES {
            return Err(RulesError::ExprTooLong {
                rule: rule.to_owned(),
                len: source.len(),
                max: crate::MAX_EXPR_BYTES,
            });
        }
        // The parser's own limit stops it before its recursion gets deep; `check` then
        // bounds the tree's depth, which the parser's limit does not (`1+1+...` is flat for
        // the parser but a deep tree).
        let depth = u16::try_from(crate::MAX_EXPR_DEPTH).unwrap_or(u16::MAX);
        let ast = env().parser().max_recursion_depth(depth).parse(source).map_err(|e| {
            RulesError::ExprSyntax { rule: rule.to_owned(), message: condense(&e.to_string()) }
        })?;
        check::check(rule, &ast)?;
        Ok(Self { source: source.to_owned(), ast })
    }

    /// The source as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition. `Err` says why it yields no bool (an evaluation error
    /// such as a missing key, or a value of another type), for the trace.
    pub(crate) fn eval(&self, bindings: &Context<'_, '_>) -> Result<bool, String> {
        match cel::Value::resolve(&self.ast, bindings) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("expr yielded {}, not a bool", other.type_of())),
            Err(e) => Err(format!("expr error: {e}")),
        }
    }
}

/// The variables a condition sees: the job as `job`, the caller's time as `now_ms`.
pub(crate) fn bindings(job: &Value, now_ms: i64) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(Arc::clone(env()));
    ctx.add_variable_from_value(JOB_VAR, to_cel(job));
    ctx.add_variable_from_value(NOW_VAR, now_ms);
    ctx
}

/// JSON to CEL. Integers become `int` when they fit, so that `job.job_priority_value + 1`
/// works (the `cel` crate's serde path makes every non-negative integer a `uint`, and CEL
/// does no arithmetic across `int` and `uint`).
pub(crate) fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            // Without arbitrary precision, every other JSON number is an f64.
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => cel::Value::Map(Map {
            map: Arc::new(o.iter().map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))).collect()),
        }),
    }
}

/// The parser's report, one line per error without the echo of the source and the caret
/// line under it: `1:4: Syntax error: mismatched input '<EOF>' expecting ...`.
fn condense(report: &str) -> String {
    let errors: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("ERROR: "))
        .map(|l| l.strip_prefix("<input>:").unwrap_or(l))
        .take(3)
        .collect();
    if errors.is_empty() { report.to_owned() } else { errors.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_integers_are_cel_ints_so_arithmetic_works() {
        assert_eq!(to_cel(&json!(7)), cel::Value::Int(7));
        assert_eq!(to_cel(&json!(u64::MAX)), cel::Value::UInt(u64::MAX));
        assert_eq!(to_cel(&json!(1.5)), cel::Value::Float(1.5));
        let e = Expr::compile("r", "job.p + 1 == 8").unwrap();
        assert_eq!(e.eval(&bindings(&json!({"p": 7}), 0)), Ok(true));
    }

    #[test]
    fn the_functions_docs_routing_md_lists_are_available() {
        let job = json!({"s": "hello", "l": [1, 2, 3], "m": {"k": 1}, "p": 5, "f": 2.5});
        for src in [
            "job.s.startsWith('he') && job.s.endsWith('lo') && job.s.contains('ll')",
            "size(job.l) == 3 && job.l.size() == 3 && 2 in job.l && 'k' in job.m",
            "has(job.m.k) && !has(job.m.x)",
            "job.l.all(x, x > 0) && job.l.exists_one(x, x == 2)",
            "job.l.filter(x, x > 1).map(x, x * 10) == [20, 30]",
            "int(job.f) == 2 && double(job.p) == 5.0 && uint(job.p) == 5u && string(job.p) == '5'",
            "bytes('a') == b'a' && type(job.p) == int && dyn(job.p) == 5",
            "job.f > job.p / 2 && job.p < 5.5 && job.p == 5u",
            "job.?missing.orValue(7) == 7 && optional.of(1).hasValue()",
            "job.p % 2 == 1 && -job.p == -5 && (job.p > 1 ? true : false)",
        ] {
            let e = Expr::compile("r", src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.eval(&bindings(&job, 0)), Ok(true), "{src}");
        }
    }

    #[test]
    fn now_ms_is_the_callers_time() {
        let e = Expr::compile("r", "now_ms - job.submitted_at_ms > 60000").unwrap();
        let job = json!({"submitted_at_ms": 1_000});
        assert_eq!(e.eval(&bindings(&job, 61_001)), Ok(true));
        assert_eq!(e.eval(&bindings(&job, 61_000)), Ok(false));
    }

    #[test]
    fn evaluation_errors_are_reasons_not_panics() {
        let job = json!({"a": 1, "s": "x", "l": []});
        for (src, want) in [
            ("job.missing == 1", "expr error: No such key: missing"),
            ("job.a / 0 == 1", "expr error: Division by zero"),
            ("job.l[3] == 1", "expr error: Index out of bounds"),
            ("job.s > 1", "expr error:"),
            ("job.a", "expr yielded int, not a bool"),
            ("job.s.matches('x')", "expr error: Undeclared reference to 'matches'"),
        ] {
            let e = Expr::compile("r", src).unwrap();
            let got = e.eval(&bindings(&job, 0)).unwrap_err();
            assert!(got.starts_with(want), "{src}: {got}");
        }
    }

    #[test]
    fn syntax_errors_are_condensed_to_one_line_each() {
        let Err(RulesError::ExprSyntax { message, .. }) = Expr::compile("r", "1 +") else {
            panic!("expected a syntax error")
        };
        assert!(message.starts_with("1:4: Syntax error: mismatched input"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }
}
