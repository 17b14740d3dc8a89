//! Duplicated, reordered and delayed messages from a contractor, sent over a live
//! WebSocket to a node: each is applied at most once. The same bytes twice are a replay
//! (refused at the edge); a second bid does not make a second contract; a result sent again
//! is acknowledged again and changes nothing; a progress that arrives after the result is
//! refused; a result that arrives after its contract lapsed is refused as stale, and the
//! job keeps the result of the contract that replaced it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use xchange_node::NodeConfig;
use xchange_protocol::{Body, Budget, Code, Envelope, InformBody, ProgressBody, ProposeBody};

use crate::agents::wait_status;
use crate::common::{TestNode, job};
use crate::raw_agent::{RawAgent, Received, refusal_code};

const LEASE_MS: u64 = 1500;

fn bid() -> Body {
    Body::Propose(ProposeBody { price: 1, eta_ms: 1, load: 0.0 })
}

fn inform(result: Value) -> Body {
    Body::Inform(InformBody { result: Arc::new(result), spent: Budget::ZERO })
}

/// Everything received for `wait`.
async fn drain(agent: &mut RawAgent, wait: Duration) -> Vec<Received> {
    let mut got = Vec::new();
    while let Ok(Some(r)) = tokio::time::timeout(wait, agent.received.recv()).await {
        got.push(r);
    }
    got
}

fn messages(got: &[Received], pick: fn(&Body) -> bool) -> Vec<&Envelope> {
    got.iter()
        .filter_map(|r| if let Received::Msg(e) = r { Some(e) } else { None })
        .filter(|e| pick(&e.body))
        .collect()
}

async fn job_states(t: &TestNode, id: &str) -> Vec<String> {
    let events = t.job_events(id).await;
    events.iter().filter_map(|e| e["payload"]["state"].as_str().map(str::to_owned)).collect()
}

async fn manager_counter(t: &TestNode, counter: &str) -> u64 {
    let text = t.http.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let sample = format!("xchange_manager_counters_total{{counter=\"{counter}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&sample)).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_delayed_messages_are_applied_once() {
    let t = TestNode::start_with(NodeConfig { lease_ms: LEASE_MS, ..NodeConfig::default() }).await;
    // A dearer contractor in the node's process takes what the raw agent loses.
    t.host(1, "raw", |input| json!({"by": "hosted", "input": input}));
    let mut agent = RawAgent::connect(&t, 61, "raw", 1).await;
    wait_status(&t, &agent.id().to_string(), 5001).await;
    let mut seen = Vec::new();

    // Duplicated: the very same bid twice, then another bid for the same call.
    assert_eq!(t.post("/v1/jobs", &job("d1", "raw", json!(1))).await.0, 201);
    let call = agent.next_msg(|b| matches!(b, Body::Cfp(_)), &mut seen).await;
    let (manager, task) = (call.from, call.conversation.unwrap());
    let first = agent.send(manager, task, 0, Some(call.id), bid());
    agent.send_again(&first);
    let second = agent.send(manager, task, 0, Some(call.id), bid());
    let got = drain(&mut agent, Duration::from_millis(500)).await;
    let replay = got
        .iter()
        .any(|r| matches!(r, Received::Refused { code: Code::Replay, id } if *id == Some(first.id)));
    assert!(replay, "the same bytes again are not refused as a replay: {got:?}");
    let awards = messages(&got, |b| matches!(b, Body::Accept(_)));
    assert_eq!(awards.len(), 1, "one contract for one call: {got:?}");
    let late_bid = messages(&got, |b| matches!(b, Body::Reject(_)));
    assert!(late_bid.iter().all(|e| e.in_reply_to == Some(second.id)), "{got:?}");
    let award = awards[0].clone();

    // Reordered and duplicated: the result, then a progress that should have come first,
    // then the result again with other content (a retransmission after a lost ack).
    let report = agent.send(manager, task, award.epoch, Some(award.id), inform(json!({"by": "raw"})));
    let progress = ProgressBody { fraction: 0.0, started: true, note: None };
    agent.send(manager, task, award.epoch, None, Body::Progress(progress));
    let resent = agent.send(manager, task, award.epoch, Some(award.id), inform(json!({"by": "raw, again"})));
    let got = drain(&mut agent, Duration::from_millis(500)).await;
    let acks = messages(&got, |b| matches!(b, Body::Ack(_)));
    let acked: Vec<_> = acks.iter().map(|e| e.in_reply_to).collect();
    assert_eq!(acked, [Some(report.id), Some(resent.id)], "each report is acknowledged once: {got:?}");
    let done = t.wait_terminal("d1").await;
    assert_eq!(done["result"], json!({"by": "raw"}), "the first result stands: {done}");
    let states = job_states(&t, "d1").await;
    assert_eq!(states.iter().filter(|s| *s == "completed").count(), 1, "{states:?}");
    assert!(!states.contains(&"running".to_owned()), "the late progress moved the job: {states:?}");
    assert_eq!(manager_counter(&t, "duplicate_reports").await, 1);

    // Delayed: the raw agent wins, says nothing for longer than the lease, and reports after
    // the contract went to the hosted contractor.
    assert_eq!(t.post("/v1/jobs", &job("d2", "raw", json!(2))).await.0, 201);
    let call = agent.next_msg(|b| matches!(b, Body::Cfp(_)), &mut seen).await;
    let task = call.conversation.unwrap();
    agent.send(manager, task, 0, Some(call.id), bid());
    let award = agent.next_msg(|b| matches!(b, Body::Accept(_)), &mut seen).await;
    let done = t.wait_terminal("d2").await;
    assert_eq!(done["result"], json!({"by": "hosted", "input": 2}), "{done}");
    let late = agent.send(manager, task, award.epoch, Some(award.id), inform(json!({"by": "raw, late"})));
    assert_eq!(refusal_code(&agent.answer_to(late.id, &mut seen).await), Code::StaleEpoch);
    let done = t.wait_terminal("d2").await;
    assert_eq!(done["result"], json!({"by": "hosted", "input": 2}), "the late result was taken: {done}");
    assert!(manager_counter(&t, "lease_expiries").await >= 1);
    t.stop().await;
}
