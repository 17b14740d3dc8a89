//! Organisations, subscriptions, and the private path: a private database's jobs go
//! directly to a connected member, never to anyone else.

use serde_json::json;

use crate::agents::{remote, remote_priced, wait_status};
use crate::common::{TestNode, job, refused};

async fn awarded_to(t: &TestNode, job_id: &str) -> String {
    t.job_events(job_id)
        .await
        .into_iter()
        .find(|e| e["payload"]["state"] == "awarded")
        .map(|e| e["payload"]["detail"]["contractor"].as_str().unwrap().to_owned())
        .expect("an award")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_jobs_run_only_on_members() {
    let t = TestNode::start().await;
    // The outsider is cheaper: an announced job would go to it.
    let outsider = remote_priced(&t.base, 3, "secret", 1).await;
    let insider = remote(&t.base, 4, "secret").await;
    let (outsider_id, insider_id) = (outsider.id().to_string(), insider.id().to_string());
    wait_status(&t, &insider_id, 5001).await;
    wait_status(&t, &outsider_id, 5001).await;
    let db = json!({"task_listing_db_id": "acme-private", "accessibility_data": {"visibility": "private"}});
    assert_eq!(t.post("/v1/taskdbs", &db).await.0, 201);
    let mut private_job = job("p1", "secret", json!("classified"));
    private_job["task_db_id"] = json!("acme-private");
    // No subscriber yet: refused, and nothing stored.
    assert_eq!(refused(&t.post("/v1/jobs", &private_job).await, 503, 5024).as_deref(), Some("task_db_id"));
    refused(&t.get("/v1/jobs/p1").await, 404, 5020);

    let org = json!({"org_id": "acme", "org_name": "Acme", "members": [insider_id]});
    assert_eq!(t.post("/v1/orgs", &org).await.0, 201);
    let r = t.http.put(t.url("/v1/taskdbs/acme-private/subscribers/acme")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = t.http.put(t.url("/v1/taskdbs/acme-private/subscribers/acme")).send().await.unwrap();
    assert_eq!(r.status(), 200, "subscribing twice is harmless");
    for i in 0..4 {
        let mut j = private_job.clone();
        j["job_id"] = json!(format!("p{i}"));
        assert_eq!(t.post("/v1/jobs", &j).await.0, 201);
        assert_eq!(t.wait_terminal(&format!("p{i}")).await["state"], "completed");
        assert_eq!(awarded_to(&t, &format!("p{i}")).await, insider_id, "a private job went to an outsider");
    }
    let (_, subs) = t.get("/v1/taskdbs/acme-private/subscribers").await;
    assert_eq!(subs["items"][0]["subject_id"], "acme", "{subs}");
    // The same job on the public path goes to the cheaper outsider: the test can tell.
    assert_eq!(t.post("/v1/jobs", &job("pub", "secret", json!(1))).await.0, 201);
    t.wait_terminal("pub").await;
    assert_eq!(awarded_to(&t, "pub").await, outsider_id);
    outsider.shutdown().await.unwrap();
    insider.shutdown().await.unwrap();
    t.stop().await;
}

#[tokio::test]
async fn org_and_subscription_refusals() {
    let t = TestNode::start().await;
    refused(&t.post("/v1/orgs", &json!({"org_id": "x", "members": ["not-an-agent"]})).await, 422, 5014);
    refused(&t.post("/v1/orgs", &json!({"org_id": "bad id"})).await, 422, 5014);
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": "o1"})).await.0, 201);
    refused(&t.post("/v1/orgs", &json!({"org_id": "o1"})).await, 409, 5021);
    let r = t.http.put(t.url("/v1/orgs/o2")).json(&json!({"org_id": "o1"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = t.http.put(t.url("/v1/taskdbs/nowhere/subscribers/o1")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = t.http.put(t.url("/v1/taskdbs/global/subscribers/no-such-org")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = t.http.delete(t.url("/v1/taskdbs/global/subscribers/o1")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = t.http.delete(t.url("/v1/orgs/o1")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    refused(&t.get("/v1/orgs/o1").await, 404, 5020);
    t.stop().await;
}
