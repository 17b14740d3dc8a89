//! Limits: a key over its request rate, and a node at its bound of running jobs, are
//! answered 429 `busy` (5005) with `Retry-After`; other keys are not held back.

use serde_json::json;
use xchange_node::NodeConfig;

use crate::common::{TestNode, answer, job, refused};

async fn new_key(t: &TestNode, org: &str) -> String {
    let (status, created) = t.post("/v1/keys", &json!({"org_id": org, "scopes": ["submit", "read"]})).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

async fn get_as(t: &TestNode, key: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new().get(t.url(path)).bearer_auth(key).send().await.unwrap()
}

#[tokio::test]
async fn a_key_over_its_rate_waits_and_the_others_go_on() {
    let config = NodeConfig { rate_limit_per_key: 1, rate_limit_burst: 3, ..NodeConfig::default() };
    let t = TestNode::start_with(config).await;
    let (busy_key, other_key) = (new_key(&t, "a").await, new_key(&t, "b").await);
    for _ in 0..3 {
        assert_eq!(get_as(&t, &busy_key, "/v1/jobs").await.status(), 200);
    }
    let r = get_as(&t, &busy_key, "/v1/jobs").await;
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    refused(&answer(r).await, 429, 5005);
    assert_eq!(get_as(&t, &other_key, "/v1/jobs").await.status(), 200, "another key has its own quota");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(get_as(&t, &busy_key, "/v1/jobs").await.status(), 200, "after the wait it goes through");
    t.stop().await;
}

#[tokio::test]
async fn a_node_at_its_bound_of_running_jobs_refuses_more() {
    let t = TestNode::start_with(NodeConfig { max_running_jobs: 2, ..NodeConfig::default() }).await;
    // No contractor: the jobs wait, running at the node.
    for i in 0..2 {
        assert_eq!(t.post("/v1/jobs", &job(&format!("w{i}"), "nobody", json!(i))).await.0, 201);
    }
    let r = t.http.post(t.url("/v1/jobs")).json(&job("w2", "nobody", json!(2))).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    refused(&answer(r).await, 429, 5005);
    refused(&t.get("/v1/jobs/w2").await, 404, 5020);
    // A replay of an acknowledged job is still answered.
    assert_eq!(t.post("/v1/jobs", &job("w0", "nobody", json!(0))).await.0, 200);
    t.stop().await;
}
