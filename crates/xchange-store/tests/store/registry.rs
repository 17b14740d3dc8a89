//! The registry beyond task databases (organisations, subscriptions, agent cards), the
//! unfinished jobs a restarted service resumes, and the job statistics.

use std::collections::BTreeMap;

use serde_json::json;
use xchange_protocol::Code;
use xchange_store::{JobState, LatencySummary, Store, StoreError, TaskDbJobCounts};

use crate::fixtures::{T0, created, new_job, to};
use crate::harness::Ctx;

pub(crate) async fn unfinished_jobs_in_key_order(ctx: Ctx) {
    let store = ctx.open().await;
    let ends = [
        ("a", None),
        ("b", Some(JobState::Completed)),
        ("c", Some(JobState::Running)),
        ("d", Some(JobState::Failed)),
        ("e", Some(JobState::Announced)),
        ("f", Some(JobState::Cancelled)),
        ("g", Some(JobState::Awarded)),
        ("h", Some(JobState::Expired)),
    ];
    for (n, (id, end)) in ends.iter().enumerate() {
        let job = created(&store, new_job(id, "db", n as u64)).await;
        if let Some(state) = end {
            store.transition(to(&job, *state, T0 + 10)).await.expect("move");
        }
    }
    let ids = |jobs: Vec<xchange_store::Job>| -> Vec<String> { jobs.into_iter().map(|j| j.job_id).collect() };
    assert_eq!(ids(store.list_unfinished_jobs(None, 100).await.expect("list")), ["a", "c", "e", "g"]);
    assert_eq!(ids(store.list_unfinished_jobs(None, 2).await.expect("page")), ["a", "c"]);
    assert_eq!(ids(store.list_unfinished_jobs(Some("c"), 2).await.expect("page")), ["e", "g"]);
    assert!(store.list_unfinished_jobs(Some("g"), 2).await.expect("page").is_empty());
    assert!(store.list_unfinished_jobs(None, 0).await.expect("none").is_empty());
    let running = store.list_unfinished_jobs(Some("b"), 1).await.expect("page");
    assert_eq!(running[0], store.get_job("c").await.expect("c"));
    store.close().await;
}

pub(crate) async fn orgs_crud_and_versions(ctx: Ctx) {
    let store = ctx.open().await;
    let org = |members: &[&str]| json!({"org_name": "Acme", "members": members, "org_description": "x"});
    let v1 = store.put_org("org-1", org(&["agent:a"]), None, T0).await.expect("create");
    assert_eq!((v1.org_id.as_str(), v1.version, v1.created_ms, v1.updated_ms), ("org-1", 1, T0, T0));
    assert_eq!(v1.members().collect::<Vec<_>>(), ["agent:a"]);
    assert_eq!(store.get_org("org-1").await.expect("get"), v1);

    let v2 = store.put_org("org-1", org(&["agent:a", "agent:b"]), Some(1), T0 + 5).await.expect("replace");
    assert_eq!((v2.version, v2.created_ms, v2.updated_ms), (2, T0, T0 + 5));
    assert_eq!(v2.members().collect::<Vec<_>>(), ["agent:a", "agent:b"]);
    let err = store.put_org("org-1", org(&[]), Some(1), T0 + 6).await.expect_err("stale");
    assert!(matches!(err, StoreError::StaleVersion { kind: "org", expected: 1, actual: 2, .. }), "{err:?}");
    let err = store.put_org("org-1", org(&[]), Some(0), T0 + 6).await.expect_err("exists");
    assert!(matches!(err, StoreError::StaleVersion { expected: 0, actual: 2, .. }), "{err:?}");
    let err = store.put_org("org-9", org(&[]), Some(3), T0 + 6).await.expect_err("absent");
    assert!(matches!(err, StoreError::StaleVersion { expected: 3, actual: 0, .. }), "{err:?}");
    assert_eq!(store.get_org("org-1").await.expect("get"), v2);

    store.put_org("org-0", json!({"members": "not a list"}), Some(0), T0).await.expect("create");
    assert_eq!(store.get_org("org-0").await.expect("get").members().count(), 0);
    let ids: Vec<String> =
        store.list_orgs(None, 10).await.expect("list").into_iter().map(|o| o.org_id).collect();
    assert_eq!(ids, ["org-0", "org-1"]);
    let page = store.list_orgs(Some("org-0"), 10).await.expect("page");
    assert_eq!(page, [v2]);

    store.delete_org("org-1").await.expect("delete");
    let err = store.get_org("org-1").await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { kind: "org", .. }), "{err:?}");
    let err = store.delete_org("org-1").await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { kind: "org", .. }), "{err:?}");
    let err = store.put_org("", org(&[]), None, T0).await.expect_err("empty id");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    store.close().await;
}

