//! The store conformance suite (one test binary).
//!
//! `store_conformance_suite!` instantiates every test of `suite.rs` once per backend:
//! `sqlite::NAME` on a fresh temporary file, `postgres::NAME` in a fresh schema of the
//! database at `XCHANGE_TEST_POSTGRES` (skipped, with a printed reason, when the variable
//! is unset; CI sets it). The tests below the macro need no backend.

mod batch;
mod find;
mod fixtures;
mod harness;
mod lease;
mod registry;
mod suite;

use xchange_protocol::Code;
use xchange_store::{StoreError, open};

macro_rules! store_conformance_suite {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_sqlite(crate::$module::$test).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::harness::on_postgres(crate::$module::$test).await;
                }
            )*
        }
    };
}

store_conformance_suite!(
    suite::create_and_get,
    suite::idempotent_replay,
    suite::conflict_on_different_body,
    suite::list_order_and_paging,
    suite::transitions_check_versions,
    suite::terminal_states_are_final,
    suite::events_are_written_with_their_change,
    suite::failed_changes_write_no_event,
    suite::events_after_pages_in_order,
    suite::taskdb_crud_and_versions,
    suite::templates,
    suite::unknown_ids_are_not_found,
    suite::invalid_input_is_refused,
    suite::durability_settings,
    suite::reopen_keeps_everything,
    suite::concurrent_submissions,
    suite::concurrent_transitions_one_wins,
    suite::event_stream_misses_nothing_under_load,
    batch::one_batch_answers_as_if_sequential,
    batch::a_refused_write_leaves_the_rest_of_its_batch,
    batch::a_failed_commit_fails_its_whole_batch,
    batch::concurrent_duplicates_and_conflicts,
    batch::close_commits_what_is_queued,
    registry::unfinished_jobs_in_key_order,
    registry::orgs_crud_and_versions,
    registry::subscriptions,
    registry::agent_cards,
    registry::job_counts_and_latency,
    registry::api_keys_are_kept_hashed_and_revoked_once,
    find::find_jobs_agrees_with_filter_views,
    find::find_taskdbs_and_agent_cards,
    lease::leases_are_taken_renewed_and_released_with_growing_epochs,
    lease::fenced_writes_apply_only_under_the_current_epoch,
    lease::a_takeover_sees_every_write_acknowledged_under_the_old_epoch,
    lease::nodes_say_they_are_alive_on_the_database_clock,
);

async fn invalid_url(url: &str) -> String {
    match open(url).await {
        Err(err @ StoreError::InvalidUrl { .. }) => {
            assert_eq!(err.code(), Code::InvalidRequest);
            err.to_string()
        }
        Err(other) => panic!("{url}: expected InvalidUrl, got {other:?}"),
        Ok(store) => panic!("{url}: expected InvalidUrl, got {store:?}"),
    }
}

#[tokio::test]
async fn open_refuses_bad_urls_clearly() {
    let message = invalid_url("mysql://root@127.0.0.1/test").await;
    assert!(message.contains("unknown scheme"), "{message}");
    assert!(message.contains("sqlite://PATH"), "{message}");
    invalid_url("").await;
    invalid_url("just a path.db").await;
    invalid_url("sqlite://").await;

    let message = invalid_url("sqlite::memory:").await;
    assert!(message.contains("in-memory"), "{message}");
    invalid_url("sqlite://x.db?mode=memory").await;

    // A malformed PostgreSQL URL is refused before connecting, without its password.
    let message = invalid_url("postgres://user:hunter2@127.0.0.1:1/db?sslmode=bogus").await;
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("***"), "{message}");
}

#[tokio::test]
async fn open_reports_unreachable_databases() {
    // A directory that does not exist: the error is the database's, not a panic.
    let dir = std::env::temp_dir().join("xchange-store-no-such-dir/a/b");
    let url = format!("sqlite://{}", dir.join("store.db").display());
    let err = open(&url).await.expect_err("no such directory");
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

/// The test database's default collation may already be byte order (it is `C.UTF-8` on
/// the CI machine), so `list_order_and_paging` alone would not notice a key column that
/// lost its `COLLATE "C"`; this checks the columns themselves.
#[tokio::test]
async fn postgres_key_columns_sort_by_bytes() {
    use sqlx::{Connection, PgConnection};
    use xchange_store::Store;

    harness::on_postgres(|ctx| async move {
        ctx.open().await.close().await;
        let mut conn = PgConnection::connect(&ctx.url).await.expect("connect");
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, collation_name::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND data_type = 'text' \
             AND column_name IN ('job_id', 'taskdb', 'task_listing_db_id', 'name', 'org_id', \
             'subject_id', 'agent_id', 'key_id', 'node_id', 'owner') \
             ORDER BY 1, 2",
        )
        .fetch_all(&mut conn)
        .await
        .expect("columns");
        let _ = conn.close().await;
        // jobs (2), events, taskdbs, templates, orgs, subscriptions (2), agent_cards,
        // api_keys (2), cluster_nodes, partition_leases.
        assert_eq!(rows.len(), 13, "{rows:?}");
        for (table, column, collation) in rows {
            assert_eq!(collation.as_deref(), Some("C"), "{table}.{column}");
        }
    })
    .await;
}
