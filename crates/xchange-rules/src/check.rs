//! Static checks on a parsed CEL condition, so that a rules file that can never work, or
//! could crash or stall the service, is refused at load rather than met on a job.
//!
//! - **Depth** at most [`crate::MAX_EXPR_DEPTH`]: the `cel` interpreter recurses once per
//!   level, about 40 KiB of stack a level in a debug build, and a stack overflow aborts
//!   the process; it cannot be caught.
//! - **Comprehensions** (`all`, `exists`, `exists_one`, `map`, `filter`) at most
//!   [`crate::MAX_COMPREHENSIONS`], none inside another's body: CEL has no loops, but a
//!   comprehension nested in another costs the product of two list sizes that the job
//!   controls; side by side they cost a sum.
//! - **Variables**: `job`, `now_ms`, comprehension variables and CEL's type names only,
//!   so that a typo (`jobs.x`) is an error now, not a skipped rule on every job.
//! - **Result**: a condition whose result is surely not a bool (`job.a + 1`, `"yes"`) is
//!   refused; one that may be (`job.flag`) is checked on each job.

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::{Context, IdedExpr};

use crate::RulesError;
use crate::expr::{JOB_VAR, NOW_VAR, env};

/// Runs every check on `ast`, the condition of rule `rule`.
pub(crate) fn check(rule: &str, ast: &IdedExpr) -> Result<(), RulesError> {
    let probe = Context::with_env(std::sync::Arc::clone(env()));
    let mut w = Walker {
        probe,
        bound: Vec::new(),
        inside: 0,
        comprehensions: 0,
        nested: false,
        deep: false,
        unknown: None,
    };
    w.walk(ast, 1);
    let rule = rule.to_owned();
    if w.deep {
        return Err(RulesError::ExprTooDeep { rule, max: crate::MAX_EXPR_DEPTH });
    }
    if w.nested {
        let reason = "a comprehension (all, exists, exists_one, map, filter) inside another is not allowed";
        return Err(RulesError::ExprTooCostly { rule, reason: reason.to_owned() });
    }
    if w.comprehensions > crate::MAX_COMPREHENSIONS {
        let reason = format!(
            "{} comprehensions (all, exists, exists_one, map, filter), over the limit of {}",
            w.comprehensions,
            crate::MAX_COMPREHENSIONS
        );
        return Err(RulesError::ExprTooCostly { rule, reason });
    }
    if let Some(name) = w.unknown {
        return Err(RulesError::ExprUnknownVariable { rule, name });
    }
    match kind(ast) {
        Kind::NotBool(found) => Err(RulesError::ExprNotBool { rule, found }),
        Kind::Bool | Kind::Unknown => Ok(()),
    }
}

struct Walker {
    /// A context without variables, to ask CEL whether a name means something by itself
    /// (the type names `int`, `string`, ...).
    probe: Context<'static, 'static>,
    /// Comprehension variables in scope.
    bound: Vec<String>,
    /// How many comprehension bodies enclose the node being walked.
    inside: usize,
    comprehensions: usize,
    nested: bool,
    deep: bool,
    unknown: Option<String>,
}

