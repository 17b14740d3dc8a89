//! JSON to [`Expr`]. Every check happens here, so that evaluation cannot fail.

use regex::RegexBuilder;
use serde_json::{Map, Value};

use crate::{CmpOp, Cond, ElemMatch, Expr, FieldPath, FilterError, RegexCond, RegexOptions, TypeName};

/// What a filter may ask for. A filter comes from the network, so every dimension that
/// costs memory or time when it is parsed or evaluated is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How deep objects and arrays may nest in the filter, the outer object being level 1
    /// (`{"a": {"$in": [1]}}` is 3 deep). Default 16.
    pub max_depth: usize,
    /// How many conditions (each operator, implicit equality and logical combination)
    /// the filter may hold. Default 256.
    pub max_nodes: usize,
    /// How many values an `$in`, `$nin` or `$all` may list. Default 1,000.
    pub max_list_len: usize,
    /// How long a `$regex` pattern may be, in bytes. Default 256.
    pub max_regex_len: usize,
    /// How large one compiled `$regex` may be, in bytes, and how large its lazy DFA cache
    /// may grow (`RegexBuilder::size_limit` and `dfa_size_limit`). The regex crate runs
    /// in linear time, so this bounds memory, not backtracking. Default 256 KiB.
    pub max_regex_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_nodes: 256,
            max_list_len: 1_000,
            max_regex_len: 256,
            max_regex_size: 256 << 10,
        }
    }
}

/// Field-level operators this crate implements.
const FIELD_OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
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
    "$not",
];

/// MongoDB query operators refused on purpose, so that the message says "not supported"
/// rather than "unknown".
const UNSUPPORTED: &[&str] = &[
    "$where",
    "$expr",
    "$text",
    "$jsonSchema",
    "$comment",
    "$sampleRate",
    "$mod",
    "$bitsAllSet",
    "$bitsAllClear",
    "$bitsAnySet",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
    "$maxDistance",
    "$minDistance",
];

const TYPE_EXPECTED: &str = "a type name (double, string, object, array, bool, null, int, long, number), \
     a type code (1, 2, 3, 4, 8, 10, 16, 18) or a non-empty array of them";

pub(crate) fn parse(v: &Value, limits: &Limits) -> Result<Expr, FilterError> {
    Parser { limits, nodes: 0 }.document(v, "", 1)
}

struct Parser<'l> {
    limits: &'l Limits,
    nodes: usize,
}

