//! The agents' channel (the WebSocket) for an outsider: an agent that is a valid member of
//! another organisation, and runs its own organisation's private jobs over this channel,
//! never receives a message about another organisation's private job, cannot bid on it
//! and cannot report a result for it, although it offers the capability at a lower price.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use xchange_core::{ContractorProfile, ExecOutcome};
use xchange_protocol::{
    AgentId, AgentKey, Body, Budget, Code, Envelope, InformBody, MsgId, Nonce, ProposeBody, Recipient,
    TaskId, Version,
};
use xchange_runtime::{Execution, contractor_fn};
use xchange_ws::{ConnectOptions, Frame, Inbound, RemoteCard, TextFrames, read_frame, signed_hello};

use crate::agents::wait_status;
use crate::common::{TestNode, job};

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

/// The outsider speaks the frames itself: every envelope it receives goes to the channel.
struct Outsider {
    key: AgentKey,
    send: mpsc::UnboundedSender<String>,
    received: mpsc::UnboundedReceiver<Envelope>,
    next_nonce: u8,
}

impl Outsider {
    async fn connect(t: &TestNode) -> Self {
        let key = AgentKey::from_seed([52; 32]);
        let url = format!("ws://{}/v1/agents/connect", t.base.trim_start_matches("http://"));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut frames = TextFrames::new(ws);
        let Some(Ok(text)) = frames.next().await else { panic!("no challenge") };
        let Ok(Inbound::Frame(Frame::Challenge(challenge))) = read_frame(&text) else { panic!("{text}") };
        let mut profile = ContractorProfile::new(["secret"]);
        profile.price_per_unit = 1;
        frames.send(signed_hello(&key, &challenge, RemoteCard::new(key.id(), &profile), None)).await.unwrap();
        let Some(Ok(text)) = frames.next().await else { panic!("no answer to the hello") };
        assert!(matches!(read_frame(&text), Ok(Inbound::Frame(Frame::Welcome(_)))), "{text}");
        let (send, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (deliver, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(text) = outgoing.recv() => frames.send(text).await.unwrap(),
                    Some(Ok(text)) = frames.next() => match read_frame(&text) {
                        Ok(Inbound::Msg(raw)) => _ = deliver.send(serde_json::from_str(raw.get()).unwrap()),
                        Ok(Inbound::Frame(frame)) => panic!("the outsider got {frame:?}"),
                        Err(e) => panic!("unreadable frame {e:?}: {text}"),
                    },
                    else => return,
                }
            }
        });
        Self { key, send, received, next_nonce: 0 }
    }

    /// Signs and sends `body` about `task` under `epoch` to `manager`.
    fn send(&mut self, manager: AgentId, task: TaskId, epoch: u32, body: Body) -> MsgId {
        self.next_nonce += 1;
        let now = xchange_node::now_ms();
        let mut env = Envelope {
            aixp: Version::V1_0,
            id: MsgId::new_v7(now, [self.next_nonce; 10]),
            conversation: Some(task),
            hops: 1,
            body,
            from: self.key.id(),
            to: Recipient::Agent(manager),
            epoch,
            in_reply_to: None,
            reply_by: None,
            expires_at: now + 10_000,
            max_hops: 8,
            lineage: Arc::from(Vec::new()),
            nonce: None,
            sig: None,
        };
        self.key.sign(&mut env, Nonce([self.next_nonce; 16]));
        self.send.send(xchange_ws::msg_text(&env)).unwrap();
        env.id
    }

    /// The next envelope received, within five seconds.
    async fn next(&mut self) -> Envelope {
        tokio::time::timeout(Duration::from_secs(5), self.received.recv()).await.unwrap().unwrap()
    }

    /// The answer to `id`, skipping whatever else arrives (and keeping it in `seen`).
    async fn answer_to(&mut self, id: MsgId, seen: &mut Vec<Envelope>) -> Envelope {
        loop {
            let env = self.next().await;
            if env.in_reply_to == Some(id) {
                return env;
            }
            seen.push(env);
        }
    }
}

#[track_caller]
fn refused_with(answer: &Envelope, code: Code) {
    match &answer.body {
        Body::Error(e) => assert_eq!(e.code, code, "{e:?}"),
        Body::Reject(r) => assert_eq!(r.code, code, "{r:?}"),
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
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
    let mut outsider = Outsider::connect(&t).await;
    wait_status(&t, &insider.id().to_string(), 5001).await;
    wait_status(&t, &outsider.key.id().to_string(), 5001).await;
    private_db(&t, "acme", insider.id(), "acme-private").await;
    private_db(&t, "other", outsider.key.id(), "other-private").await;
    let mut seen = Vec::new();

    // A public job: announced to both; the outsider sees the call and learns the manager.
    assert_eq!(
        t.post("/v1/jobs", &job("public-1", "secret", json!({"marker": "public-marker"}))).await.0,
        201
    );
    let call = outsider.next().await;
    assert!(matches!(call.body, Body::Cfp(_)), "{call:?}");
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
    let bid = outsider.send(manager, task, 0, Body::Propose(ProposeBody { price: 1, eta_ms: 1, load: 0.0 }));
    refused_with(&outsider.answer_to(bid, &mut seen).await, Code::Forbidden);
    let forged = Body::Inform(InformBody { result: Arc::new(json!("forged")), spent: Budget::ZERO });
    let report = outsider.send(manager, task, 1, forged);
    refused_with(&outsider.answer_to(report, &mut seen).await, Code::Forbidden);
    let done = t.wait_terminal("acme-1").await;
    assert_eq!(done["result"], json!({"by": "insider", "input": {"marker": "acme-classified"}}), "{done}");

    // Its own organisation's private job does reach it, over the same connection.
    assert_eq!(t.post("/v1/jobs", &private_job("other-1", "other-private", "other-own")).await.0, 201);
    let award = loop {
        let env = outsider.next().await;
        if matches!(env.body, Body::Accept(_)) {
            break env;
        }
        seen.push(env);
    };
    assert!(mentions(std::slice::from_ref(&award), "other-own"), "{award:?}");
    seen.push(award);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(env) = outsider.received.try_recv() {
        seen.push(env);
    }
    assert!(!mentions(&seen, "acme-classified"), "the outsider received the private job: {seen:?}");
    assert!(!mentions(&seen, &task.to_string()), "the outsider heard of the private task: {seen:?}");
    insider.shutdown().await.unwrap();
    t.stop().await;
}
