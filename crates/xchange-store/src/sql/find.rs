//! The `find_*` queries: a filter pushed down to SQL when the backend can compile it, or
//! evaluated in memory over pages read in key order when it cannot.
//!
//! The pushed-down query filters the record's view (`Dialect::overlay`) computed in a
//! subquery, not a stored copy of it: no second copy of every document to store, and
//! nothing more for the group commit to write when a job changes state. A filter that
//! matches on document fields reads every row in the key range anyway (there is no index
//! on document fields), so the view costs one JSON edit per row read.

use xchange_filter::Filter;

use crate::error::StoreError;
use crate::sql::dialect::Dialect;
use crate::sql::record::{Page, Viewed, list, list_matching};

/// How many rows an in-memory scan reads at a time.
const SCAN_PAGE: u32 = 256;

/// Up to `page.limit` records whose view matches `filter`, in the page's order.
pub(crate) async fn find<D: Dialect, R: Viewed>(
    conn: &mut D::Connection,
    filter: &Filter,
    page: Page<'_>,
) -> Result<Vec<R>, StoreError> {
    if page.limit == 0 {
        return Ok(Vec::new());
    }
    match D::condition(filter, "view_doc") {
        Some(condition) => list_matching::<D, R>(conn, &condition, &page).await,
        None => scan::<D, R>(conn, filter, page).await,
    }
}

/// Reads pages in key order and keeps the records whose view matches.
async fn scan<D: Dialect, R: Viewed>(
    conn: &mut D::Connection,
    filter: &Filter,
    page: Page<'_>,
) -> Result<Vec<R>, StoreError> {
    let wanted = page.limit as usize;
    let mut found = Vec::new();
    let mut after = page.after.map(str::to_owned);
    loop {
        let chunk = Page { after: after.as_deref(), limit: SCAN_PAGE, ..page };
        let records: Vec<R> = list::<D, R>(conn, &chunk).await?;
        let full = records.len() == SCAN_PAGE as usize;
        after = records.last().map(|r| r.key().to_owned());
        found.extend(records.into_iter().filter(|r| filter.matches(&r.view())).take(wanted - found.len()));
        if found.len() == wanted || !full {
            return Ok(found);
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use serde_json::json;
    use sqlx::Sqlite;

    use super::*;
    use crate::job::{Job, NewJob};
    use crate::store::Store;

    /// The conformance suite cannot tell a pushed-down filter from one evaluated in memory;
    /// this makes sure that SQLite compiles the usual filters and that both ways agree.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_pushes_filters_down_and_agrees_with_the_scan() {
        let (store, _dir) = crate::testing::sqlite_store().await;
        for n in 0..30_i64 {
            let who = ["alice", "bob"][n as usize % 2];
            let document = json!({"submitted_by": who, "p": n % 7,
                                  "goal": {"lang": if n % 3 == 0 { "fr" } else { "en" }}});
            let job = NewJob {
                job_id: format!("j{n:02}"),
                taskdb: format!("db{}", n % 2),
                document,
                body_hash: format!("{n:064x}"),
                now_ms: n,
                fence: None,
            };
            store.submit_job(job).await.expect("submit");
        }
        let filters = [
            json!({"submitted_by": "alice", "state": "submitted"}),
            json!({"p": {"$gte": 5}, "goal.lang": "fr"}),
            json!({"$or": [{"job_id": {"$regex": "^j1"}}, {"created_ms": {"$lt": 3}}]}),
            json!({"taskdb": "db1", "p": {"$in": [1, 2]}}),
        ];
        let mut conn = store.0.reader.acquire().await.expect("connection");
        for raw in filters {
            let filter = Filter::parse(&raw).expect("filter");
            let condition = <Sqlite as Dialect>::condition(&filter, "view_doc").expect("compiles");
            let page = Page::by_key::<Job>(None, 100);
            let pushed: Vec<Job> =
                list_matching::<Sqlite, Job>(&mut conn, &condition, &page).await.expect("sql");
            let scanned: Vec<Job> = scan::<Sqlite, Job>(&mut conn, &filter, page).await.expect("scan");
            assert!(!pushed.is_empty(), "{raw}");
            assert_eq!(pushed, scanned, "{raw}");
        }
        drop(conn);
        store.close().await;
    }
}
