//! The conformance tests: each takes a fresh, empty store's [`Ctx`] and must pass on
//! every backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use xchange_store::{Durability, JOB_POSTING, JobState, NewEvent, Store, StoreError, Submitted, Transition};

use crate::fixtures::{T0, all_events, created, document, hash, new_job, to};
use crate::harness::Ctx;

pub(crate) async fn create_and_get(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    assert_eq!(job.job_id, "job-1");
    assert_eq!(job.taskdb, "db-a");
    assert_eq!(job.state, JobState::Submitted);
    assert_eq!(job.document, document("job-1", 1));
    assert_eq!(job.body_hash, hash(1));
    assert_eq!(job.result, None);
    assert_eq!(job.reason_code, None);
    assert_eq!((job.created_ms, job.updated_ms), (T0 + 1, T0 + 1));
    assert_eq!(job.version, 1);
    // What was returned is what was stored, document included, to the last digit.
    assert_eq!(store.get_job("job-1").await.expect("get"), job);
    store.close().await;
}

pub(crate) async fn idempotent_replay(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    let events = store.last_event_id().await.expect("last id");
    let again = store.submit_job(new_job("job-1", "db-a", 1)).await.expect("replay");
    assert_eq!(again, Submitted::Existing(job.clone()));
    assert!(!again.is_created());
    assert_eq!(store.last_event_id().await.expect("last id"), events);

    // A replay answers with the job as it is now, not as it was created.
    let running = store.transition(to(&job, JobState::Announced, T0 + 10)).await.expect("announce");
    let again = store.submit_job(new_job("job-1", "db-a", 1)).await.expect("replay");
    assert_eq!(again.into_job(), running);
    store.close().await;
}

pub(crate) async fn conflict_on_different_body(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    let events = store.last_event_id().await.expect("last id");

    let other_body = new_job("job-1", "db-a", 2);
    let err = store.submit_job(other_body).await.expect_err("conflict");
    assert!(matches!(&err, StoreError::Conflict { job_id } if job_id == "job-1"), "{err:?}");
    assert_eq!(err.code(), xchange_protocol::Code::Conflict);

    // The same body sent to another task database is another request.
    let other_db = new_job("job-1", "db-b", 1);
    let err = store.submit_job(other_db).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    assert_eq!(store.get_job("job-1").await.expect("get"), job);
    assert_eq!(store.last_event_id().await.expect("last id"), events);
    store.close().await;
}

pub(crate) async fn list_order_and_paging(ctx: Ctx) {
    let store = ctx.open().await;
    // Byte order, whatever the database's collation: upper case before lower case,
    // "a" before "aa" before "b", non-ASCII last.
    let ids = ["b", "é", "Z1", "aa", "a", "B", "z", "a-2", "a_1", "10", "9"];
    for (n, id) in ids.iter().enumerate() {
        let taskdb = if n % 2 == 0 { "even" } else { "odd" };
        created(&store, new_job(id, taskdb, n as u64)).await;
    }
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort_unstable();

    let listed: Vec<String> =
        store.list_jobs(None, None, 100).await.expect("list").into_iter().map(|job| job.job_id).collect();
    assert_eq!(listed, expected);

    // Pages of 3 concatenate to the same list.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_jobs(None, after.as_deref(), 3).await.expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.job_id.clone());
        paged.extend(page.into_iter().map(|job| job.job_id));
    }
    assert_eq!(paged, expected);

    // Filtered by task database, still in order, still paged.
    let even: Vec<&str> = {
        let mut even: Vec<&str> = ids.iter().copied().step_by(2).collect();
        even.sort_unstable();
        even
    };
    let listed: Vec<String> = store
        .list_jobs(Some("even"), None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|job| job.job_id)
        .collect();
    assert_eq!(listed, even);
    let second_page = store.list_jobs(Some("even"), Some(even[1]), 2).await.expect("list");
    let second_page: Vec<&str> = second_page.iter().map(|job| job.job_id.as_str()).collect();
    assert_eq!(second_page, &even[2..4]);

    assert!(store.list_jobs(None, None, 0).await.expect("list").is_empty());
    assert!(store.list_jobs(None, Some("\u{10FFFF}"), 10).await.expect("list").is_empty());
    assert!(store.list_jobs(Some("nowhere"), None, 10).await.expect("list").is_empty());
    store.close().await;
}

