//! Filter queries: every backend returns what the filter, evaluated in memory on the
//! records' filter views, accepts, in key order and paged; a few answers are written out,
//! so that both backends are held to the same ids.

use serde_json::{Value, json};
use xchange_filter::Filter;
use xchange_store::{AnyStore, Job, JobState, Store};

use crate::fixtures::{T0, created, hash, to};
use crate::harness::Ctx;

/// Jobs with the fields the filters below look at.
async fn seed_jobs(store: &AnyStore) {
    let people = ["alice", "bob", "carol"];
    for n in 0..18_u64 {
        let id = format!("job-{n:02}");
        let document = json!({
            "job_id": id,
            "submitted_by": people[n as usize % 3],
            "job_priority_value": n % 10,
            "job_goal": {"text": format!("task {n}"), "lang": if n % 4 == 0 { "fr" } else { "en" }},
            "tags": if n % 2 == 0 { json!(["a", "b"]) } else { json!(["b"]) },
            "state": "forged: the store's column wins",
            "ratio": n as f64 / 4.0,
        });
        let taskdb = if n < 12 { "db-a" } else { "db-b" };
        let job = xchange_store::NewJob {
            job_id: id.clone(),
            taskdb: taskdb.to_owned(),
            document,
            body_hash: hash(n),
            now_ms: T0 + n as i64,
            fence: None,
        };
        let job = created(store, job).await;
        let end = [None, Some(JobState::Completed), Some(JobState::Running)][n as usize % 3];
        if let Some(state) = end {
            store.transition(to(&job, state, T0 + 100)).await.expect("move");
        }
    }
    // A document that is not an object: only the overlaid columns are seen.
    let odd = xchange_store::NewJob {
        job_id: "job-zz".to_owned(),
        taskdb: "db-a".to_owned(),
        document: json!(["not", "an", "object"]),
        body_hash: hash(99),
        now_ms: T0,
        fence: None,
    };
    created(store, odd).await;
}

fn ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.job_id.as_str()).collect()
}

/// Filters, with the ids they must find where written out.
fn job_filters() -> Vec<(Value, Option<Vec<&'static str>>)> {
    vec![
        (json!({}), None),
        (json!({"submitted_by": "alice", "state": "completed"}), Some(vec![])),
        (
            json!({"submitted_by": "bob", "state": "completed"}),
            Some(vec!["job-01", "job-04", "job-07", "job-10", "job-13", "job-16"]),
        ),
        (json!({"job_priority_value": {"$gte": 8}}), Some(vec!["job-08", "job-09"])),
        (json!({"job_goal.lang": "fr", "taskdb": "db-b"}), Some(vec!["job-12", "job-16"])),
        (
            json!({"tags": {"$all": ["a", "b"]}, "job_priority_value": {"$lt": 3}}),
            Some(vec!["job-00", "job-02", "job-10", "job-12"]),
        ),
        (json!({"$or": [{"state": "running"}, {"job_id": "job-zz"}]}), None),
        (
            json!({"state": {"$in": ["submitted"]}, "tags": {"$size": 1}}),
            Some(vec!["job-03", "job-09", "job-15"]),
        ),
        (json!({"job_id": {"$regex": "^job-1[0-2]$"}}), Some(vec!["job-10", "job-11", "job-12"])),
        (json!({"created_ms": {"$gt": T0 + 15}}), Some(vec!["job-16", "job-17"])),
        (json!({"updated_ms": T0 + 100, "ratio": {"$gt": 3.6}}), Some(vec!["job-16", "job-17"])),
        (json!({"submitted_by": {"$exists": false}}), Some(vec!["job-zz"])),
        (json!({"job_goal": {"$type": "object"}, "submitted_by": {"$ne": "alice"}}), None),
        (
            json!({"$nor": [{"taskdb": "db-a"}]}),
            Some(vec!["job-12", "job-13", "job-14", "job-15", "job-16", "job-17"]),
        ),
        // An array operand: SQLite's compiler refuses it, and the store evaluates it in memory.
        (json!({"tags": ["b"]}), None),
    ]
}

