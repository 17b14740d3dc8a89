//! Remote agents over the WebSocket: they run jobs, their cards are stored and queried,
//! and their departures are told apart (5003 goodbye, 5009 dropped).

use std::time::Duration;

use serde_json::{Value, json};
use xchange_core::ContractorProfile;
use xchange_protocol::AgentKey;
use xchange_runtime::{Execution, contractor_fn};
use xchange_ws::{ConnectOptions, RemoteAgent, connect};

use crate::common::{TestNode, job, refused};

pub(crate) async fn remote(base: &str, seed: u8, capability: &str) -> RemoteAgent {
    remote_priced(base, seed, capability, ContractorProfile::new(["x"]).price_per_unit).await
}

/// A remote echo agent asking `price` per unit.
pub(crate) async fn remote_priced(base: &str, seed: u8, capability: &str, price: u64) -> RemoteAgent {
    let behavior = contractor_fn(|_ctx, spec| Execution::done(json!({"echo": spec.input.clone()})));
    let mut profile = ContractorProfile::new([capability]);
    profile.price_per_unit = price;
    let options = ConnectOptions::new(AgentKey::from_seed([seed; 32]), profile, behavior);
    connect(base, options).await.expect("the agent connects")
}

async fn status_of(t: &TestNode, id: &str) -> Value {
    let (status, entry) = t.get(&format!("/v1/agents/{id}")).await;
    assert_eq!(status, 200, "{entry}");
    entry
}

pub(crate) async fn wait_status(t: &TestNode, id: &str, code: u64) -> Value {
    for _ in 0..200 {
        // The card is stored just after the welcome: not found for a moment.
        let (_, entry) = t.get(&format!("/v1/agents/{id}")).await;
        if entry["status"]["code"] == code {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent {id} never reached status {code}: {}", status_of(t, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_agents_run_jobs_and_their_comings_and_goings_are_reported() {
    let t = TestNode::start().await;
    let polite = remote(&t.base, 1, "remote-echo").await;
    let rude = remote(&t.base, 2, "other").await;
    let (polite_id, rude_id) = (polite.id().to_string(), rude.id().to_string());
    wait_status(&t, &polite_id, 5001).await;

    t.post("/v1/jobs", &job("w1", "remote-echo", json!({"x": 1}))).await;
    let done = t.wait_terminal("w1").await;
    assert_eq!(done["result"], json!({"echo": {"x": 1}}), "{done}");

    let (status, found) =
        t.post("/v1/agents/query", &json!({"filter": {"capabilities": "remote-echo"}})).await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<&str> =
        found["items"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [polite_id.as_str()]);
    let (_, all) = t.get("/v1/agents").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");

    polite.shutdown().await.unwrap();
    let entry = wait_status(&t, &polite_id, 5003).await;
    assert_eq!(entry["connected"], false);
    rude.kill().await;
    wait_status(&t, &rude_id, 5009).await;
    refused(&t.get("/v1/agents/nobody").await, 404, 5020);
    refused(&t.post("/v1/agents/query", &json!({"filter": {"$nope": 1}})).await, 422, 5014);
    t.stop().await;
}