pub(crate) async fn transitions_check_versions(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;

    let announced = store.transition(to(&job, JobState::Announced, T0 + 10)).await.expect("announce");
    assert_eq!(announced.state, JobState::Announced);
    assert_eq!(announced.version, 2);
    assert_eq!(announced.updated_ms, T0 + 10);
    assert_eq!(announced.created_ms, job.created_ms);
    assert_eq!(announced.document, job.document);

    // The old version is stale now.
    let err = store.transition(to(&job, JobState::Awarded, T0 + 11)).await.expect_err("stale");
    assert!(
        matches!(
            &err,
            StoreError::StaleVersion { kind: "job", id, expected: 1, actual: 2 } if id == "job-1"
        ),
        "{err:?}"
    );

    // A move to the same non-terminal state is allowed (an event with a version bump).
    let again = store.transition(to(&announced, JobState::Announced, T0 + 12)).await.expect("same state");
    assert_eq!(again.version, 3);

    let mut running = to(&again, JobState::Running, T0 + 13);
    running.result = Some(json!({"partial": [1, 2]}));
    running.reason_code = Some(5002);
    let running = store.transition(running).await.expect("run");
    assert_eq!(running.result, Some(json!({"partial": [1, 2]})));
    assert_eq!(running.reason_code, Some(5002));

    // Result and reason code are set as given: None clears them.
    let mut done = to(&running, JobState::Completed, T0 + 14);
    done.result = Some(json!({"summary": "ok", "words": 120}));
    let done = store.transition(done).await.expect("complete");
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.version, 5);
    assert_eq!(done.result, Some(json!({"summary": "ok", "words": 120})));
    assert_eq!(done.reason_code, None);
    assert_eq!(store.get_job("job-1").await.expect("get"), done);
    store.close().await;
}

pub(crate) async fn terminal_states_are_final(ctx: Ctx) {
    let store = ctx.open().await;
    let terminal = [JobState::Completed, JobState::Failed, JobState::Cancelled, JobState::Expired];
    for (n, end) in terminal.into_iter().enumerate() {
        let id = format!("job-{n}");
        let job = created(&store, new_job(&id, "db", n as u64)).await;
        let mut finish = to(&job, end, T0 + 100);
        finish.reason_code = Some(5028);
        let ended = store.transition(finish).await.expect("end");
        let events = store.last_event_id().await.expect("last id");
        for next in JobState::ALL {
            let err =
                store.transition(to(&ended, next, T0 + 200)).await.expect_err("out of a terminal state");
            assert!(
                matches!(&err, StoreError::IllegalTransition { from, to, .. }
                    if *from == end && *to == next),
                "{end} -> {next}: {err:?}"
            );
        }
        assert_eq!(store.get_job(&id).await.expect("get"), ended);
        assert_eq!(store.last_event_id().await.expect("last id"), events);
    }

    // `submitted` is entered only by submit_job.
    let job = created(&store, new_job("fresh", "db", 9)).await;
    let announced = store.transition(to(&job, JobState::Announced, T0 + 1)).await.expect("announce");
    let err =
        store.transition(to(&announced, JobState::Submitted, T0 + 2)).await.expect_err("back to submitted");
    assert!(
        matches!(
            err,
            StoreError::IllegalTransition { from: JobState::Announced, to: JobState::Submitted, .. }
        ),
        "{err:?}"
    );
    store.close().await;
}

