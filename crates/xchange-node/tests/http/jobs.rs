use serde_json::{Value, json};

use crate::common::{TestNode, job, refused};

fn upper(v: &Value) -> Value {
    json!(v["text"].as_str().unwrap_or_default().to_uppercase())
}

#[tokio::test]
async fn a_job_runs_through_the_contract_net_to_its_result() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    t.host(2, "upper", upper);
    let (status, created) = t.post("/v1/jobs", &job("j-echo", "echo", json!({"text": "hello"}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "submitted");
    assert_eq!(created["taskdb"], "global");
    let done = t.wait_terminal("j-echo").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"text": "hello"}));

    t.post("/v1/jobs", &job("j-up", "upper", json!({"text": "abc"}))).await;
    let done = t.wait_terminal("j-up").await;
    assert_eq!(done["result"], json!("ABC"));
    t.stop().await;
}

#[tokio::test]
async fn the_same_job_again_is_a_replay_and_another_body_a_conflict() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    let body = job("j1", "echo", json!(1));
    assert_eq!(t.post("/v1/jobs", &body).await.0, 201);
    let (status, again) = t.post("/v1/jobs", &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["job_id"], "j1");
    let other = job("j1", "echo", json!(2));
    assert_eq!(refused(&t.post("/v1/jobs", &other).await, 409, 5021), None);
    t.wait_terminal("j1").await;
    let (_, list) = t.get("/v1/jobs").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    t.stop().await;
}

#[tokio::test]
async fn history_shows_every_transition_in_order() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    t.post("/v1/jobs", &job("h1", "echo", json!("x"))).await;
    t.wait_terminal("h1").await;
    let events = t.job_events("h1").await;
    let states: Vec<String> = events
        .iter()
        .map(|e| e["payload"]["state"].as_str().unwrap_or(e["kind"].as_str().unwrap()).to_owned())
        .collect();
    // `running` shows only when the contractor reports a start before its result (an
    // instant execution reports the result first).
    let without_running: Vec<&String> = states.iter().filter(|s| *s != "running").collect();
    assert_eq!(without_running, ["job_posting", "announced", "awarded", "completed"], "{events:?}");
    t.stop().await;
}

#[tokio::test]
async fn cancel_ends_a_waiting_job_and_refuses_an_ended_one() {
    let t = TestNode::start().await;
    // No agent offers `nobody`: the job waits for one.
    t.post("/v1/jobs", &job("c1", "nobody", json!(null))).await;
    let (status, _) = t.post("/v1/jobs/c1/cancel", &json!({"reason": "changed my mind"})).await;
    assert_eq!(status, 202);
    let done = t.wait_terminal("c1").await;
    assert_eq!(done["state"], "cancelled");
    assert_eq!(done["reason"]["code"], 5028);
    refused(&t.post("/v1/jobs/c1/cancel", &json!({})).await, 409, 5021);
    refused(&t.post("/v1/jobs/nope/cancel", &json!({})).await, 404, 5020);
    t.stop().await;
}

#[tokio::test]
async fn queries_find_jobs_with_the_filter_language() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    for (id, who, prio) in [("q1", "alice", 1), ("q2", "bob", 5), ("q3", "alice", 9)] {
        let mut body = job(id, "echo", json!({"n": prio}));
        body["submitted_by"] = json!(who);
        body["job_priority_value"] = json!(prio);
        t.post("/v1/jobs", &body).await;
    }
    for id in ["q1", "q2", "q3"] {
        t.wait_terminal(id).await;
    }
    let q = json!({"filter": {"submitted_by": "alice", "job_priority_value": {"$gte": 5}}});
    let (status, page) = t.post("/v1/jobs/query", &q).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["q3"]);
    let q = json!({"filter": {"state": "completed", "job_init_data.n": {"$in": [1, 5]}}, "limit": 1});
    let (_, page) = t.post("/v1/jobs/query", &q).await;
    assert_eq!(page["items"][0]["job_id"], "q1");
    let next = page["next"].as_str().unwrap().to_owned();
    let q = json!({"filter": {"state": "completed", "job_init_data.n": {"$in": [1, 5]}}, "after": next});
    let (_, page) = t.post("/v1/jobs/query", &q).await;
    assert_eq!(page["items"][0]["job_id"], "q2", "{page}");
    assert!(page.get("next").is_none());
    t.stop().await;
}

#[tokio::test]
async fn inputs_are_checked_against_templates_and_schemas() {
    let t = TestNode::start().await;
    let schema = json!({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}});
    let r = t.http.put(t.url("/v1/templates/text-in")).json(&schema).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = job("t1", "echo", json!({"text": 5}));
    body["template"] = json!("text-in");
    let field = refused(&t.post("/v1/jobs/validate", &body).await, 422, 5014);
    assert_eq!(field.as_deref(), Some("job_init_data.text"));
    body["job_init_data"] = json!({"text": "ok"});
    let (status, v) = t.post("/v1/jobs/validate", &body).await;
    assert_eq!((status, v["routing"]["taskdb"].clone()), (200, json!("global")), "{v}");
    // Validation stores nothing.
    refused(&t.get("/v1/jobs/t1").await, 404, 5020);
    body["template"] = json!("missing");
    assert_eq!(refused(&t.post("/v1/jobs", &body).await, 404, 5020).as_deref(), Some("template"));
    let mut body = job("t2", "echo", json!([1]));
    body["input_schema"] = json!({"type": "object"});
    assert_eq!(refused(&t.post("/v1/jobs", &body).await, 422, 5014).as_deref(), Some("job_init_data"));
    let (_, list) = t.get("/v1/templates").await;
    assert_eq!(list["items"][0]["name"], "text-in");
    t.stop().await;
}
