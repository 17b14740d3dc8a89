//! Sorting documents the way MongoDB's `sort()` orders them.
//!
//! Values of different types order by class: null (and missing) < numbers < strings <
//! objects < arrays < booleans (JSON has no MinKey or MaxKey). As in MongoDB, a field
//! that holds an array sorts by its smallest element when ascending and by its largest
//! when descending, and an empty array sorts before null. A path through an array of
//! documents (`tags.name`) considers every value it reaches, a document without the field
//! counting as null. Ties keep the input order.

use std::cmp::Ordering;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::compare::compare_values;
use crate::{FieldPath, FilterError};

/// How many fields one sort may name: each costs a path walk per document.
pub const MAX_SORT_FIELDS: usize = 32;

/// A parsed sort specification such as `{"priority": -1, "created": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sort {
    keys: Vec<SortKey>,
}

/// One field of a [`Sort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    path: FieldPath,
    direction: Direction,
}

impl SortKey {
    /// The field.
    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// A sort direction: `1` or `-1` in the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `1`
    Ascending,
    /// `-1`
    Descending,
}

/// What a document sorts by on one field: MongoDB's sort key, the smallest value the
/// path reaches (ascending) or the largest (descending), arrays standing for their
/// elements.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortValue {
    /// An empty array, which MongoDB sorts before null.
    EmptyArray,
    /// A value (null when the field is missing).
    Value(Value),
}

impl SortValue {
    fn key(&self) -> Key<'_> {
        match self {
            Self::EmptyArray => Key::EmptyArray,
            Self::Value(v) => Key::Value(v),
        }
    }
}

impl Sort {
    /// Parses `{"field": 1, "other": -1}` or `[{"field": 1}, {"other": -1}]`.
    ///
    /// A `serde_json::Value` object keeps its keys sorted by name unless serde_json's
    /// `preserve_order` feature is on somewhere in the build, so an object with several
    /// fields would silently sort by field name first. Such an object is therefore only
    /// accepted when this build keeps key order; otherwise it is refused, and the order
    /// can be kept by parsing the text itself ([`str::parse`], or deserializing a
    /// [`Sort`] as part of a request) or by writing the list form. An empty object is the
    /// empty sort, which keeps the input order.
    pub fn parse(v: &Value) -> Result<Self, FilterError> {
        match v {
            Value::Object(map) if map.len() > 1 && !maps_keep_insertion_order() => {
                Err(FilterError::InvalidSort {
                    path: String::new(),
                    reason: "this build's JSON objects do not keep key order, so a sort on several fields \
                         must be given as text or as a list such as [{\"a\": 1}, {\"b\": -1}]",
                })
            }
            Value::Object(map) => Self::from_entries(map.iter().map(|(k, v)| (k.as_str(), v))),
            Value::Array(items) => Self::from_list(items),
            _ => Err(FilterError::InvalidSort {
                path: String::new(),
                reason: "a sort must be an object or a list",
            }),
        }
    }

    fn from_list(items: &[Value]) -> Result<Self, FilterError> {
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_object() {
                Some(m) if m.len() == 1 => entries.extend(m.iter().map(|(k, v)| (k.as_str(), v))),
                _ => {
                    return Err(FilterError::InvalidSort {
                        path: i.to_string(),
                        reason: "each item of a sort list must be an object with one field, such as {\"a\": 1}",
                    });
                }
            }
        }
        Self::from_entries(entries.into_iter())
    }

    fn from_entries<'v>(entries: impl Iterator<Item = (&'v str, &'v Value)>) -> Result<Self, FilterError> {
        let mut keys: Vec<SortKey> = Vec::new();
        for (field, direction) in entries {
            let invalid = |reason| FilterError::InvalidSort { path: field.to_owned(), reason };
            if keys.len() == MAX_SORT_FIELDS {
                return Err(invalid("a sort may name at most 32 fields"));
            }
            let path = FieldPath::parse(field).map_err(invalid)?;
            let direction = match direction.as_f64() {
                Some(1.0) => Direction::Ascending,
                Some(-1.0) => Direction::Descending,
                _ => return Err(invalid("the direction must be 1 (ascending) or -1 (descending)")),
            };
            if keys.iter().any(|k| k.path == path) {
                return Err(invalid("the field appears twice in the sort"));
            }
            keys.push(SortKey { path, direction });
        }
        Ok(Self { keys })
    }

    /// The fields, most significant first.
    pub fn keys(&self) -> &[SortKey] {
        &self.keys
    }

    /// MongoDB's order between two documents under this sort (`Equal` on a tie).
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for k in &self.keys {
            let o = order_keys(k, key(a, k), key(b, k));
            if o.is_ne() {
                return o;
            }
        }
        Ordering::Equal
    }

    /// What `doc` sorts by, one value per field.
    pub fn values(&self, doc: &Value) -> Vec<SortValue> {
        self.keys
            .iter()
            .map(|k| match key(doc, k) {
                Key::EmptyArray => SortValue::EmptyArray,
                Key::Value(v) => SortValue::Value(v.clone()),
            })
            .collect()
    }

    /// The order of two documents given their [`Sort::values`].
    pub fn compare_by_values(&self, a: &[SortValue], b: &[SortValue]) -> Ordering {
        self.keys
            .iter()
            .zip(a.iter().zip(b))
            .map(|(k, (x, y))| order_keys(k, x.key(), y.key()))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// Sorts documents in place; ties keep their input order.
    pub fn sort(&self, docs: &mut [Value]) {
        self.sort_by(docs, |d| d);
    }

    /// Sorts items that hold documents; ties keep their input order. Each document's
    /// keys are computed once.
    pub fn sort_by<T>(&self, items: &mut [T], doc: impl Fn(&T) -> &Value) {
        let mut order: Vec<usize> = (0..items.len()).collect();
        {
            let keys: Vec<Vec<Key<'_>>> =
                items.iter().map(|item| self.keys.iter().map(|k| key(doc(item), k)).collect()).collect();
            // `sort_by` is stable, so equal keys keep the input order.
            order.sort_by(|&i, &j| {
                self.keys
                    .iter()
                    .zip(keys[i].iter().zip(&keys[j]))
                    .map(|(k, (&x, &y))| order_keys(k, x, y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            });
        }
        permute(items, &mut order);
    }
}

impl FromStr for Sort {
    type Err = FilterError;

    /// Parses JSON text, keeping the fields in the order they are written.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut de = serde_json::Deserializer::from_str(s);
        let parsed = (&mut de).deserialize_any(EntriesVisitor).and_then(|sort| de.end().map(|()| sort));
        parsed.map_err(|_| FilterError::InvalidSort {
            path: String::new(),
            reason: "the sort is not a JSON object or list",
        })?
    }
}

impl<'de> Deserialize<'de> for Sort {
    /// Reads the fields in the order the input gives them, whatever serde_json's features.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntriesVisitor)?.map_err(de::Error::custom)
    }
}