pub(crate) async fn subscriptions(ctx: Ctx) {
    let store = ctx.open().await;
    assert!(store.subscribe("db-b", "agent:z", T0).await.expect("new"));
    assert!(!store.subscribe("db-b", "agent:z", T0 + 1).await.expect("again"), "idempotent");
    assert!(store.subscribe("db-b", "org:acme", T0 + 2).await.expect("new"));
    assert!(store.subscribe("db-b", "agent:a", T0 + 3).await.expect("new"));
    assert!(store.subscribe("db-a", "agent:z", T0 + 4).await.expect("new"));

    let subjects = |subs: Vec<xchange_store::Subscription>| -> Vec<(String, String, i64)> {
        subs.into_iter().map(|s| (s.taskdb, s.subject_id, s.created_ms)).collect()
    };
    let of_b = subjects(store.subscribers("db-b", None, 10).await.expect("subscribers"));
    let expected = [("db-b", "agent:a", T0 + 3), ("db-b", "agent:z", T0), ("db-b", "org:acme", T0 + 2)];
    let expected: Vec<(String, String, i64)> =
        expected.iter().map(|(t, s, ms)| ((*t).to_owned(), (*s).to_owned(), *ms)).collect();
    assert_eq!(of_b, expected, "in subject order, the first subscription's time kept");
    let page = subjects(store.subscribers("db-b", Some("agent:a"), 1).await.expect("page"));
    assert_eq!(page, expected[1..2]);
    let of_z = subjects(store.subscriptions_of("agent:z", None, 10).await.expect("subscriptions"));
    assert_eq!(of_z, [("db-a".to_owned(), "agent:z".to_owned(), T0 + 4), expected[1].clone()]);
    assert_eq!(
        subjects(store.subscriptions_of("agent:z", Some("db-a"), 10).await.expect("page")),
        expected[1..2]
    );
    assert!(store.subscribers("db-none", None, 10).await.expect("none").is_empty());

    assert!(store.unsubscribe("db-b", "agent:z").await.expect("removed"));
    assert!(!store.unsubscribe("db-b", "agent:z").await.expect("already gone"));
    assert_eq!(store.subscribers("db-b", None, 10).await.expect("subscribers").len(), 2);
    assert_eq!(store.subscriptions_of("agent:z", None, 10).await.expect("subscriptions").len(), 1);
    let err = store.subscribe("db-b", "", T0).await.expect_err("empty subject");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    store.close().await;
}

pub(crate) async fn agent_cards(ctx: Ctx) {
    let store = ctx.open().await;
    let card = |skill: &str| json!({"name": "summariser", "skills": [skill], "endpoint": "ws://a"});
    let put = store.put_agent_card("agent:b", card("nlp"), T0).await.expect("put");
    assert_eq!((put.agent_id.as_str(), put.updated_ms), ("agent:b", T0));
    assert_eq!(store.get_agent_card("agent:b").await.expect("get"), put);
    let replaced = store.put_agent_card("agent:b", card("vision"), T0 + 5).await.expect("replace");
    assert_eq!((replaced.card.clone(), replaced.updated_ms), (card("vision"), T0 + 5));
    assert_eq!(store.get_agent_card("agent:b").await.expect("get"), replaced);
    store.put_agent_card("agent:a", card("nlp"), T0).await.expect("put");
    let ids: Vec<String> =
        store.list_agent_cards(None, 10).await.expect("list").into_iter().map(|c| c.agent_id).collect();
    assert_eq!(ids, ["agent:a", "agent:b"]);
    assert_eq!(store.list_agent_cards(Some("agent:a"), 10).await.expect("page"), [replaced]);

    store.delete_agent_card("agent:b").await.expect("delete");
    let err = store.get_agent_card("agent:b").await.expect_err("gone");
    assert!(matches!(err, StoreError::NotFound { kind: "agent card", .. }), "{err:?}");
    assert!(matches!(store.delete_agent_card("agent:b").await, Err(StoreError::NotFound { .. })));
    let err = store.put_agent_card("agent:c", json!({"x": "\u{0}"}), T0).await.expect_err("nul");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    store.close().await;
}

