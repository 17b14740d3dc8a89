//! The typed form of a filter, as [`Filter::parse`](crate::Filter::parse) builds it.

use regex::Regex;
use serde_json::Value;

use crate::{FieldPath, TypeName};

/// A boolean expression over one document.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Every item matches. `And(vec![])` is the empty filter `{}` and matches everything.
    And(Vec<Self>),
    /// At least one item matches (never empty).
    Or(Vec<Self>),
    /// No item matches (never empty).
    Nor(Vec<Self>),
    /// Conditions on one field path; all must hold, each on its own (`{a: {$gt: 1, $lt:
    /// 5}}` holds for `a: [0, 9]`: one element is above 1, another below 5).
    Field {
        /// The field.
        path: FieldPath,
        /// At least one.
        conds: Vec<Cond>,
    },
}

/// A condition on the values a field path reaches.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `$eq` and implicit equality: a value or an array element equals the operand, or
    /// the whole array does; `null` also matches a missing field.
    Eq(Value),
    /// `$ne`: not [`Eq`](Self::Eq) (so it matches a missing field).
    Ne(Value),
    /// `$gt`, `$gte`, `$lt`, `$lte`: only against values of the operand's type class.
    Cmp(CmpOp, Value),
    /// `$in`: [`Eq`](Self::Eq) to one of the values.
    In(Vec<Value>),
    /// `$nin`: not [`In`](Self::In).
    Nin(Vec<Value>),
    /// `$exists`.
    Exists(bool),
    /// `$type`: one of the types (a value or an array element; `array` the array itself).
    Type(Vec<TypeName>),
    /// `$regex` with its `$options`: strings only.
    Regex(Box<RegexCond>),
    /// `$size`: the field is an array of exactly this length.
    Size(usize),
    /// `$all` of values: [`Eq`](Self::Eq) to each of them (never empty; the empty list
    /// matches nothing, as in MongoDB).
    All(Vec<Value>),
    /// `$all` of `{$elemMatch: ...}` objects: each `$elemMatch` holds.
    AllElemMatch(Vec<ElemMatch>),
    /// `$elemMatch`: the field is an array with an element that satisfies it.
    ElemMatch(Box<ElemMatch>),
    /// `$not`: the conditions do not all hold (a missing field satisfies `$not`).
    Not(Vec<Self>),
}

/// The operand of `$elemMatch`.
#[derive(Debug, Clone)]
pub enum ElemMatch {
    /// `{$elemMatch: {product: "xyz", score: {$gte: 8}}}`: an element that is an object
    /// and matches this filter.
    Doc(Expr),
    /// `{$elemMatch: {$gte: 80, $lt: 85}}`: an element that satisfies all conditions
    /// itself (an element that is an array is not looked into).
    Value(Vec<Cond>),
}

/// The ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
}

impl CmpOp {
    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "$gt",
            Self::Gte => "$gte",
            Self::Lt => "$lt",
            Self::Lte => "$lte",
        }
    }

    /// Whether `value <op> operand` holds, given `value.cmp(operand)`.
    pub(crate) fn holds(self, o: std::cmp::Ordering) -> bool {
        match self {
            Self::Gt => o.is_gt(),
            Self::Gte => o.is_ge(),
            Self::Lt => o.is_lt(),
            Self::Lte => o.is_le(),
        }
    }
}

/// A compiled `$regex`.
#[derive(Debug, Clone)]
pub struct RegexCond {
    pub(crate) pattern: String,
    pub(crate) options: RegexOptions,
    pub(crate) regex: Regex,
}

impl RegexCond {
    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The `$options` flags.
    pub fn options(&self) -> RegexOptions {
        self.options
    }

    /// Whether the pattern matches somewhere in `s` (unanchored, like MongoDB).
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

/// The `$options` letters MongoDB documents for `$regex`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegexOptions {
    /// `i`: case-insensitive (Unicode simple case folding).
    pub case_insensitive: bool,
    /// `m`: `^` and `$` also match at line starts and ends.
    pub multi_line: bool,
    /// `s`: `.` also matches `\n`.
    pub dot_all: bool,
    /// `x`: whitespace is ignored and `#` starts a comment, in the pattern.
    pub extended: bool,
}