impl Parser<'_> {
    /// A filter document: the whole filter, an item of `$and`/`$or`/`$nor`, or the
    /// operand of a document `$elemMatch`. `depth` is its own level.
    fn document(&mut self, v: &Value, loc: &str, depth: usize) -> Result<Expr, FilterError> {
        let Value::Object(map) = v else {
            return Err(FilterError::NotAnObject { path: loc.to_owned(), found: json_type(v) });
        };
        self.enter(depth, loc)?;
        let mut items = Vec::with_capacity(map.len());
        for (key, value) in map {
            if !key.starts_with('$') {
                let path = FieldPath::parse(key).map_err(|reason| FilterError::InvalidPath {
                    field: key.clone(),
                    path: loc.to_owned(),
                    reason,
                })?;
                items.push(self.field(path, value, &join(loc, key), depth + 1)?);
                continue;
            }
            let op = key.as_str();
            let build: fn(Vec<Expr>) -> Expr = match op {
                "$and" => Expr::And,
                "$or" => Expr::Or,
                "$nor" => Expr::Nor,
                "$not" => {
                    return Err(misplaced(
                        op,
                        loc,
                        "$not negates a field's operators, as in {\"price\": {\"$not\": {\"$gt\": 1}}}; \
                         use $nor to negate whole filters",
                    ));
                }
                _ if FIELD_OPS.contains(&op) => {
                    return Err(misplaced(
                        op,
                        loc,
                        "field operators go inside a field, as in {\"qty\": {\"$gt\": 1}}",
                    ));
                }
                _ => return Err(unknown_or_unsupported(op, loc)),
            };
            items.push(self.logical(op, build, value, loc, depth + 1)?);
        }
        if items.len() == 1 {
            return Ok(items.pop().expect("exactly one item"));
        }
        self.count(loc)?;
        Ok(Expr::And(items))
    }

    /// `$and`, `$or`, `$nor` at `loc`; `depth` is the level of the operand array.
    fn logical(
        &mut self,
        op: &str,
        build: fn(Vec<Expr>) -> Expr,
        v: &Value,
        loc: &str,
        depth: usize,
    ) -> Result<Expr, FilterError> {
        let items = match v {
            Value::Array(items) if !items.is_empty() => items,
            _ => return Err(invalid(op, loc, "a non-empty array of filter objects")),
        };
        let at = join(loc, op);
        self.enter(depth, &at)?;
        self.count(loc)?;
        let mut subs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            subs.push(self.document(item, &join(&at, &i.to_string()), depth + 1)?);
        }
        Ok(build(subs))
    }

    /// The value of a field key: an operator object or a literal to equal.
    fn field(&mut self, path: FieldPath, v: &Value, loc: &str, depth: usize) -> Result<Expr, FilterError> {
        if let Value::Object(map) = v
            && map.keys().any(|k| k.starts_with('$'))
        {
            if map.keys().any(|k| !k.starts_with('$')) {
                return Err(FilterError::MixedOperatorsAndFields { path: loc.to_owned() });
            }
            self.enter(depth, loc)?;
            let conds = self.operators(map, loc, depth)?;
            return Ok(Expr::Field { path, conds });
        }
        let literal = self.literal(v, loc, depth)?;
        self.count(loc)?;
        Ok(Expr::Field { path, conds: vec![Cond::Eq(literal)] })
    }

    /// An object of field operators (its keys all start with `$`) at level `depth`.
    fn operators(
        &mut self,
        map: &Map<String, Value>,
        loc: &str,
        depth: usize,
    ) -> Result<Vec<Cond>, FilterError> {
        if map.contains_key("$options") && !map.contains_key("$regex") {
            return Err(misplaced("$options", loc, "$options needs a $regex in the same object"));
        }
        let mut conds = Vec::with_capacity(map.len());
        for (op, operand) in map {
            let inner = depth + 1;
            let cond = match op.as_str() {
                "$eq" => Cond::Eq(self.literal(operand, loc, inner)?),
                "$ne" => Cond::Ne(self.literal(operand, loc, inner)?),
                "$gt" => Cond::Cmp(CmpOp::Gt, self.literal(operand, loc, inner)?),
                "$gte" => Cond::Cmp(CmpOp::Gte, self.literal(operand, loc, inner)?),
                "$lt" => Cond::Cmp(CmpOp::Lt, self.literal(operand, loc, inner)?),
                "$lte" => Cond::Cmp(CmpOp::Lte, self.literal(operand, loc, inner)?),
                "$in" => Cond::In(self.list(op, operand, loc, inner)?),
                "$nin" => Cond::Nin(self.list(op, operand, loc, inner)?),
                "$exists" => Cond::Exists(match operand {
                    Value::Bool(b) => *b,
                    // MongoDB's shell habit: `{$exists: 1}`.
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    _ => return Err(invalid(op, loc, "true or false")),
                }),
                "$type" => Cond::Type(self.types(operand, loc, inner)?),
                "$regex" => Cond::Regex(Box::new(self.regex(operand, map.get("$options"), loc)?)),
                "$options" => continue,
                "$size" => {
                    Cond::Size(size(operand).ok_or_else(|| invalid(op, loc, "a non-negative whole number"))?)
                }
                "$all" => self.all(operand, loc, inner)?,
                "$elemMatch" => Cond::ElemMatch(Box::new(self.elem_match(operand, loc, inner)?)),
                "$not" => {
                    let expected = "an object of operators, as in {\"$not\": {\"$gt\": 5}}";
                    let Value::Object(negated) = operand else { return Err(invalid(op, loc, expected)) };
                    if negated.is_empty() || negated.keys().any(|k| !k.starts_with('$')) {
                        return Err(invalid(op, loc, expected));
                    }
                    let at = join(loc, op);
                    self.enter(inner, &at)?;
                    Cond::Not(self.operators(negated, &at, inner)?)
                }
                "$and" | "$or" | "$nor" => {
                    return Err(misplaced(
                        op,
                        loc,
                        "logical operators combine whole filters, as in {\"$or\": [{\"a\": 1}, {\"b\": 2}]}",
                    ));
                }
                _ => return Err(unknown_or_unsupported(op, loc)),
            };
            self.count(loc)?;
            conds.push(cond);
        }
        Ok(conds)
    }

    /// The operand of `$elemMatch` on the field at `loc`, at level `depth`.
    fn elem_match(&mut self, v: &Value, loc: &str, depth: usize) -> Result<ElemMatch, FilterError> {
        let Value::Object(map) = v else {
            return Err(invalid(
                "$elemMatch",
                loc,
                "an object: a filter for elements that are documents, or operators for element values",
            ));
        };
        let at = join(loc, "$elemMatch");
        // MongoDB's rule: a field-level operator makes it the value form; `$and`, `$or`
        // and `$nor` belong to the document form.
        let value_form =
            map.keys().any(|k| k.starts_with('$') && !matches!(k.as_str(), "$and" | "$or" | "$nor"));
        if !value_form {
            return Ok(ElemMatch::Doc(self.document(v, &at, depth)?));
        }
        if map.keys().any(|k| !k.starts_with('$')) {
            return Err(FilterError::MixedOperatorsAndFields { path: at });
        }
        self.enter(depth, &at)?;
        Ok(ElemMatch::Value(self.operators(map, &at, depth)?))
    }

    /// `$all`: plain values, or only `{$elemMatch: ...}` objects (MongoDB refuses a mix).
    fn all(&mut self, v: &Value, loc: &str, depth: usize) -> Result<Cond, FilterError> {
        let Value::Array(items) = v else {
            return Err(invalid("$all", loc, "an array of values or of {\"$elemMatch\": ...} objects"));
        };
        self.check_len("$all", items.len(), loc)?;
        self.enter(depth, loc)?;
        let is_elem_match = |x: &Value| x.as_object().is_some_and(|m| m.contains_key("$elemMatch"));
        if !items.iter().any(is_elem_match) {
            return Ok(Cond::All(self.values("$all", items, loc, depth + 1)?));
        }
        let mut ems = Vec::with_capacity(items.len());
        for item in items {
            match item.as_object().filter(|m| m.len() == 1).and_then(|m| m.get("$elemMatch")) {
                Some(operand) => {
                    self.enter(depth + 1, loc)?;
                    ems.push(self.elem_match(operand, loc, depth + 2)?);
                }
                _ => {
                    return Err(invalid(
                        "$all",
                        loc,
                        "either values only or {\"$elemMatch\": ...} objects only",
                    ));
                }
            }
        }
        Ok(Cond::AllElemMatch(ems))
    }

    /// The array operand of `$in` / `$nin`, at level `depth`.
    fn list(&mut self, op: &str, v: &Value, loc: &str, depth: usize) -> Result<Vec<Value>, FilterError> {
        let Value::Array(items) = v else { return Err(invalid(op, loc, "an array of values")) };
        self.check_len(op, items.len(), loc)?;
        self.enter(depth, loc)?;
        self.values(op, items, loc, depth + 1)
    }

    /// Literal list items; `depth` is the level of the items.
    fn values(
        &mut self,
        op: &str,
        items: &[Value],
        loc: &str,
        depth: usize,
    ) -> Result<Vec<Value>, FilterError> {
        items
            .iter()
            .map(|item| {
                if item.as_object().is_some_and(|m| m.keys().any(|k| k.starts_with('$'))) {
                    // `{"$regex": ...}` inside `$in` is how a regex would have to be
                    // spelt in JSON; say so rather than compare with a literal object.
                    return Err(invalid(
                        op,
                        loc,
                        "plain values (operators and regular expressions are not supported in this list)",
                    ));
                }
                self.literal(item, loc, depth)
            })
            .collect()
    }

    fn types(&self, v: &Value, loc: &str, depth: usize) -> Result<Vec<TypeName>, FilterError> {
        let one = |x: &Value| {
            match x {
                Value::String(s) => TypeName::from_name(s),
                Value::Number(n) => whole(n).and_then(TypeName::from_code),
                _ => None,
            }
            .ok_or_else(|| invalid("$type", loc, TYPE_EXPECTED))
        };
        match v {
            Value::Array(items) if items.is_empty() => Err(invalid("$type", loc, TYPE_EXPECTED)),
            Value::Array(items) => {
                self.check_len("$type", items.len(), loc)?;
                self.enter(depth, loc)?;
                items.iter().map(one).collect()
            }
            _ => Ok(vec![one(v)?]),
        }
    }

    fn regex(&self, pattern: &Value, options: Option<&Value>, loc: &str) -> Result<RegexCond, FilterError> {
        let Value::String(pattern) = pattern else { return Err(invalid("$regex", loc, "a string pattern")) };
        if pattern.len() > self.limits.max_regex_len {
            return Err(FilterError::RegexTooLong {
                path: loc.to_owned(),
                len: pattern.len(),
                limit: self.limits.max_regex_len,
            });
        }
        let letters = match options {
            None => "",
            Some(Value::String(s)) => s,
            Some(_) => return Err(invalid("$options", loc, "a string of the letters i, m, s, x")),
        };
        let mut options = RegexOptions::default();
        for letter in letters.chars() {
            match letter {
                'i' => options.case_insensitive = true,
                'm' => options.multi_line = true,
                's' => options.dot_all = true,
                'x' => options.extended = true,
                _ => return Err(invalid("$options", loc, "a string of the letters i, m, s, x")),
            }
        }
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(options.case_insensitive)
            .multi_line(options.multi_line)
            .dot_matches_new_line(options.dot_all)
            .ignore_whitespace(options.extended)
            .size_limit(self.limits.max_regex_size)
            .dfa_size_limit(self.limits.max_regex_size)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => {
                    FilterError::RegexTooLarge { path: loc.to_owned(), limit: self.limits.max_regex_size }
                }
                other => FilterError::InvalidRegex { path: loc.to_owned(), message: other.to_string() },
            })?;
        Ok(RegexCond { pattern: pattern.clone(), options, regex })
    }

    /// A literal operand whose own level is `depth`.
    fn literal(&self, v: &Value, loc: &str, depth: usize) -> Result<Value, FilterError> {
        if !fits(v, depth, self.limits.max_depth) {
            return Err(FilterError::TooDeep { path: loc.to_owned(), limit: self.limits.max_depth });
        }
        Ok(v.clone())
    }

    fn enter(&self, depth: usize, loc: &str) -> Result<(), FilterError> {
        if depth > self.limits.max_depth {
            return Err(FilterError::TooDeep { path: loc.to_owned(), limit: self.limits.max_depth });
        }
        Ok(())
    }

    fn count(&mut self, loc: &str) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(FilterError::TooManyNodes { path: loc.to_owned(), limit: self.limits.max_nodes });
        }
        Ok(())
    }

    fn check_len(&self, op: &str, len: usize, loc: &str) -> Result<(), FilterError> {
        if len > self.limits.max_list_len {
            return Err(FilterError::ListTooLong {
                op: op.to_owned(),
                path: loc.to_owned(),
                len,
                limit: self.limits.max_list_len,
            });
        }
        Ok(())
    }
}

