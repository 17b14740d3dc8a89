//! Dotted field paths and MongoDB's way of walking them through arrays.

use serde_json::Value;

/// A dotted field path such as `size.uom` or `items.0.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    dotted: String,
    segments: Vec<Segment>,
}

/// One segment of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    name: String,
    index: Option<usize>,
}

impl Segment {
    /// The segment as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The array index this segment also stands for, when it is a canonical decimal
    /// number (`0`, `12`; not `01` or `+1`).
    pub fn index(&self) -> Option<usize> {
        self.index
    }
}

impl FieldPath {
    /// Splits and checks a dotted path; the error is the reason it was refused.
    pub(crate) fn parse(dotted: &str) -> Result<Self, &'static str> {
        if dotted.is_empty() {
            return Err("a field path cannot be empty");
        }
        let mut segments = Vec::new();
        for name in dotted.split('.') {
            if name.is_empty() {
                return Err("a field path cannot have an empty segment");
            }
            if name.starts_with('$') {
                return Err(
                    "a path segment cannot start with $ (positional and operator paths are not supported)",
                );
            }
            // Mongo only treats the canonical spelling as an index: `a.01` is a field name.
            let canonical =
                name.bytes().all(|b| b.is_ascii_digit()) && (name == "0" || !name.starts_with('0'));
            let index = if canonical { name.parse().ok() } else { None };
            segments.push(Segment { name: name.to_owned(), index });
        }
        Ok(Self { dotted: dotted.to_owned(), segments })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.dotted
    }

    /// The segments, at least one.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Every value the path reaches in `doc`, following MongoDB's path iterator.
    ///
    /// Arrays met before the last segment are traversed: a field name looks into each
    /// element that is an object (an object without the field reaches "missing"; scalars
    /// and nested arrays reach nothing). A numeric segment selects the element at that
    /// index and also looks into object elements that have a field of that name. Values
    /// are returned whole: expanding arrays is up to the operator, and [`Reached::expand`]
    /// says whether it may (MongoDB does not look into an array that the path's last
    /// segment picked by index).
    pub(crate) fn resolve<'a>(&self, doc: &'a Value) -> Vec<Reached<'a>> {
        let mut out = Vec::new();
        walk(doc, &self.segments, &mut out);
        out
    }
}

/// One place a path reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reached<'a> {
    /// `None`: the field is missing there.
    pub(crate) value: Option<&'a Value>,
    /// Whether an array here stands for its elements too.
    pub(crate) expand: bool,
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted)
    }
}

fn walk<'a>(value: &'a Value, segments: &[Segment], out: &mut Vec<Reached<'a>>) {
    let Some((segment, rest)) = segments.split_first() else {
        out.push(Reached { value: Some(value), expand: true });
        return;
    };
    match value {
        Value::Object(map) => match map.get(&segment.name) {
            Some(child) => walk(child, rest, out),
            None => out.push(Reached { value: None, expand: true }),
        },
        Value::Array(items) => match segment.index {
            None => {
                for item in items.iter().filter(|item| item.is_object()) {
                    walk(item, segments, out);
                }
            }
            Some(index) => {
                for (at, item) in items.iter().enumerate() {
                    // MongoDB also counts an object element *without* a field named like
                    // the index as missing, so that `{"items.0.name": null}` matches any
                    // array of documents; that answer is not useful, and is the one
                    // deliberate difference in path walking.
                    if let Value::Object(map) = item
                        && let Some(child) = map.get(&segment.name)
                    {
                        walk(child, rest, out);
                    }
                    if at == index {
                        match item {
                            _ if rest.is_empty() => out.push(Reached { value: Some(item), expand: false }),
                            Value::Object(_) | Value::Array(_) => walk(item, rest, out),
                            _ => {}
                        }
                    }
                }
            }
        },
        _ => out.push(Reached { value: None, expand: true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(path: &str, doc: &Value) -> Vec<Option<Value>> {
        FieldPath::parse(path).unwrap().resolve(doc).into_iter().map(|r| r.value.cloned()).collect()
    }

    #[test]
    fn segments_and_indices() {
        let p = FieldPath::parse("items.0.01.name").unwrap();
        let idx: Vec<_> = p.segments().iter().map(Segment::index).collect();
        assert_eq!(idx, [None, Some(0), None, None]);
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a.$").is_err());
    }

    #[test]
    fn traverses_arrays_of_documents() {
        let doc = json!({"a": [{"b": 1}, {"c": 2}, 3, [{"b": 4}]]});
        assert_eq!(found("a.b", &doc), [Some(json!(1)), None]);
        assert_eq!(found("a.1.c", &doc), [Some(json!(2))]);
        assert_eq!(found("a.9", &doc), Vec::<Option<Value>>::new());
        assert_eq!(found("a.2.b", &doc), Vec::<Option<Value>>::new());
        assert_eq!(found("a.3.b", &doc), [Some(json!(4))]);
        assert_eq!(found("a.b", &json!({"a": [1, 2]})), Vec::<Option<Value>>::new());
        assert_eq!(found("a.b", &json!({"a": 5})), [None]);
        assert_eq!(found("a", &json!({"a": [1]})), [Some(json!([1]))]);
    }
}
