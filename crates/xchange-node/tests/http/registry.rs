use serde_json::{Value, json};

use crate::common::{TestNode, job, refused};

fn entry(id: &str, tags: &[&str], cluster: &str) -> Value {
    json!({
        "task_listing_db_id": id,
        "association_ids": ["org-1"],
        "task_listing_db_api_url": "http://127.0.0.1:7192",
        "search_metadata": {"tags": tags, "capabilities": ["echo"]},
        "task_db_characteristics_data": {"region": "eu"},
        "collection_ids": ["default"],
        "accessibility_data": {"visibility": "public"},
        "task_db_cluster_id": cluster,
    })
}

#[tokio::test]
async fn task_databases_are_created_searched_and_counted() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    let (status, created) = t.post("/v1/taskdbs", &entry("nlp-eu", &["nlp", "text"], "eu-1")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    t.post("/v1/taskdbs", &entry("vision", &["images"], "us-1")).await;
    refused(&t.post("/v1/taskdbs", &entry("vision", &[], "us-1")).await, 409, 5021);

    let q =
        json!({"filter": {"search_metadata.tags": "nlp", "task_db_cluster_id": {"$in": ["eu-1", "eu-2"]}}});
    let (status, page) = t.post("/v1/taskdbs/query", &q).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["task_listing_db_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["nlp-eu"]);

    let mut body = job("db-1", "echo", json!("hi"));
    body["task_db_id"] = json!("nlp-eu");
    let (status, j) = t.post("/v1/jobs", &body).await;
    assert_eq!((status, j["taskdb"].clone()), (201, json!("nlp-eu")), "{j}");
    assert_eq!(t.wait_terminal("db-1").await["state"], "completed");
    t.post("/v1/jobs", &job("db-2", "echo", json!("elsewhere"))).await;
    t.wait_terminal("db-2").await;

    let (_, jobs) = t.post("/v1/taskdbs/nlp-eu/jobs/query", &json!({})).await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");
    let (_, db) = t.get("/v1/taskdbs/nlp-eu").await;
    let stats = &db["entry"]["task_db_aggregate_performance_stats"];
    assert_eq!(stats["jobs"], 1, "{db}");
    assert_eq!(stats["jobs_by_state"]["completed"], 1);
    assert_eq!(stats["completion_rate"], 1.0);
    assert!(stats["latency_ms_p50"].is_number(), "{stats}");

    let (_, all) = t.get("/v1/taskdbs").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "global, nlp-eu, vision: {all}");
    t.stop().await;
}

#[tokio::test]
async fn registry_refusals() {
    let t = TestNode::start().await;
    let mut bad = entry("x", &[], "c");
    bad["task_db_aggregate_performance_stats"] = json!({"jobs": 1_000_000});
    let field = refused(&t.post("/v1/taskdbs", &bad).await, 400, 5038);
    assert_eq!(field.as_deref(), Some("task_db_aggregate_performance_stats"));
    let mut bad = entry("x", &[], "c");
    bad["accessibility_data"] = json!({"visibility": "secret"});
    refused(&t.post("/v1/taskdbs", &bad).await, 422, 5014);
    refused(&t.post("/v1/taskdbs", &entry("has.dot", &[], "c")).await, 422, 5014);
    t.post("/v1/taskdbs", &entry("y", &[], "c")).await;
    let r = t.http.put(t.url("/v1/taskdbs/z")).json(&entry("y", &[], "c")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = t.http.put(t.url("/v1/taskdbs/y")).json(&entry("y", &["new"], "c")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, y) = t.get("/v1/taskdbs/y").await;
    assert_eq!(
        (y["version"].clone(), y["entry"]["search_metadata"]["tags"][0].clone()),
        (json!(2), json!("new"))
    );
    let r = t.http.delete(t.url("/v1/taskdbs/global")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let private_global =
        json!({"task_listing_db_id": "global", "accessibility_data": {"visibility": "private"}});
    let r = t.http.put(t.url("/v1/taskdbs/global")).json(&private_global).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = t.http.delete(t.url("/v1/taskdbs/y")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    refused(&t.get("/v1/taskdbs/y").await, 404, 5020);
    let r = t.http.put(t.url("/v1/templates/bad")).json(&json!({"type": 7})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    t.stop().await;
}