impl Walker {
    fn walk(&mut self, e: &IdedExpr, depth: usize) {
        if depth > crate::MAX_EXPR_DEPTH {
            // Stop here: the tree of a 1 KiB expression can be 500 levels deep.
            self.deep = true;
            return;
        }
        let next = depth + 1;
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.ident(name),
            Expr::Select(s) => self.walk(&s.operand, next),
            Expr::Call(c) => {
                if let Some(target) = &c.target {
                    self.walk(target, next);
                }
                c.args.iter().for_each(|a| self.walk(a, next));
            }
            Expr::List(l) => l.elements.iter().for_each(|x| self.walk(x, next)),
            Expr::Map(m) => m.entries.iter().for_each(|x| self.entry(&x.expr, next)),
            Expr::Struct(s) => s.entries.iter().for_each(|x| self.entry(&x.expr, next)),
            Expr::Comprehension(c) => {
                self.comprehensions += 1;
                self.nested |= self.inside > 0;
                // The range is evaluated once, outside the comprehension's scope: a
                // comprehension there runs before this one, not inside it.
                self.walk(&c.iter_range, next);
                let scope = self.bound.len();
                self.bound.extend([c.iter_var.clone(), c.accu_var.clone()]);
                self.bound.extend(c.iter_var2.iter().cloned());
                self.inside += 1;
                for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part, next);
                }
                self.inside -= 1;
                self.bound.truncate(scope);
            }
        }
    }

    fn entry(&mut self, e: &EntryExpr, depth: usize) {
        match e {
            EntryExpr::StructField(f) => self.walk(&f.value, depth),
            EntryExpr::MapEntry(m) => {
                self.walk(&m.key, depth);
                self.walk(&m.value, depth);
            }
        }
    }

    fn ident(&mut self, name: &str) {
        // `@`-names are the parser's own accumulators; `optional` is the namespace of
        // `optional.of(...)`, which CEL does not resolve as a name by itself.
        let known = [JOB_VAR, NOW_VAR, "optional"].contains(&name)
            || name.starts_with('@')
            || self.bound.iter().any(|b| b == name)
            || cel::Value::resolve(&IdedExpr { id: 0, expr: Expr::Ident(name.to_owned()) }, &self.probe)
                .is_ok();
        if !known && self.unknown.is_none() {
            self.unknown = Some(name.to_owned());
        }
    }
}