pub(crate) async fn job_counts_and_latency(ctx: Ctx) {
    let store = ctx.open().await;
    // db-a: ten completed jobs that took 10, 20, ..., 100 ms (created in another order),
    // one failed, one running, one submitted. db-b: one submitted.
    for n in 0..10_u64 {
        let job = created(&store, new_job(&format!("a-{n}"), "db-a", n)).await;
        let took = 10 * ((n * 7) % 10 + 1) as i64;
        store.transition(to(&job, JobState::Completed, job.created_ms + took)).await.expect("complete");
    }
    let failed = created(&store, new_job("a-failed", "db-a", 20)).await;
    store.transition(to(&failed, JobState::Failed, failed.created_ms + 1)).await.expect("fail");
    let running = created(&store, new_job("a-running", "db-a", 21)).await;
    store.transition(to(&running, JobState::Running, running.created_ms + 1)).await.expect("run");
    created(&store, new_job("a-new", "db-a", 22)).await;
    created(&store, new_job("b-new", "db-b", 23)).await;

    let counts = store.job_counts_by_taskdb().await.expect("counts");
    let expected = [
        TaskDbJobCounts {
            taskdb: "db-a".to_owned(),
            counts: BTreeMap::from([
                (JobState::Submitted, 1),
                (JobState::Running, 1),
                (JobState::Completed, 10),
                (JobState::Failed, 1),
            ]),
        },
        TaskDbJobCounts { taskdb: "db-b".to_owned(), counts: BTreeMap::from([(JobState::Submitted, 1)]) },
    ];
    assert_eq!(counts, expected);
    assert_eq!(counts[0].total(), 13);

    let latency = store.completed_latency("db-a").await.expect("latency");
    let expected = LatencySummary {
        count: 10,
        min_ms: 10,
        p50_ms: 50,
        p90_ms: 90,
        p99_ms: 100,
        max_ms: 100,
        sum_ms: 550,
    };
    assert_eq!(latency, Some(expected));
    assert_eq!(store.completed_latency("db-b").await.expect("none"), None);
    assert_eq!(store.completed_latency("db-none").await.expect("none"), None);
    store.close().await;
}

pub(crate) async fn api_keys_are_kept_hashed_and_revoked_once(ctx: Ctx) {
    let store = ctx.open().await;
    let key = |id: &str, org: &str| xchange_store::ApiKey {
        key_id: id.to_owned(),
        org_id: org.to_owned(),
        scopes: vec!["submit".to_owned(), "read".to_owned()],
        secret_hash: "ab".repeat(32),
        label: "ci".to_owned(),
        created_ms: T0,
        revoked_ms: None,
    };
    store.create_api_key(&key("k2", "acme")).await.expect("create");
    store.create_api_key(&key("k1", "other")).await.expect("create");
    assert_eq!(store.get_api_key("k2").await.expect("get"), key("k2", "acme"));
    let err = store.create_api_key(&key("k2", "acme")).await.expect_err("the id exists");
    assert_eq!(err.code(), Code::InvalidRequest);
    let mut bad = key("k3", "acme");
    bad.secret_hash = "secret".to_owned();
    assert_eq!(store.create_api_key(&bad).await.expect_err("not a hash").code(), Code::InvalidRequest);
    bad = key("k3", "acme");
    bad.scopes = vec!["read write".to_owned()];
    assert_eq!(store.create_api_key(&bad).await.expect_err("two words").code(), Code::InvalidRequest);
    assert_eq!(store.get_api_key("k3").await.expect_err("refused, not stored").code(), Code::NotFound);

    let ids: Vec<String> =
        store.list_api_keys(None, 10).await.expect("list").into_iter().map(|k| k.key_id).collect();
    assert_eq!(ids, ["k1", "k2"]);
    assert_eq!(store.list_api_keys(Some("k1"), 10).await.expect("page").len(), 1);

    let revoked = store.revoke_api_key("k2", T0 + 5).await.expect("revoke");
    assert_eq!(revoked.revoked_ms, Some(T0 + 5));
    let again = store.revoke_api_key("k2", T0 + 9).await.expect("revoke again");
    assert_eq!(again.revoked_ms, Some(T0 + 5), "the first revocation stands");
    assert_eq!(store.revoke_api_key("nope", T0).await.expect_err("unknown").code(), Code::NotFound);
    store.close().await;
}