pub(crate) async fn events_are_written_with_their_change(ctx: Ctx) {
    let store = ctx.open().await;
    assert_eq!(store.last_event_id().await.expect("last id"), 0);
    assert!(all_events(&store).await.is_empty());

    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    let events = all_events(&store).await;
    assert_eq!(events.len(), 1);
    let posting = &events[0];
    assert_eq!(posting.job_id, "job-1");
    assert_eq!(posting.kind, JOB_POSTING);
    assert_eq!(posting.payload, json!({"taskdb": "db-a", "document": document("job-1", 1)}));
    assert_eq!(posting.at_ms, job.created_ms);
    assert!(posting.id > 0);

    let mut notify = to(&job, JobState::Announced, T0 + 50);
    notify.event =
        NewEvent { kind: "job_notification".to_owned(), payload: json!({"to": ["agent:bob"], "n": 1}) };
    store.transition(notify).await.expect("announce");
    let events = all_events(&store).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, "job_notification");
    assert_eq!(events[1].job_id, "job-1");
    assert_eq!(events[1].payload, json!({"to": ["agent:bob"], "n": 1}));
    assert_eq!(events[1].at_ms, T0 + 50);
    assert!(events[1].id > events[0].id);
    assert_eq!(store.last_event_id().await.expect("last id"), events[1].id);
    store.close().await;
}

pub(crate) async fn failed_changes_write_no_event(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    let before = all_events(&store).await;

    // Replay, conflict, stale version, unknown job, illegal state, bad input: each
    // refused or answered without writing.
    store.submit_job(new_job("job-1", "db-a", 1)).await.expect("replay");
    store.submit_job(new_job("job-1", "db-a", 2)).await.expect_err("conflict");
    let mut stale = to(&job, JobState::Announced, T0 + 5);
    stale.expected_version = 7;
    store.transition(stale).await.expect_err("stale");
    let mut missing = to(&job, JobState::Announced, T0 + 5);
    missing.job_id = "nope".to_owned();
    store.transition(missing).await.expect_err("not found");
    store.transition(to(&job, JobState::Submitted, T0 + 5)).await.expect_err("illegal");
    let mut empty_kind = to(&job, JobState::Announced, T0 + 5);
    empty_kind.event.kind = String::new();
    store.transition(empty_kind).await.expect_err("invalid");

    assert_eq!(all_events(&store).await, before);
    assert_eq!(store.get_job("job-1").await.expect("get"), job);
    store.close().await;
}

pub(crate) async fn events_after_pages_in_order(ctx: Ctx) {
    let store = ctx.open().await;
    for n in 0..7_u64 {
        let job = created(&store, new_job(&format!("job-{n}"), "db", n)).await;
        if n % 2 == 0 {
            store.transition(to(&job, JobState::Announced, T0 + 100 + n as i64)).await.expect("announce");
        }
    }
    let all = all_events(&store).await;
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, 3).await.expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.id;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    let last = all.last().expect("events").id;
    assert_eq!(store.last_event_id().await.expect("last id"), last);
    assert!(store.events_after(last, 10).await.expect("tail").is_empty());
    assert!(store.events_after(0, 0).await.expect("none").is_empty());
    // Resuming from the middle gives exactly the rest.
    let middle = all[4].id;
    assert_eq!(store.events_after(middle, 100).await.expect("rest"), all[5..].to_vec());
    store.close().await;
}

