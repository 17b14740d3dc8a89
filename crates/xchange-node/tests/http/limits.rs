//! Limits: a key over its request rate, and a node at its bound of running jobs, are
//! answered 429 `busy` (5005) with `Retry-After`; other keys are not held back. An agent
//! over its message rate is refused 5005 with the time to wait, and a connection beyond
//! the node's limit is refused 5008.

use futures_util::StreamExt;
use serde_json::json;
use xchange_node::NodeConfig;
use xchange_protocol::{AgentId, Body, Code, ProgressBody, TaskId};
use xchange_ws::{Frame, Inbound, TextFrames, read_frame};

use crate::common::{TestNode, answer, job, refused};
use crate::raw_agent::{RawAgent, Received};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_its_message_rate_and_a_connection_over_the_limit_are_refused() {
    let config = NodeConfig {
        agent_rate_per_second: 1,
        agent_rate_burst: 2,
        max_agent_connections: 1,
        ..NodeConfig::default()
    };
    let t = TestNode::start_with(config).await;
    let mut agent = RawAgent::connect(&t, 71, "work", 1).await;
    let progress = || Body::Progress(ProgressBody { fraction: 0.5, started: true, note: None });
    let task = TaskId::new_v7(1, [7; 10]);
    // The rate is checked at the edge, before the message goes anywhere.
    let to = AgentId::from_index(0, 1);
    let sent: Vec<_> = (0..3).map(|_| agent.send(to, task, 1, None, progress()).id).collect();
    match agent.next().await {
        Received::Refused { code: Code::Busy, id } => assert_eq!(id, Some(sent[2])),
        other => panic!("the third message within a second was not refused: {other:?}"),
    }

    // A second connection while the first is open: refused before the challenge.
    let url = format!("ws://{}/v1/agents/connect", t.base.trim_start_matches("http://"));
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut frames = TextFrames::new(ws);
    let text = frames.next().await.unwrap().unwrap();
    match read_frame(&text) {
        Ok(Inbound::Frame(Frame::Refused(e))) => assert_eq!(e.code, Code::ConnectionLimit, "{e:?}"),
        _ => panic!("a connection over the limit was not refused: {text}"),
    }
    t.stop().await;
}

#[tokio::test]
async fn filters_are_bounded_by_the_nodes_settings() {
    let config = NodeConfig { filter_max_depth: 2, filter_max_conditions: 2, ..NodeConfig::default() };
    let t = TestNode::start_with(config).await;
    let (status, _) = t.post("/v1/jobs/query", &json!({"filter": {"state": "completed"}})).await;
    assert_eq!(status, 200);
    let deep = json!({"filter": {"state": {"$in": ["completed"]}}});
    let answer = t.post("/v1/jobs/query", &deep).await;
    assert_eq!(refused(&answer, 413, 5019).as_deref(), Some("filter.state"), "{answer:?}");
    let many = json!({"filter": {"a": 1, "b": 2, "c": 3}});
    refused(&t.post("/v1/agents/query", &many).await, 413, 5019);
    t.stop().await;
}