pub(crate) async fn find_jobs_agrees_with_filter_views(ctx: Ctx) {
    let store = ctx.open().await;
    seed_jobs(&store).await;
    let all = store.list_jobs(None, None, 1000).await.expect("all");
    assert_eq!(all.len(), 19);
    for (raw, written_out) in job_filters() {
        let filter = Filter::parse(&raw).expect("filter");
        // Which way the store answers: pushed down when the backend's compiler takes the
        // filter (on the view's column), in memory otherwise.
        let pushed_down = if ctx.is_postgres() {
            filter.to_postgres("view_doc").is_ok()
        } else {
            filter.to_sqlite("view_doc").is_ok()
        };
        assert!(pushed_down || raw == json!({"tags": ["b"]}), "{raw} is not pushed down");
        let expected: Vec<&Job> = all.iter().filter(|job| filter.matches(&job.filter_view())).collect();
        let expected_ids: Vec<&str> = expected.iter().map(|j| j.job_id.as_str()).collect();
        if let Some(ids) = &written_out {
            assert_eq!(&expected_ids, ids, "{raw}: the in-memory evaluation itself");
        }
        let found = store.find_jobs(&filter, None, None, 1000).await.expect("find");
        assert_eq!(ids(&found), expected_ids, "{raw}");
        assert!(found.iter().zip(&expected).all(|(a, b)| a == *b), "{raw}: whole jobs");

        // Pages of 2 concatenate to the same.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.find_jobs(&filter, None, after.as_deref(), 2).await.expect("page");
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.job_id.clone());
            paged.extend(page.into_iter().map(|j| j.job_id));
        }
        assert_eq!(paged, expected_ids, "{raw}: paged");

        // Within one task database.
        let in_b: Vec<&str> =
            expected.iter().filter(|j| j.taskdb == "db-b").map(|j| j.job_id.as_str()).collect();
        let found = store.find_jobs(&filter, Some("db-b"), None, 1000).await.expect("find in db-b");
        assert_eq!(ids(&found), in_b, "{raw}: in db-b");
    }
    let filter = Filter::parse(&json!({})).expect("filter");
    assert!(store.find_jobs(&filter, None, None, 0).await.expect("none").is_empty());
    store.close().await;
}

pub(crate) async fn find_taskdbs_and_agent_cards(ctx: Ctx) {
    let store = ctx.open().await;
    for (n, tags) in
        [json!(["nlp"]), json!(["vision", "nlp"]), json!([]), json!("nlp")].into_iter().enumerate()
    {
        let doc =
            json!({"task_listing_db_api_url": format!("http://n{n}"), "search_metadata": {"tags": tags}});
        store.put_taskdb(&format!("db-{n}"), doc, None, T0 + n as i64).await.expect("put");
        let card = json!({"skills": tags, "load": n, "name": format!("agent {n}")});
        store.put_agent_card(&format!("agent:{n}"), card, T0 + 10 * n as i64).await.expect("put");
    }
    store
        .put_taskdb("db-1", json!({"search_metadata": {"tags": ["vision", "nlp"]}}), None, T0 + 50)
        .await
        .expect("v2");

    let taskdbs = store.list_taskdbs(None, 100).await.expect("all");
    let cards = store.list_agent_cards(None, 100).await.expect("all");
    let filters = [
        json!({"search_metadata.tags": "nlp"}),
        json!({"version": 2}),
        json!({"task_listing_db_id": {"$gt": "db-1"}, "created_ms": {"$lt": T0 + 3}}),
        json!({"skills": {"$size": 0}}),
        json!({"load": {"$gte": 1}, "updated_ms": {"$lte": T0 + 20}}),
        json!({"agent_id": {"$regex": "[02]$"}}),
        json!({"skills": ["vision", "nlp"]}),
    ];
    for raw in filters {
        let filter = Filter::parse(&raw).expect("filter");
        let expected: Vec<_> = taskdbs.iter().filter(|t| filter.matches(&t.filter_view())).cloned().collect();
        assert_eq!(store.find_taskdbs(&filter, None, 100).await.expect("find"), expected, "{raw}");
        let after_first = store.find_taskdbs(&filter, Some("db-0"), 100).await.expect("find");
        assert_eq!(
            after_first,
            expected.iter().filter(|t| t.task_listing_db_id.as_str() > "db-0").cloned().collect::<Vec<_>>(),
            "{raw}"
        );
        let expected: Vec<_> = cards.iter().filter(|c| filter.matches(&c.filter_view())).cloned().collect();
        assert_eq!(store.find_agent_cards(&filter, None, 100).await.expect("find"), expected, "{raw}");
    }
    let nlp = Filter::parse(&json!({"search_metadata.tags": "nlp"})).expect("filter");
    let found: Vec<String> = store
        .find_taskdbs(&nlp, None, 100)
        .await
        .expect("find")
        .into_iter()
        .map(|t| t.task_listing_db_id)
        .collect();
    assert_eq!(found, ["db-0", "db-1", "db-3"]);
    let v2 = Filter::parse(&json!({"version": 2})).expect("filter");
    assert_eq!(store.find_taskdbs(&v2, None, 100).await.expect("find").len(), 1);
    store.close().await;
}
