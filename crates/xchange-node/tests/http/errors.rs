//! Bad input: each kind gets a 4xx with its code from the table and the field, and
//! nothing is written.

use serde_json::json;
use xchange_node::NodeConfig;

use crate::common::{TestNode, job, refused};

#[tokio::test]
async fn bad_bodies_get_their_codes_and_write_nothing() {
    let t = TestNode::start_with(NodeConfig { max_body_bytes: 4096, ..NodeConfig::default() }).await;
    refused(&t.post_raw("/v1/jobs", "{\"job_goal\": ").await, 400, 5015);
    refused(&t.post_raw("/v1/jobs", "").await, 400, 5015);
    refused(&t.post_raw("/v1/jobs", "[1, 2]").await, 422, 5014);

    let mut wrong_type = job("e1", "echo", json!(1));
    wrong_type["job_priority_value"] = json!("high");
    assert_eq!(
        refused(&t.post("/v1/jobs", &wrong_type).await, 422, 5014).as_deref(),
        Some("job_priority_value")
    );

    let mut unknown = job("e2", "echo", json!(1));
    unknown["colour"] = json!("blue");
    let answer = t.post("/v1/jobs", &unknown).await;
    refused(&answer, 422, 5014);
    assert!(answer.1["error"]["message"].as_str().unwrap().contains("colour"), "{}", answer.1);

    let mut missing = job("e3", "echo", json!(1));
    missing.as_object_mut().unwrap().remove("capability");
    let answer = t.post("/v1/jobs", &missing).await;
    refused(&answer, 422, 5014);
    assert!(answer.1["error"]["message"].as_str().unwrap().contains("capability"), "{}", answer.1);

    let mut bad_name = job("e4", "echo", json!(1));
    bad_name["capability"] = json!("has space");
    assert_eq!(refused(&t.post("/v1/jobs", &bad_name).await, 422, 5014).as_deref(), Some("capability"));

    let big = job("e5", "echo", json!("x".repeat(8192)));
    refused(&t.post("/v1/jobs", &big).await, 413, 5019);

    let mut no_db = job("e6", "echo", json!(1));
    no_db["task_db_id"] = json!("nowhere");
    assert_eq!(refused(&t.post("/v1/jobs", &no_db).await, 404, 5020).as_deref(), Some("task_db_id"));

    let mut past = job("e7", "echo", json!(1));
    past["deadline_ms"] = json!(1000);
    assert_eq!(refused(&t.post("/v1/jobs", &past).await, 400, 5038).as_deref(), Some("deadline_ms"));

    let (_, list) = t.get("/v1/jobs").await;
    assert_eq!(list["items"], json!([]), "a refused job was written: {list}");
    t.stop().await;
}

#[tokio::test]
async fn bad_filters_are_refused_with_their_place() {
    let t = TestNode::start().await;
    let answer = t.post("/v1/jobs/query", &json!({"filter": {"price": {"$foo": 1}}})).await;
    let field = refused(&answer, 422, 5014);
    assert_eq!(field.as_deref(), Some("filter.price"));
    assert!(answer.1["error"]["message"].as_str().unwrap().contains("$foo"), "{}", answer.1);

    let mut deep = json!({"a": 1});
    for _ in 0..60 {
        deep = json!({"$and": [deep]});
    }
    refused(&t.post("/v1/jobs/query", &json!({"filter": deep})).await, 413, 5019);
    let regex = json!({"filter": {"s": {"$regex": "(a+)+".repeat(3000)}}});
    refused(&t.post("/v1/jobs/query", &regex).await, 413, 5019);
    refused(&t.post("/v1/jobs/query", &json!({"filter": [1]})).await, 422, 5014);
    refused(&t.post("/v1/jobs/query", &json!({"limit": 0})).await, 400, 5038);
    refused(&t.post("/v1/taskdbs/query", &json!({"filter": {"$where": "1"}})).await, 422, 5014);
    let mut bad_search = job("s1", "echo", json!(1));
    bad_search["search"] = json!({"tags": {"$elemMatch": 3}});
    refused(&t.post("/v1/jobs", &bad_search).await, 422, 5014);
    let r = t.http.get(t.url("/v1/events?filter=%7B%22%24bad%22%3A1%7D")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    t.stop().await;
}

#[tokio::test]
async fn unknown_things_are_not_found() {
    let t = TestNode::start().await;
    refused(&t.get("/v1/jobs/unknown").await, 404, 5020);
    refused(&t.get("/v1/taskdbs/unknown").await, 404, 5020);
    refused(&t.get("/v1/templates/unknown").await, 404, 5020);
    refused(&t.get("/v1/nothing-here").await, 404, 5020);
    refused(&t.get("/v1/jobs/unknown/events").await, 404, 5020);
    let r = t.http.delete(t.url("/v1/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = t.http.get(t.url("/v1/events")).header("last-event-id", "abc").send().await.unwrap();
    assert_eq!(r.status(), 400);
    t.stop().await;
}
