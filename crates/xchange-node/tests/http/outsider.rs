//! The agents' channel (the WebSocket) for an outsider: an agent that is a valid member of
//! another organisation, and runs its own organisation's private jobs over this channel,
//! never receives a message about another organisation's private job, cannot bid on it
//! and cannot report a result for it, although it offers the capability at a lower price.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use xchange_core::{ContractorProfile, ExecOutcome};
use xchange_protocol::{AgentId, AgentKey, Body, Budget, Code, Envelope, InformBody, ProposeBody, TaskId};
use xchange_runtime::{Execution, contractor_fn};
use xchange_ws::ConnectOptions;

use crate::agents::wait_status;
use crate::common::{TestNode, job};
use crate::raw_agent::{RawAgent, Received, refusal_code};

/// The insider: a member of `acme`, slow (so that its contract is live while the outsider
/// attacks it), dear, and telling the test which tasks it works on.
async fn insider(t: &TestNode, tasks: Arc<Mutex<Vec<TaskId>>>) -> xchange_ws::RemoteAgent {
    let behavior = contractor_fn(move |ctx, spec| {
        tasks.lock().push(ctx.task());
        let input = spec.input.clone();
        Execution::pending(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            ExecOutcome::Done(Arc::new(json!({"by": "insider", "input": input})))
        })
    });
    let mut profile = ContractorProfile::new(["secret"]);
    profile.price_per_unit = 100;
    profile.capacity = 4;
    let options = ConnectOptions::new(AgentKey::from_seed([51; 32]), profile, behavior);
    xchange_ws::connect(&t.base, options).await.expect("the insider connects")
}

fn mentions(envs: &[Envelope], marker: &str) -> bool {
    envs.iter().any(|e| serde_json::to_string(e).unwrap().contains(marker))
}

async fn private_db(t: &TestNode, org: &str, member: AgentId, db: &str) {
    let entry = json!({"task_listing_db_id": db, "accessibility_data": {"visibility": "private"}});
    assert_eq!(t.post("/v1/taskdbs", &entry).await.0, 201);
    assert_eq!(t.post("/v1/orgs", &json!({"org_id": org, "members": [member.to_string()]})).await.0, 201);
    let r = t.http.put(t.url(&format!("/v1/taskdbs/{db}/subscribers/{org}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

fn private_job(id: &str, db: &str, marker: &str) -> Value {
    let mut body = job(id, "secret", json!({"marker": marker}));
    body["task_db_id"] = json!(db);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_agent_cannot_see_bid_on_or_report_a_private_job() {
    let t = TestNode::start().await;
    let insider_tasks = Arc::new(Mutex::new(Vec::new()));
    let insider = insider(&t, insider_tasks.clone()).await;
    let mut outsider = RawAgent::connect(&t, 52, "secret", 1).await;
    wait_status(&t, &insider.id().to_string(), 5001).await;
    wait_status(&t, &outsider.id().to_string(), 5001).await;
    private_db(&t, "acme", insider.id(), "acme-private").await;
    private_db(&t, "other", outsider.id(), "other-private").await;
    let mut seen = Vec::new();

    // A public job: announced to both; the outsider sees the call and learns the manager.
    assert_eq!(
        t.post("/v1/jobs", &job("public-1", "secret", json!({"marker": "public-marker"}))).await.0,
        201
    );
    let call = outsider.next_msg(|b| matches!(b, Body::Cfp(_)), &mut seen).await;
    assert!(mentions(std::slice::from_ref(&call), "public-marker"), "{call:?}");
    let manager = call.from;

    // The private job goes straight to the member; while it runs, the outsider bids on it
    // and reports a result for it, signed and well-formed: both refused.
    assert_eq!(t.post("/v1/jobs", &private_job("acme-1", "acme-private", "acme-classified")).await.0, 201);
    let task = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(task) = insider_tasks.lock().first().copied() {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the insider got the private job");
    let bid = Body::Propose(ProposeBody { price: 1, eta_ms: 1, load: 0.0 });
    let bid = outsider.send(manager, task, 0, None, bid);
    assert_eq!(refusal_code(&outsider.answer_to(bid.id, &mut seen).await), Code::Forbidden);
    let forged = Body::Inform(InformBody { result: Arc::new(json!("forged")), spent: Budget::ZERO });
    let report = outsider.send(manager, task, 1, None, forged);
    assert_eq!(refusal_code(&outsider.answer_to(report.id, &mut seen).await), Code::Forbidden);
    let done = t.wait_terminal("acme-1").await;
    assert_eq!(done["result"], json!({"by": "insider", "input": {"marker": "acme-classified"}}), "{done}");

    // Its own organisation's private job does reach it, over the same connection.
    assert_eq!(t.post("/v1/jobs", &private_job("other-1", "other-private", "other-own")).await.0, 201);
    let award = outsider.next_msg(|b| matches!(b, Body::Accept(_)), &mut seen).await;
    assert!(mentions(std::slice::from_ref(&award), "other-own"), "{award:?}");
    seen.push(award);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Received::Msg(env)) = outsider.received.try_recv() {
        seen.push(env);
    }
    assert!(!mentions(&seen, "acme-classified"), "the outsider received the private job: {seen:?}");
    assert!(!mentions(&seen, &task.to_string()), "the outsider heard of the private task: {seen:?}");
    insider.shutdown().await.unwrap();
    t.stop().await;
}
