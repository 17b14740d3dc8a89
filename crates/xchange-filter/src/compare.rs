//! MongoDB's order over JSON values, and the `$type` names.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// MongoDB's type classes in its cross-type order (the BSON types JSON can carry).
///
/// Values of different classes never compare with `$gt`/`$lt`; sorting orders them by
/// class. Integers and floats share one class and compare by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Null,
    Number,
    String,
    Object,
    Array,
    Bool,
}

pub(crate) fn class(v: &Value) -> Class {
    match v {
        Value::Null => Class::Null,
        Value::Number(_) => Class::Number,
        Value::String(_) => Class::String,
        Value::Object(_) => Class::Object,
        Value::Array(_) => Class::Array,
        Value::Bool(_) => Class::Bool,
    }
}

/// MongoDB's total order: class first, then within the class.
///
/// Objects compare entry by entry in key order (class of the value, then key, then value),
/// then by length; arrays element by element, then by length. Keys are taken sorted, so
/// `{a:1, b:2}` and `{b:2, a:1}` are equal: MongoDB would see two different documents,
/// but a `serde_json::Value` does not keep key order unless the `preserve_order` feature
/// is on, and an answer that changed with a Cargo feature would be worse.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare_values(p, q);
                if o.is_ne() {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let xs = sorted_entries(x);
            let ys = sorted_entries(y);
            for ((kp, p), (kq, q)) in xs.iter().zip(&ys) {
                let o = class(p).cmp(&class(q)).then_with(|| kp.cmp(kq)).then_with(|| compare_values(p, q));
                if o.is_ne() {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => class(a).cmp(&class(b)),
    }
}

/// Equality as `$eq` sees it: `compare_values(a, b) == Equal`, without sorting keys.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y).is_eq(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| values_equal(p, q)))
        }
        _ => a == b,
    }
}

fn sorted_entries(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    // Already sorted unless serde_json's `preserve_order` is on somewhere in the build.
    entries.sort_unstable_by(|p, q| p.0.cmp(q.0));
    entries
}

enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i.into())
    } else if let Some(u) = n.as_u64() {
        Num::Int(u.into())
    } else {
        // Only reachable with serde_json's `arbitrary_precision`, where a huge number may
        // not fit: NaN sorts below every number, which is where MongoDB puts it.
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Exact comparison: `9007199254740993` is greater than `9007199254740992.0`, which a
/// conversion to `f64` would call equal.
fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => compare_floats(x, y),
        (Num::Int(x), Num::Float(y)) => compare_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => compare_int_float(y, x).reverse(),
    }
}

fn compare_floats(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.partial_cmp(&y).expect("neither side is NaN"),
    }
}

fn compare_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    // Both bounds are powers of two, so every float strictly inside converts exactly.
    if f >= i128::MAX as f64 {
        return Ordering::Less;
    }
    if f < i128::MIN as f64 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    i.cmp(&(whole as i128)).then_with(|| compare_floats(whole, f))
}

/// A `$type` operand: the BSON type names that a JSON document can hold, plus `number`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    /// `"double"`, code 1: a JSON number written with a fraction or an exponent (`1.0`,
    /// `2e3`), or an integer too large for a signed 64-bit long.
    Double,
    /// `"string"`, code 2.
    String,
    /// `"object"`, code 3.
    Object,
    /// `"array"`, code 4.
    Array,
    /// `"bool"`, code 8.
    Bool,
    /// `"null"`, code 10.
    Null,
    /// `"int"`, code 16: an integer that fits in 32 bits.
    Int,
    /// `"long"`, code 18: an integer that fits in 64 bits but not in 32.
    Long,
    /// `"number"` (no code): any of double, int, long.
    Number,
}

impl TypeName {
    /// Looks a type up by its MongoDB alias.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "double" => Self::Double,
            "string" => Self::String,
            "object" => Self::Object,
            "array" => Self::Array,
            "bool" => Self::Bool,
            "null" => Self::Null,
            "int" => Self::Int,
            "long" => Self::Long,
            "number" => Self::Number,
            _ => return None,
        })
    }

    /// Looks a type up by its BSON code.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => Self::Double,
            2 => Self::String,
            3 => Self::Object,
            4 => Self::Array,
            8 => Self::Bool,
            10 => Self::Null,
            16 => Self::Int,
            18 => Self::Long,
            _ => return None,
        })
    }

    /// The MongoDB alias.
    pub fn name(self) -> &'static str {
        match self {
            Self::Double => "double",
            Self::String => "string",
            Self::Object => "object",
            Self::Array => "array",
            Self::Bool => "bool",
            Self::Null => "null",
            Self::Int => "int",
            Self::Long => "long",
            Self::Number => "number",
        }
    }

    /// Whether `v` (itself, not its elements) is of this type.
    pub fn matches(self, v: &Value) -> bool {
        match (self, v) {
            (Self::Number, Value::Number(_)) => true,
            (Self::Double | Self::Int | Self::Long, Value::Number(n)) => number_type(n) == self,
            (Self::String, Value::String(_))
            | (Self::Object, Value::Object(_))
            | (Self::Array, Value::Array(_))
            | (Self::Bool, Value::Bool(_))
            | (Self::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// The BSON type a driver would store this JSON number as.
pub(crate) fn number_type(n: &Number) -> TypeName {
    match n.as_i64() {
        Some(i) if i32::try_from(i).is_ok() => TypeName::Int,
        Some(_) => TypeName::Long,
        None => TypeName::Double,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_exactly_across_representations() {
        let c = |a: Value, b: Value| compare_values(&a, &b);
        assert_eq!(c(json!(1), json!(1.0)), Ordering::Equal);
        assert_eq!(c(json!(9007199254740993_i64), json!(9007199254740992.0)), Ordering::Greater);
        assert_eq!(c(json!(-3), json!(-3.5)), Ordering::Greater);
        assert_eq!(c(json!(3), json!(3.5)), Ordering::Less);
        assert_eq!(c(json!(u64::MAX), json!(-1)), Ordering::Greater);
        assert_eq!(c(json!(1e300), json!(u64::MAX)), Ordering::Greater);
    }

    #[test]
    fn classes_order_like_mongodb() {
        let order = [json!(null), json!(-5), json!("a"), json!({}), json!([]), json!(false), json!(true)];
        for w in order.windows(2) {
            assert_eq!(compare_values(&w[0], &w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
        }
        assert!(values_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
    }

    #[test]
    fn number_types() {
        assert!(TypeName::Int.matches(&json!(5)));
        assert!(TypeName::Long.matches(&json!(5_000_000_000_i64)));
        assert!(TypeName::Double.matches(&json!(5.0)));
        assert!(TypeName::Double.matches(&json!(u64::MAX)));
        assert!(TypeName::Number.matches(&json!(5.5)));
        assert!(!TypeName::Number.matches(&json!("5")));
    }
}
