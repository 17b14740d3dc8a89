//! Statements over many rows at once, so that a group-commit batch costs a few statements
//! rather than a few per write.
//!
//! A batch of `n` rows is written by statements of power-of-two sizes (`n = 300`: 256, 32,
//! 8, 4), so that whatever the batch sizes, a connection sees few distinct statements and
//! keeps them all prepared in its statement cache.

use crate::error::StoreError;
use crate::sql::db::Stmt;
use crate::sql::dialect::Dialect;

/// The most rows one statement carries: 256 jobs of 10 columns stay far below both
/// databases' parameter limits (32,766 in SQLite, 65,535 in PostgreSQL).
pub(crate) const MAX_ROWS: usize = 256;

/// The sizes of the statements that carry `n` rows, largest first.
pub(crate) fn chunk_sizes(n: usize) -> impl Iterator<Item = usize> {
    let mut left = n;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= MAX_ROWS { MAX_ROWS } else { 1 << left.ilog2() };
        left -= size;
        Some(size)
    })
}

/// `(p1, ..., pC), (...), ...`: `rows` tuples of `cols` placeholders, numbered from 1.
pub(crate) fn tuples<D: Dialect>(rows: usize, cols: usize) -> String {
    let tuple = |row: usize| {
        let params: Vec<String> = (1..=cols).map(|col| D::ordered_param(row * cols + col)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(tuple).collect::<Vec<_>>().join(", ")
}

/// Runs `head VALUES-TUPLES tail` over `rows`, in chunks, binding each row's `cols`
/// values with `bind`.
pub(crate) async fn run_rows<D: Dialect, T>(
    conn: &mut D::Connection,
    (head, tail): (&str, &str),
    cols: usize,
    rows: &[T],
    bind: impl Fn(Stmt<D>, &T) -> Stmt<D>,
) -> Result<(), StoreError> {
    let mut left = rows;
    for size in chunk_sizes(rows.len()) {
        let (chunk, rest) = left.split_at(size);
        left = rest;
        let sql = format!("{head} {}{tail}", tuples::<D>(size, cols));
        chunk.iter().fold(Stmt::built(sql), &bind).run(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_that_add_up() {
        for n in 0..2000 {
            let sizes: Vec<usize> = chunk_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= MAX_ROWS), "{n}: {sizes:?}");
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
        }
        assert_eq!(chunk_sizes(300).collect::<Vec<_>>(), [256, 32, 8, 4]);
    }
}