/// What a condition's result is known to be before it runs.
enum Kind {
    Bool,
    NotBool(&'static str),
    Unknown,
}

/// Functions and operators that always yield a bool.
const BOOL_FUNCTIONS: &[&str] = &[
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_&&_",
    "_||_",
    "!_",
    "@in",
    "@not_strictly_false",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "hasValue",
];

/// Functions and operators that never yield a bool, with what they yield.
const OTHER_FUNCTIONS: &[(&str, &str)] = &[
    ("_+_", "a sum or a concatenation"),
    ("_-_", "a number"),
    ("_*_", "a number"),
    ("_/_", "a number"),
    ("_%_", "a number"),
    ("-_", "a number"),
    ("size", "an int"),
    ("int", "an int"),
    ("uint", "a uint"),
    ("double", "a double"),
    ("string", "a string"),
    ("bytes", "bytes"),
    ("type", "a type"),
];

fn kind(e: &IdedExpr) -> Kind {
    match &e.expr {
        Expr::Literal(lit) => match lit {
            LiteralValue::Boolean(_) => Kind::Bool,
            LiteralValue::Int(_) => Kind::NotBool("an int"),
            LiteralValue::UInt(_) => Kind::NotBool("a uint"),
            LiteralValue::Double(_) => Kind::NotBool("a double"),
            LiteralValue::String(_) => Kind::NotBool("a string"),
            LiteralValue::Bytes(_) => Kind::NotBool("bytes"),
            LiteralValue::Null => Kind::NotBool("null"),
        },
        Expr::List(_) => Kind::NotBool("a list"),
        Expr::Map(_) => Kind::NotBool("a map"),
        // `has(job.x)` is a select that tests presence.
        Expr::Select(s) if s.test => Kind::Bool,
        Expr::Call(c) if c.func_name == "_?_:_" && c.args.len() == 3 => {
            match (kind(&c.args[1]), kind(&c.args[2])) {
                (Kind::Bool, Kind::Bool) => Kind::Bool,
                (Kind::NotBool(found), Kind::NotBool(_)) => Kind::NotBool(found),
                _ => Kind::Unknown,
            }
        }
        Expr::Call(c) if BOOL_FUNCTIONS.contains(&c.func_name.as_str()) => Kind::Bool,
        Expr::Call(c) => OTHER_FUNCTIONS
            .iter()
            .find(|(f, _)| *f == c.func_name)
            .map_or(Kind::Unknown, |(_, found)| Kind::NotBool(found)),
        // `all`/`exists` accumulate a bool, `map`/`filter` a list: the result is the
        // accumulator, whose kind is its initial value's.
        Expr::Comprehension(c) => match &c.result.expr {
            Expr::Ident(name) if *name == c.accu_var => kind(&c.accu_init),
            _ => kind(&c.result),
        },
        Expr::Unspecified | Expr::Ident(_) | Expr::Select(_) | Expr::Struct(_) => Kind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(src: &str) -> Result<(), RulesError> {
        let ast = env().parser().parse(src).expect("test sources parse");
        check("r", &ast)
    }

    #[test]
    fn ordinary_conditions_pass() {
        for src in [
            "size(job.job_objectives) > 3 && job.job_priority_value >= 5",
            "job.tags.exists(t, t.startsWith('gpu'))",
            "has(job.deadline_ms) ? job.deadline_ms - now_ms < 60000 : false",
            "type(job.x) == int",
            "job.?maybe.orValue(0) > 1",
            "optional.of(1).hasValue()",
            "job.items.filter(i, i.qty > 1).exists(i, i.qty > 5)",
            "job.flag",
            "{'a': job.x}.a == 1",
        ] {
            assert_eq!(checked(src), Ok(()), "{src}");
        }
    }

    #[test]
    fn deep_trees_are_refused_past_the_limit() {
        // `1 + 1 + ... > 0` with k terms is k + 1 levels deep: `>`, then one `+` per term
        // but the first, then the leaf.
        let fits = ["1"; crate::MAX_EXPR_DEPTH - 1].join(" + ") + " > 0";
        let over = ["1"; crate::MAX_EXPR_DEPTH].join(" + ") + " > 0";
        assert_eq!(checked(&fits), Ok(()));
        assert_eq!(
            checked(&over),
            Err(RulesError::ExprTooDeep { rule: "r".into(), max: crate::MAX_EXPR_DEPTH })
        );
    }

    #[test]
    fn nested_and_too_many_comprehensions_are_refused() {
        let nested = "job.a.exists(x, job.b.exists(y, x == y))";
        assert!(
            matches!(checked(nested), Err(RulesError::ExprTooCostly { reason, .. }) if reason.contains("inside"))
        );
        let three = "job.a.all(x, x > 0) && job.b.all(x, x > 0) && job.c.all(x, x > 0)";
        assert!(
            matches!(checked(three), Err(RulesError::ExprTooCostly { reason, .. }) if reason.contains("3 comp"))
        );
        // A comprehension in another's range runs before it, not inside it.
        assert_eq!(checked("job.a.map(x, x * 2).exists(y, y > 3)"), Ok(()));
    }

    #[test]
    fn unknown_variables_are_refused_but_bound_ones_pass() {
        assert_eq!(
            checked("jobs.x == 1"),
            Err(RulesError::ExprUnknownVariable { rule: "r".into(), name: "jobs".into() })
        );
        assert!(
            matches!(checked("job.a.exists(x, y > 1)"), Err(RulesError::ExprUnknownVariable { name, .. }) if name == "y")
        );
        // A comprehension variable is not visible after its comprehension.
        assert!(
            matches!(checked("job.a.exists(x, x > 1) && x > 1"), Err(RulesError::ExprUnknownVariable { name, .. }) if name == "x")
        );
    }

    #[test]
    fn results_that_are_surely_not_bool_are_refused() {
        for (src, found) in [
            ("job.a + 1", "a sum or a concatenation"),
            ("'yes'", "a string"),
            ("42", "an int"),
            ("size(job.a)", "an int"),
            ("job.a.map(x, x)", "a list"),
            ("true ? 1 : 2", "an int"),
            ("null", "null"),
            ("{'a': 1}", "a map"),
        ] {
            assert_eq!(checked(src), Err(RulesError::ExprNotBool { rule: "r".into(), found }), "{src}");
        }
        for maybe in ["job.flag", "true ? job.flag : false", "job.a.exists(x, x)", "job.m['k']"] {
            assert_eq!(checked(maybe), Ok(()), "{maybe}");
        }
    }
}
