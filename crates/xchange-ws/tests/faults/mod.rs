//! Connections that drop, clients that read too slowly, agents that come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use xchange_core::{EventKind, Submit};
use xchange_protocol::{Code, TaskId, TaskSpec};
use xchange_ws::{
    Backoff, ConnectOptions, Frame, GatewayConfig, Inbound, read_frame, serve_session, signed_hello,
};

use crate::common::{MemFrames, Seen, TestServer, by, card, envelope, key, options, signed_by, within};

#[tokio::test]
async fn a_dropped_agent_is_reported_as_5009_and_its_task_reassigned() {
    let server = TestServer::start().await;
    let mut tap = server.runtime.subscribe_events();
    // The cheap agent wins the award, then its connection drops mid-execution.
    let doomed = connect_as(&server, options(1, "work", 1, signed_by(5_000))).await;
    let survivor = connect_as(&server, options(2, "work", 10, signed_by(1))).await;
    let task = TaskId::new_v7(1_800_000_000_000, [1; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("work", json!(1))) };
    let waiting = tokio::spawn({
        let m = server.manager.clone();
        async move { m.submit_with(submit).await }
    });
    let first = within("award", async {
        loop {
            let (_, e) = tap.recv().await.unwrap();
            if let EventKind::Awarded { contractor, .. } = e.kind {
                return contractor;
            }
        }
    })
    .await;
    assert_eq!(first, doomed.id());
    let doomed_id = doomed.id();
    doomed.kill().await;

    let (code, from) = within("reassignment", async {
        loop {
            let (_, e) = tap.recv().await.unwrap();
            if let EventKind::Reassigned { code, from } = e.kind {
                return (code, from);
            }
        }
    })
    .await;
    assert_eq!((code, from), (Code::UnexpectedDisconnect, doomed_id));
    let out = within("reassigned task", waiting).await.unwrap().unwrap();
    assert_eq!(by(&out), survivor.id());
    assert_eq!(server.seen().await, Seen::Disconnect(doomed_id, Code::UnexpectedDisconnect));
    assert_eq!(server.manager.counters().await.lease_expiries, 0, "the notice, not the lease, moved it");
    survivor.shutdown().await.unwrap();
    server.stop().await;
}

async fn connect_as(server: &TestServer, options: ConnectOptions) -> xchange_ws::RemoteAgent {
    let agent = xchange_ws::connect(&server.url(), options).await.unwrap();
    assert!(matches!(server.seen().await, Seen::Connect(c) if c.id == agent.id()));
    agent
}

#[tokio::test]
async fn an_agent_reconnects_as_a_new_incarnation() {
    let server = TestServer::start().await;
    let backoff =
        Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200), attempts: None };
    let agent = connect_as(
        &server,
        ConnectOptions { reconnect: Some(backoff), ..options(3, "work", 10, signed_by(1)) },
    )
    .await;
    let before = agent.agent().status().await.unwrap().incarnation;

    server.drop_sessions();
    assert_eq!(server.seen().await, Seen::Disconnect(agent.id(), Code::UnexpectedDisconnect));
    assert!(matches!(server.seen().await, Seen::Connect(c) if c.id == agent.id()));
    within("the client counts the reconnection", async {
        while agent.connections() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let status = agent.agent().status().await.unwrap();
    assert!(status.alive && status.incarnation > before, "{status:?}");

    let out =
        within("task after reconnect", server.manager.submit(TaskSpec::new("work", json!(2)))).await.unwrap();
    assert_eq!(by(&out), agent.id());
    agent.shutdown().await.unwrap();
    assert_eq!(server.seen().await, Seen::Disconnect(key(3).id(), Code::AgentDisconnected));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_with_5005() {
    let config = GatewayConfig { queue: 4, send_timeout: Duration::from_millis(300), ..Default::default() };
    let server = TestServer::with(config).await;
    let (to_server, rx) = mpsc::unbounded_channel();
    let (tx, mut from_server) = mpsc::unbounded_channel();
    let stall = Arc::new(AtomicBool::new(false));
    let frames = MemFrames { rx, tx, stall: stall.clone() };
    let gateway = server.gateway.clone();
    let session = tokio::spawn(async move { serve_session(frames, &gateway).await });

    let next = |text: Option<String>| match read_frame(&text.expect("a frame")).unwrap() {
        Inbound::Frame(frame) => frame,
        Inbound::Msg(_) => panic!("a msg during the handshake"),
    };
    let Frame::Challenge(challenge) = next(from_server.recv().await) else { panic!("no challenge") };
    to_server.send(signed_hello(&key(4), &challenge, card(4), None)).unwrap();
    assert!(matches!(next(from_server.recv().await), Frame::Welcome(_)));

    stall.store(true, Ordering::SeqCst);
    let bus = server.runtime.bus().clone();
    for seq in 0..20 {
        bus.publish(Arc::new(envelope(server.manager.id(), key(4).id(), false, seq))).unwrap();
    }
    let end = within("session end", session).await.unwrap();
    assert_eq!((end.agent, end.code), (Some(key(4).id()), Code::Busy));
    assert!(matches!(server.seen().await, Seen::Connect(_)));
    assert_eq!(server.seen().await, Seen::Disconnect(key(4).id(), Code::Busy));
    assert!(bus.counters().dropped > 0, "the full queue dropped deliveries");
    // The agent left the directory: it may attach again.
    let profile = card(4).profile().unwrap();
    server.runtime.attach_remote(key(4).id(), profile).unwrap();
    server.stop().await;
}
