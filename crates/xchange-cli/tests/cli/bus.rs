//! Agents as separate processes over a real bus (`XCHANGE_TEST_NATS`, `XCHANGE_TEST_REDIS`;
//! CI sets both): an agent process completes a job a node took over HTTP, and two agent
//! processes contract with no node at all, the manager finding the contractor only through
//! the bus's directory.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::procs::Agent;
use crate::serve::{Served, job};

pub(crate) fn unique_prefix(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{what}{}x{nanos}", std::process::id())
}

/// Deletes what a run left on the shared NATS server: the directory, registry and
/// forwarded-jobs buckets and the events stream of `prefix`.
pub(crate) async fn clean_nats(url: &str, prefix: &str) {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let _ = js.delete_key_value(format!("{prefix}_agents")).await;
    let _ = js.delete_stream(format!("{}_EVENTS", prefix.to_uppercase())).await;
    let _ = js.delete_key_value(format!("{prefix}_registry")).await;
    let _ = js.delete_key_value(format!("{prefix}_forwarded")).await;
}

/// Reads the events stream of `prefix` with the durable consumer `reader`, acknowledging
/// what it reads, until the completion of `job_id`: a second call resumes after it.
async fn read_events_until_done(url: &str, prefix: &str, reader: &str, job_id: &str) -> Vec<(String, Value)> {
    use async_nats::jetstream::consumer::pull;
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let stream = js.get_stream(format!("{}_EVENTS", prefix.to_uppercase())).await.expect("the events stream");
    let config = pull::Config { durable_name: Some(reader.to_owned()), ..Default::default() };
    let consumer = stream.get_or_create_consumer(reader, config).await.unwrap();
    let mut out: Vec<(String, Value)> = Vec::new();
    for _ in 0..50 {
        let mut batch =
            consumer.fetch().max_messages(100).expires(Duration::from_millis(200)).messages().await.unwrap();
        while let Some(Ok(m)) = batch.next().await {
            let id = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
            out.push((id.unwrap_or_default(), serde_json::from_slice(&m.payload).unwrap()));
            m.ack().await.unwrap();
        }
        if out.iter().any(|(_, e)| e["job_id"] == job_id && e["payload"]["state"] == "completed") {
            break;
        }
    }
    out
}