pub(crate) async fn taskdb_crud_and_versions(ctx: Ctx) {
    let store = ctx.open().await;
    let entry = |url: &str| {
        json!({
            "task_listing_db_id": "db-a",
            "association_ids": ["org-1"],
            "task_listing_db_api_url": url,
            "search_metadata": {"tags": ["nlp"]},
            "collection_ids": []
        })
    };
    let v1 = store.put_taskdb("db-a", entry("http://a/1"), None, T0).await.expect("create");
    assert_eq!(v1.task_listing_db_id, "db-a");
    assert_eq!(v1.version, 1);
    assert_eq!((v1.created_ms, v1.updated_ms), (T0, T0));
    assert_eq!(store.get_taskdb("db-a").await.expect("get"), v1);

    let v2 = store.put_taskdb("db-a", entry("http://a/2"), None, T0 + 5).await.expect("replace");
    assert_eq!(v2.version, 2);
    assert_eq!((v2.created_ms, v2.updated_ms), (T0, T0 + 5));
    assert_eq!(v2.document, entry("http://a/2"));
    assert_eq!(store.get_taskdb("db-a").await.expect("get"), v2);

    // Conditional puts.
    let v3 =
        store.put_taskdb("db-a", entry("http://a/3"), Some(2), T0 + 6).await.expect("expected version 2");
    assert_eq!(v3.version, 3);
    let err = store.put_taskdb("db-a", entry("http://a/x"), Some(2), T0 + 7).await.expect_err("stale");
    assert!(
        matches!(&err, StoreError::StaleVersion { kind: "taskdb", expected: 2, actual: 3, .. }),
        "{err:?}"
    );
    let err = store.put_taskdb("db-a", entry("http://a/x"), Some(0), T0 + 7).await.expect_err("exists");
    assert!(matches!(&err, StoreError::StaleVersion { expected: 0, actual: 3, .. }), "{err:?}");
    assert_eq!(store.get_taskdb("db-a").await.expect("get"), v3);
    let created = store.put_taskdb("db-b", json!({"n": 2}), Some(0), T0 + 8).await.expect("create if absent");
    assert_eq!(created.version, 1);

    // Listing and paging, in key order.
    store.put_taskdb("db-0", json!({"n": 0}), None, T0).await.expect("create");
    let ids = |list: Vec<xchange_store::TaskDb>| -> Vec<String> {
        list.into_iter().map(|t| t.task_listing_db_id).collect()
    };
    assert_eq!(ids(store.list_taskdbs(None, 10).await.expect("list")), ["db-0", "db-a", "db-b"]);
    assert_eq!(ids(store.list_taskdbs(Some("db-0"), 1).await.expect("list")), ["db-a"]);

    // Delete, then it is gone; a new put starts again at version 1.
    store.delete_taskdb("db-a").await.expect("delete");
    let err = store.get_taskdb("db-a").await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { kind: "taskdb", .. }), "{err:?}");
    let err = store.delete_taskdb("db-a").await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let again = store.put_taskdb("db-a", entry("http://a/9"), None, T0 + 9).await.expect("recreate");
    assert_eq!((again.version, again.created_ms), (1, T0 + 9));
    store.close().await;
}

pub(crate) async fn templates(ctx: Ctx) {
    let store = ctx.open().await;
    let schema = json!({"type": "object", "required": ["job_id", "job_goal"]});
    let t = store.put_template("summarise", schema.clone(), T0).await.expect("put");
    assert_eq!(t.name, "summarise");
    assert_eq!(t.schema, schema);
    assert_eq!(t.created_ms, T0);
    assert_eq!(store.get_template("summarise").await.expect("get"), t);

    // Replacing keeps the creation time.
    let replaced = store.put_template("summarise", json!({"type": "object"}), T0 + 5).await.expect("replace");
    assert_eq!(replaced.created_ms, T0);
    assert_eq!(replaced.schema, json!({"type": "object"}));
    assert_eq!(store.get_template("summarise").await.expect("get"), replaced);

    store.put_template("classify", json!(true), T0).await.expect("put");
    store.put_template("translate", json!({}), T0).await.expect("put");
    let names: Vec<String> =
        store.list_templates(None, 10).await.expect("list").into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["classify", "summarise", "translate"]);
    let page = store.list_templates(Some("classify"), 1).await.expect("list");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0], replaced);
    store.close().await;
}

pub(crate) async fn unknown_ids_are_not_found(ctx: Ctx) {
    let store = ctx.open().await;
    let not_found = |err: StoreError, what: &str| {
        assert!(
            matches!(&err, StoreError::NotFound { kind, id } if *kind == what && id == "ghost"),
            "{err:?}"
        );
        assert_eq!(err.code(), xchange_protocol::Code::NotFound);
    };
    not_found(store.get_job("ghost").await.expect_err("job"), "job");
    let t = Transition {
        job_id: "ghost".to_owned(),
        expected_version: 1,
        state: JobState::Announced,
        result: None,
        reason_code: None,
        event: NewEvent { kind: "announced".to_owned(), payload: json!({}) },
        now_ms: T0,
        fence: None,
    };
    not_found(store.transition(t).await.expect_err("job"), "job");
    not_found(store.get_taskdb("ghost").await.expect_err("taskdb"), "taskdb");
    not_found(store.delete_taskdb("ghost").await.expect_err("taskdb"), "taskdb");
    not_found(store.get_template("ghost").await.expect_err("template"), "template");
    let err = store.put_taskdb("ghost", json!({}), Some(3), T0).await.expect_err("absent");
    assert!(matches!(err, StoreError::StaleVersion { expected: 3, actual: 0, .. }), "{err:?}");
    assert_eq!(store.last_event_id().await.expect("last id"), 0);
    store.close().await;
}

