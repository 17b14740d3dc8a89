//! Pages of a search: the matching documents in sort order, at most a limit of them,
//! after a keyset cursor. [`Page::select`] is the reference in memory; `sql/page.rs`
//! compiles the same page to one SQL statement per dialect.
//!
//! The order is the [`Sort`] and then the row id, ascending, so that it is total: a
//! cursor (the last row's sort values and id) then says exactly where the next page
//! starts, however many rows tie on the sort, and rows added or removed meanwhile
//! neither repeat nor hide the others.

use std::cmp::Ordering;

use serde_json::Value;

use crate::{Filter, FilterError, Sort, SortValue};

/// A row's id: the table's primary key, an integer or a string (compared by bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum RowId {
    /// An integer key.
    Int(i64),
    /// A text key.
    Text(String),
}

/// Where a page ended: what its last row sorts by, and the row's id. The next page
/// starts after it. Serializable, so that it can travel to a client and back (a server
/// should check that it comes back with the same sort: a cursor of another sort is
/// refused by the SQL compilers, since its values do not line up).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// [`Sort::values`] of the last row.
    pub values: Vec<SortValue>,
    /// The last row's id.
    pub id: RowId,
}

impl Cursor {
    /// The cursor after the row `id` holding `doc`, under `sort`.
    pub fn after(sort: &Sort, id: RowId, doc: &Value) -> Self {
        Self { values: sort.values(doc), id }
    }
}

/// What page to read: the order, where to start and how many rows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The order (then by id).
    pub sort: Sort,
    /// Only rows after this one.
    pub after: Option<Cursor>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

impl Page {
    /// The page in memory: the rows whose document matches `filter`, in order, after the
    /// cursor, at most `limit`. `row` gives a row's id and document. Refused, as by the
    /// SQL compilers, when the cursor has another number of values than the sort fields.
    pub fn select<'r, T>(
        &self,
        filter: &Filter,
        rows: &'r [T],
        row: impl Fn(&T) -> (&RowId, &Value),
    ) -> Result<Vec<&'r T>, FilterError> {
        self.check_cursor()?;
        let mut hits: Vec<(&'r T, &RowId, Vec<SortValue>)> = rows
            .iter()
            .filter_map(|r| {
                let (id, doc) = row(r);
                filter.matches(doc).then(|| (r, id, self.sort.values(doc)))
            })
            .collect();
        if let Some(after) = &self.after {
            hits.retain(|(_, id, values)| self.compare(values, id, &after.values, &after.id).is_gt());
        }
        hits.sort_by(|a, b| self.compare(&a.2, a.1, &b.2, b.1));
        let limit = self.limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(hits.into_iter().take(limit).map(|(r, ..)| r).collect())
    }

    /// Refuses a cursor that cannot belong to this sort.
    pub(crate) fn check_cursor(&self) -> Result<(), FilterError> {
        match &self.after {
            Some(after) if after.values.len() != self.sort.keys().len() => Err(FilterError::InvalidSort {
                path: String::new(),
                reason: "the cursor does not belong to this sort: it has another number of values",
            }),
            _ => Ok(()),
        }
    }

    fn compare(&self, a: &[SortValue], a_id: &RowId, b: &[SortValue], b_id: &RowId) -> Ordering {
        self.sort.compare_by_values(a, b).then_with(|| a_id.cmp(b_id))
    }
}