/// Whether `v`, at level `depth`, nests no deeper than `max`. Recursion stops at `max`,
/// so a hostile literal cannot exhaust the stack here.
fn fits(v: &Value, depth: usize, max: usize) -> bool {
    match v {
        Value::Array(items) => depth <= max && items.iter().all(|x| fits(x, depth + 1, max)),
        Value::Object(map) => depth <= max && map.values().all(|x| fits(x, depth + 1, max)),
        _ => true,
    }
}

/// `$size` accepts `2` and `2.0` (MongoDB does), not `-1` or `2.5`.
fn size(v: &Value) -> Option<usize> {
    let Value::Number(n) = v else { return None };
    usize::try_from(whole(n)?).ok()
}

/// An integral number, given as an integer or as a float with no fraction.
fn whole(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // The bounds keep the cast exact.
    (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64)
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn join(loc: &str, segment: &str) -> String {
    if loc.is_empty() { segment.to_owned() } else { format!("{loc}.{segment}") }
}

fn invalid(op: &str, loc: &str, expected: &'static str) -> FilterError {
    FilterError::InvalidOperand { op: op.to_owned(), path: loc.to_owned(), expected }
}

fn misplaced(op: &str, loc: &str, reason: &'static str) -> FilterError {
    FilterError::MisplacedOperator { op: op.to_owned(), path: loc.to_owned(), reason }
}

fn unknown_or_unsupported(op: &str, loc: &str) -> FilterError {
    if UNSUPPORTED.contains(&op) {
        FilterError::UnsupportedOperator { op: op.to_owned(), path: loc.to_owned() }
    } else {
        FilterError::UnknownOperator { op: op.to_owned(), path: loc.to_owned() }
    }
}
