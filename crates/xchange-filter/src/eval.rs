//! Matching a parsed filter against one JSON document, with MongoDB's array rules.
//!
//! A field path reaches zero or more values ([`FieldPath::resolve`]). Most operators
//! then test each value and, when a value is an array, each of its elements as well as
//! the array itself: `{tags: "red"}` matches `tags: ["red", "blank"]`, and `{tags:
//! ["red", "blank"]}` matches it too. `$size` and `$elemMatch` look at the arrays
//! themselves; `$exists` only asks whether anything was reached. `$ne`, `$nin` and `$not`
//! are the negations of the positive test over the same values, which is why they match
//! documents where the field is missing.

use serde_json::Value;

use crate::compare::{class, compare_values, values_equal};
use crate::path::Reached;
use crate::{CmpOp, Cond, ElemMatch, Expr};

impl Expr {
    /// Whether `doc` satisfies the expression.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Self::And(items) => items.iter().all(|e| e.matches(doc)),
            Self::Or(items) => items.iter().any(|e| e.matches(doc)),
            Self::Nor(items) => !items.iter().any(|e| e.matches(doc)),
            Self::Field { path, conds } => {
                let found = path.resolve(doc);
                conds.iter().all(|c| on_path(c, &found))
            }
        }
    }
}

/// `cond` over everything a path reached.
fn on_path(cond: &Cond, found: &[Reached<'_>]) -> bool {
    match cond {
        Cond::Ne(x) => !any_expanded(found, |v| eq(x, v)),
        Cond::Nin(xs) => !any_expanded(found, |v| xs.iter().any(|x| eq(x, v))),
        Cond::Not(conds) => !conds.iter().all(|c| on_path(c, found)),
        Cond::Exists(wanted) => found.iter().any(|r| r.value.is_some()) == *wanted,
        Cond::Size(_) | Cond::ElemMatch(_) => found.iter().any(|r| single(cond, r.value)),
        // MongoDB defines `$all` as the `$and` of one equality per value.
        Cond::All(xs) => !xs.is_empty() && xs.iter().all(|x| any_expanded(found, |v| eq(x, v))),
        Cond::AllElemMatch(ems) => {
            !ems.is_empty() && ems.iter().all(|em| found.iter().any(|r| elem_match(em, r.value)))
        }
        Cond::Eq(_) | Cond::Cmp(..) | Cond::In(_) | Cond::Type(_) | Cond::Regex(_) => {
            any_expanded(found, |v| single(cond, v))
        }
    }
}

/// Whether `test` holds for a reached value, an element of a reached array, or a
/// reached array as a whole. Only one level: the elements of a nested array are not
/// looked into.
fn any_expanded<'a>(found: &[Reached<'a>], test: impl Fn(Option<&'a Value>) -> bool) -> bool {
    found.iter().any(|r| match r.value {
        Some(Value::Array(items)) if r.expand => items.iter().any(|x| test(Some(x))) || test(r.value),
        v => test(v),
    })
}

/// `cond` on one value as it is, without looking into arrays: what MongoDB does for the
/// elements tested by a value-form `$elemMatch`.
fn single(cond: &Cond, v: Option<&Value>) -> bool {
    match cond {
        Cond::Eq(x) => eq(x, v),
        Cond::Ne(x) => !eq(x, v),
        Cond::Cmp(op, x) => cmp(*op, x, v),
        Cond::In(xs) => xs.iter().any(|x| eq(x, v)),
        Cond::Nin(xs) => !xs.iter().any(|x| eq(x, v)),
        Cond::Exists(wanted) => v.is_some() == *wanted,
        Cond::Type(types) => v.is_some_and(|v| types.iter().any(|t| t.matches(v))),
        Cond::Regex(r) => matches!(v, Some(Value::String(s)) if r.is_match(s)),
        Cond::Size(n) => matches!(v, Some(Value::Array(items)) if items.len() == *n),
        Cond::All(xs) => !xs.is_empty() && xs.iter().all(|x| eq(x, v)),
        Cond::AllElemMatch(ems) => !ems.is_empty() && ems.iter().all(|em| elem_match(em, v)),
        Cond::ElemMatch(em) => elem_match(em, v),
        Cond::Not(conds) => !conds.iter().all(|c| single(c, v)),
    }
}

/// Equality, with `null` standing for missing too.
fn eq(x: &Value, v: Option<&Value>) -> bool {
    match v {
        Some(v) => values_equal(v, x),
        None => x.is_null(),
    }
}

/// `$gt`-style operators hold only within a type class. `{$gte: null}` and `{$lte:
/// null}` are MongoDB's other spellings of `{$eq: null}`, missing included.
fn cmp(op: CmpOp, x: &Value, v: Option<&Value>) -> bool {
    let Some(v) = v else { return x.is_null() && matches!(op, CmpOp::Gte | CmpOp::Lte) };
    class(v) == class(x) && op.holds(compare_values(v, x))
}

fn elem_match(em: &ElemMatch, v: Option<&Value>) -> bool {
    let Some(Value::Array(items)) = v else { return false };
    match em {
        ElemMatch::Doc(expr) => items.iter().any(|item| item.is_object() && expr.matches(item)),
        ElemMatch::Value(conds) => items.iter().any(|item| conds.iter().all(|c| single(c, Some(item)))),
    }
}