pub(crate) async fn invalid_input_is_refused(ctx: Ctx) {
    let store = ctx.open().await;
    let invalid = |result: Result<Submitted, StoreError>| match result {
        Err(err @ StoreError::InvalidInput(_)) => {
            assert_eq!(err.code(), xchange_protocol::Code::InvalidRequest);
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let mut job = new_job("", "db", 1);
    invalid(store.submit_job(job.clone()).await);
    job.job_id = "a\0b".to_owned();
    invalid(store.submit_job(job.clone()).await);
    job.job_id = "ok".to_owned();
    job.taskdb = String::new();
    invalid(store.submit_job(job.clone()).await);
    job.taskdb = "db".to_owned();
    for bad_hash in ["", "abc", &hash(0xabc).to_uppercase(), &format!("{}g", &hash(1)[1..])] {
        job.body_hash = bad_hash.to_owned();
        invalid(store.submit_job(job.clone()).await);
    }
    job.body_hash = hash(1);
    // PostgreSQL's JSONB cannot hold \u0000; SQLite refuses it too, for the same answers.
    job.document = json!({"job_goal": {"text": "nul \u{0} here"}});
    invalid(store.submit_job(job.clone()).await);
    let err = store.put_taskdb("db", json!({"k\u{0}": 1}), None, T0).await.expect_err("nul key");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    let err = store.put_template("", json!({}), T0).await.expect_err("empty name");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");

    assert!(store.list_jobs(None, None, 10).await.expect("list").is_empty());
    assert!(store.list_taskdbs(None, 10).await.expect("list").is_empty());
    assert_eq!(store.last_event_id().await.expect("last id"), 0);
    store.close().await;
}

pub(crate) async fn durability_settings(ctx: Ctx) {
    let store = ctx.open().await;
    let durability = store.durability_settings().await.expect("settings");
    assert!(durability.is_durable(), "{durability:?}");
    match durability {
        Durability::Sqlite { journal_mode, synchronous, foreign_keys, busy_timeout_ms } => {
            assert_eq!(journal_mode, "wal");
            assert_eq!(synchronous, "FULL");
            assert!(foreign_keys);
            assert!(busy_timeout_ms > 0);
        }
        Durability::Postgres { synchronous_commit, fsync } => {
            assert_eq!(synchronous_commit, "on");
            assert_eq!(fsync, "on");
        }
        other => panic!("unknown backend: {other:?}"),
    }
    store.close().await;
}

pub(crate) async fn reopen_keeps_everything(ctx: Ctx) {
    let store = ctx.open().await;
    let job = created(&store, new_job("job-1", "db-a", 1)).await;
    let job = store.transition(to(&job, JobState::Running, T0 + 3)).await.expect("run");
    let taskdb = store.put_taskdb("db-a", json!({"u": 1}), None, T0).await.expect("put");
    let template = store.put_template("t", json!({"type": "object"}), T0).await.expect("put");
    let events = all_events(&store).await;
    store.close().await;

    // Opening again runs the migrations again, which must find nothing to do.
    let store = ctx.open().await;
    assert_eq!(store.get_job("job-1").await.expect("job"), job);
    assert_eq!(store.get_taskdb("db-a").await.expect("taskdb"), taskdb);
    assert_eq!(store.get_template("t").await.expect("template"), template);
    assert_eq!(all_events(&store).await, events);
    let replay = store.submit_job(new_job("job-1", "db-a", 1)).await.expect("replay");
    assert_eq!(replay, Submitted::Existing(job));
    // Ids keep increasing across restarts.
    created(&store, new_job("job-2", "db-a", 2)).await;
    let after = all_events(&store).await;
    assert!(after.last().expect("events").id > events.last().expect("events").id);
    store.close().await;
}

pub(crate) async fn concurrent_submissions(ctx: Ctx) {
    const TASKS: u64 = 8;
    const JOBS: u64 = 160;
    let store = Arc::new(ctx.open().await);
    // Every job is submitted by two tasks, in different orders, with the same body: one
    // must create it, the other must get it back as a replay.
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = task;
            for _ in 0..JOBS * 2 / TASKS {
                let id = format!("job-{n:04}");
                let outcome = store.submit_job(new_job(&id, "db", n)).await.expect("submit");
                outcomes.push((n, outcome.is_created()));
                n = (n + TASKS / 2) % JOBS;
            }
            outcomes
        }));
    }
    let mut created = BTreeSet::new();
    let mut replayed = BTreeSet::new();
    for handle in handles {
        for (n, is_created) in handle.await.expect("task") {
            let set = if is_created { &mut created } else { &mut replayed };
            assert!(set.insert(n), "job {n} created or replayed twice");
        }
    }
    assert_eq!(created.len() as u64, JOBS);
    assert_eq!(replayed.len() as u64, JOBS);

    let jobs = store.list_jobs(None, None, u32::MAX).await.expect("list");
    assert_eq!(jobs.len() as u64, JOBS);
    assert!(jobs.windows(2).all(|w| w[0].job_id < w[1].job_id));
    let events = all_events(&store).await;
    assert_eq!(events.len() as u64, JOBS);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let posted: BTreeSet<&str> =
        events.iter().inspect(|e| assert_eq!(e.kind, JOB_POSTING)).map(|e| e.job_id.as_str()).collect();
    assert_eq!(posted.len() as u64, JOBS);
    store.close().await;
}