/// A node and an agent process on the bus at `url`: the agent completes a job submitted
/// to the node over HTTP. Returns the node (still running) and the prefix used.
async fn node_and_agent_complete_a_job(url: &str, transport: &str) -> (Served, Agent, String) {
    let prefix = unique_prefix(transport);
    let s = Served::start_with(&prefix, &["--bus", url, "--bus-prefix", &prefix]).await;
    let agent = Agent::on_bus(url, &prefix, "upper", "tr a-z A-Z");
    let (status, body) = s.post("/v1/jobs", job("bus-1", "upper", json!({"text": "over the bus"}))).await;
    assert_eq!(status, 201, "{body}");
    let done = s.wait_done("bus-1").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"TEXT": "OVER THE BUS"}));
    let metrics = reqwest::get(format!("{}/metrics", s.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xchange_bus_delivered_total{kind=\"inform\"} 1"), "{metrics}");
    assert!(metrics.contains("xchange_directory_cards_total{outcome=\"arrived\"} 1"), "{metrics}");
    // The node lists the agent it found on the bus, as it lists WebSocket agents.
    let agents: Value = s.get("/v1/agents").await.json().await.unwrap();
    let listed = agents["items"].as_array().map_or(0, |a| {
        a.iter().filter(|e| e["connected"] == true && e["card"]["capabilities"] == json!(["upper"])).count()
    });
    assert_eq!(listed, 1, "{agents}");
    (s, agent, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_process_over_nats_completes_a_job_submitted_over_http() {
    let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else {
        return eprintln!("XCHANGE_TEST_NATS is not set: skipped");
    };
    let (s, _agent, prefix) = node_and_agent_complete_a_job(&url, "nats").await;
    // The job's events reached JetStream, each once, with the event id as message id.
    let events = read_events_until_done(&url, &prefix, "reader", "bus-1").await;
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"job_posting"), "{events:?}");
    let by_id = |(id, e): &(String, Value)| e["id"].as_i64().map(|n| n.to_string()).as_ref() == Some(id);
    assert!(events.iter().all(|e| by_id(e) && e.1["job_id"] == "bus-1"), "{events:?}");
    assert!(events.iter().any(|(_, e)| e["payload"]["state"] == "completed"), "{events:?}");
    // A consumer that comes back resumes after what it acknowledged: only the new job.
    let (status, body) = s.post("/v1/jobs", job("bus-2", "upper", json!({"text": "again"}))).await;
    assert_eq!(status, 201, "{body}");
    s.wait_done("bus-2").await;
    let resumed = read_events_until_done(&url, &prefix, "reader", "bus-2").await;
    assert_eq!(resumed.first().map(|(_, e)| e["kind"].clone()), Some(json!("job_posting")), "{resumed:?}");
    assert!(resumed.iter().all(|e| by_id(e) && e.1["job_id"] == "bus-2"), "{resumed:?}");
    drop(s);
    clean_nats(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_process_over_redis_completes_a_job_submitted_over_http() {
    let Ok(url) = std::env::var("XCHANGE_TEST_REDIS") else {
        return eprintln!("XCHANGE_TEST_REDIS is not set: skipped");
    };
    let (s, _agent, prefix) = node_and_agent_complete_a_job(&url, "redis").await;
    drop(s);
    let mut redis =
        redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut redis).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_processes_contract_over_nats_with_no_node() {
    let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else {
        return eprintln!("XCHANGE_TEST_NATS is not set: skipped");
    };
    let prefix = unique_prefix("pair");
    let _contractor = Agent::on_bus(&url, &prefix, "upper", "tr a-z A-Z");
    let out = Command::new(env!("CARGO_BIN_EXE_xchange"))
        .args(["agent", "ask", "--bus", &url, "--bus-prefix", &prefix, "--capability", "upper"])
        .args(["--input", r#"{"text": "no node here"}"#, "--count", "3", "--wait-secs", "20"])
        .stderr(Stdio::piped())
        .output()
        .expect("xchange agent ask runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("found upper in the directory"), "{stderr}");
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert_eq!(*line, json!({"ok": true, "result": {"TEXT": "NO NODE HERE"}}));
    }
    clean_nats(&url, &prefix).await;
}

#[test]
fn asking_without_a_contractor_fails_with_a_reason() {
    let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else {
        return eprintln!("XCHANGE_TEST_NATS is not set: skipped");
    };
    let prefix = unique_prefix("none");
    let out = Command::new(env!("CARGO_BIN_EXE_xchange"))
        .args(["agent", "ask", "--bus", &url, "--bus-prefix", &prefix, "--capability", "nobody"])
        .args(["--wait-secs", "1"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no agent offering \"nobody\""), "{stderr}");
    // Bad input is refused with a reason before anything joins the bus.
    let bus_args = ["--bus", url.as_str(), "--bus-prefix", prefix.as_str()];
    for (args, expected) in [
        (vec!["agent", "run", "--bus", "amqp://x", "--capability", "c", "--exec", "cat"], "invalid bus url"),
        ([&["agent", "run"][..], &bus_args, &["--capability", "a.b", "--exec", "cat"]].concat(), "a.b"),
        (
            [&["agent", "run"][..], &bus_args, &["--capability", "c", "--exec", "cat", "--capacity", "0"]]
                .concat(),
            "--capacity",
        ),
        (
            [&["agent", "ask"][..], &bus_args, &["--capability", "c", "--input", "{not json"]].concat(),
            "--input is not JSON",
        ),
        (
            [
                &["agent", "run"][..],
                &bus_args,
                &["--capability", "c", "--exec", "cat", "--card-ttl-secs", "0"],
            ]
            .concat(),
            "--card-ttl-secs",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xchange")).args(&args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{args:?}: {stderr}");
    }
    tokio::runtime::Runtime::new().unwrap().block_on(clean_nats(&url, &prefix));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_nats_bus_share_their_registry_and_forward_jobs() {
    let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else {
        return eprintln!("XCHANGE_TEST_NATS is not set: skipped");
    };
    let prefix = unique_prefix("fed");
    let flags = ["--bus", url.as_str(), "--bus-prefix", prefix.as_str()];
    let a = Served::start_with(&format!("{prefix}a"), &flags).await;
    let b = Served::start_with(&format!("{prefix}b"), &flags).await;
    let db = |id: &str, tag: &str| {
        json!({"task_listing_db_id": id, "association_ids": [], "collection_ids": [],
            "search_metadata": {"tags": [tag]}})
    };
    assert_eq!(a.post("/v1/taskdbs", db("alpha", "text")).await.0, 201);
    assert_eq!(b.post("/v1/taskdbs", db("beta", "images")).await.0, 201);
    assert_eq!(b.post("/v1/taskdbs", db("gamma", "text")).await.0, 201);
    // Node A sees B's task databases, with B as their owner; global is every node's own.
    let mut found = Value::Null;
    for _ in 0..50 {
        found = a.post("/v1/registry/query", json!({})).await.1;
        if found["items"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let owners: Vec<(&str, &str, bool)> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (i["task_listing_db_id"].as_str().unwrap(), i["owner_url"].as_str().unwrap(), i["local"] == true)
        })
        .collect();
    assert_eq!(
        owners,
        [
            ("alpha", a.base.as_str(), true),
            ("beta", b.base.as_str(), false),
            ("gamma", b.base.as_str(), false)
        ],
        "{found}"
    );
    // A filter over the entries, on either node.
    let (_, text) = b.post("/v1/registry/query", json!({"filter": {"search_metadata.tags": "text"}})).await;
    let ids: Vec<&str> =
        text["items"].as_array().unwrap().iter().map(|i| i["task_listing_db_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alpha", "gamma"], "{text}");
    // A deleted database leaves the shared registry; a bad filter is refused.
    let http = crate::procs::client(Duration::from_secs(10));
    let r = http.delete(format!("{}/v1/taskdbs/gamma", b.base)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let mut left = 3;
    for _ in 0..50 {
        left = a.post("/v1/registry/query", json!({})).await.1["items"].as_array().map_or(0, Vec::len);
        if left == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 2);
    let (status, refused) = a.post("/v1/registry/query", json!({"filter": {"$where": "1"}})).await;
    assert_eq!((status, refused["error"]["code"].as_u64()), (422, Some(5014)), "{refused}");

    // A job submitted to A for B's task database runs on B and is readable on A.
    let _agent = Agent::on_bus(&url, &prefix, "upper", "tr a-z A-Z");
    let mut forwarded = job("fed-1", "upper", json!({"text": "forwarded"}));
    forwarded["task_db_id"] = json!("beta");
    let (status, created) = a.post("/v1/jobs", forwarded.clone()).await;
    assert_eq!((status, created["taskdb"].as_str()), (201, Some("beta")), "{created}");
    let on_b = b.wait_done("fed-1").await;
    assert_eq!((on_b["state"].as_str(), &on_b["result"]), (Some("completed"), &json!({"TEXT": "FORWARDED"})));
    let on_a = a.wait_done("fed-1").await;
    assert_eq!(on_a, on_b, "A reads the job B ran");
    let (status, replay) = a.post("/v1/jobs", forwarded).await;
    assert_eq!((status, replay["state"].as_str()), (200, Some("completed")), "{replay}");
    // Its events too: A redirects to the owner's stream, which ends after the last state.
    // The client follows the redirect itself: a client must not send its key to another
    // host it was sent to (reqwest and curl -L drop it).
    let manual = crate::procs::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = manual.get(format!("{}/v1/jobs/fed-1/events", a.base)).send().await.unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&b.base), "{location}");
    let events = http.get(&location).send().await.unwrap().text().await.unwrap();
    assert!(events.contains("job_posting") && events.contains("\"completed\""), "{events}");
    let (_, local) = a.post("/v1/jobs/query", json!({"filter": {"job_id": "fed-1"}})).await;
    assert_eq!(local["items"], json!([]), "A's own store holds no copy: {local}");
    // With the owner gone, A says so (503, unavailable) rather than "not found".
    drop(b);
    let r = a.get("/v1/jobs/fed-1").await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status, body["error"]["code"].as_u64()), (503, Some(5039)), "{body}");
    drop(a);
    clean_nats(&url, &prefix).await;
}