/// Collects a sort object's entries in input order, then validates them.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Result<Sort, FilterError>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sort such as {\"field\": 1, \"other\": -1}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Sort::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<Value> = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Sort::from_list(&items))
    }
}

/// Whether `serde_json::Map` keeps insertion order in this build (its `preserve_order`
/// feature is decided by the whole dependency graph, not by this crate).
fn maps_keep_insertion_order() -> bool {
    let mut m = Map::new();
    m.insert("b".to_owned(), Value::Null);
    m.insert("a".to_owned(), Value::Null);
    m.keys().next().is_some_and(|k| k == "b")
}

/// What one document sorts by on one field.
#[derive(Clone, Copy)]
enum Key<'a> {
    /// MongoDB sorts `[]` before null.
    EmptyArray,
    Value(&'a Value),
}

static NULL: Value = Value::Null;

fn key<'a>(doc: &'a Value, k: &SortKey) -> Key<'a> {
    let mut best: Option<Key<'a>> = None;
    let mut offer = |candidate: Key<'a>| {
        let better = best.is_none_or(|b| match k.direction {
            Direction::Ascending => compare_keys(candidate, b).is_lt(),
            Direction::Descending => compare_keys(candidate, b).is_gt(),
        });
        if better {
            best = Some(candidate);
        }
    };
    for reached in k.path.resolve(doc) {
        match reached.value {
            None => offer(Key::Value(&NULL)),
            Some(Value::Array(items)) if reached.expand && items.is_empty() => offer(Key::EmptyArray),
            Some(Value::Array(items)) if reached.expand => items.iter().for_each(|x| offer(Key::Value(x))),
            Some(v) => offer(Key::Value(v)),
        }
    }
    best.unwrap_or(Key::Value(&NULL))
}

fn compare_keys(a: Key<'_>, b: Key<'_>) -> Ordering {
    match (a, b) {
        (Key::EmptyArray, Key::EmptyArray) => Ordering::Equal,
        (Key::EmptyArray, Key::Value(_)) => Ordering::Less,
        (Key::Value(_), Key::EmptyArray) => Ordering::Greater,
        (Key::Value(x), Key::Value(y)) => compare_values(x, y),
    }
}

fn order_keys(k: &SortKey, a: Key<'_>, b: Key<'_>) -> Ordering {
    match k.direction {
        Direction::Ascending => compare_keys(a, b),
        Direction::Descending => compare_keys(a, b).reverse(),
    }
}

/// Rearranges `items` so that `items[i]` becomes the old `items[order[i]]`, by swaps
/// along each cycle of the permutation (no `Clone` needed). Leaves `order` as identity.
fn permute<T>(items: &mut [T], order: &mut [usize]) {
    for start in 0..order.len() {
        let mut at = start;
        while order[at] != at {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_applies_the_order() {
        let mut items = vec!['a', 'b', 'c', 'd', 'e'];
        let mut order = vec![3, 0, 4, 1, 2];
        permute(&mut items, &mut order);
        assert_eq!(items, ['d', 'a', 'e', 'b', 'c']);
        assert_eq!(order, [0, 1, 2, 3, 4]);
    }
}