pub(crate) async fn concurrent_transitions_one_wins(ctx: Ctx) {
    let store = Arc::new(ctx.open().await);
    let job = created(&store, new_job("job-1", "db", 1)).await;
    let before = store.last_event_id().await.expect("last id");
    let mut handles = Vec::new();
    for task in 0..8_i64 {
        let store = Arc::clone(&store);
        let mut t = to(&job, JobState::Awarded, T0 + task);
        t.event.payload = json!({"winner": task});
        handles.push(tokio::spawn(async move { store.transition(t).await }));
    }
    let mut wins = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(job) => {
                wins += 1;
                assert_eq!(job.version, 2);
            }
            Err(StoreError::StaleVersion { expected: 1, actual: 2, .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.get_job("job-1").await.expect("get").version, 2);
    let events = store.events_after(before, 100).await.expect("events");
    assert_eq!(events.len(), 1);
    store.close().await;
}

/// A reader that follows the outbox with `events_after` while several tasks write must
/// see every event exactly once: no id may become visible after a larger one was read.
pub(crate) async fn event_stream_misses_nothing_under_load(ctx: Ctx) {
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 40;
    let store = Arc::new(ctx.open().await);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let n = w * PER_WRITER + i;
                    let job = created(&store, new_job(&format!("job-{n}"), "db", n)).await;
                    store.transition(to(&job, JobState::Announced, T0 + n as i64)).await.expect("announce");
                }
            })
        })
        .collect();

    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut writers_done = false;
    // Bounded: it ends when the writers are done and the reader has caught up.
    loop {
        let page = store.events_after(cursor, 7).await.expect("page");
        if let Some(last) = page.last() {
            cursor = last.id;
            seen.extend(page.iter().map(|e| e.id));
            continue;
        }
        if writers_done {
            break;
        }
        writers_done = writers.iter().all(|w| w.is_finished());
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let all: Vec<i64> = all_events(&store).await.iter().map(|e| e.id).collect();
    assert_eq!(all.len() as u64, WRITERS * PER_WRITER * 2);
    assert_eq!(seen, all, "the follower missed or reordered events");
    store.close().await;
}
