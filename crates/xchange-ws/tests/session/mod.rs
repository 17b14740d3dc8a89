//! Remote agents doing work for a manager hosted on the server.

use std::sync::Arc;

use serde_json::json;
use xchange_core::EventKind;
use xchange_protocol::{Code, TaskSpec};
use xchange_runtime::ExecContractor;
use xchange_ws::{ConnectOptions, GatewayConfig, WsError, connect, static_token};

use crate::common::{Seen, TestServer, echo, options, within};

#[tokio::test]
async fn remote_contractors_complete_tasks_with_their_results() {
    let server = TestServer::start().await;
    let echo = connect(&server.url(), options(1, "echo", 10, echo())).await.unwrap();
    let upper = connect(&server.url(), options(2, "upper", 10, Arc::new(ExecContractor::new("tr a-z A-Z"))))
        .await
        .unwrap();
    for agent in [echo.id(), upper.id()] {
        let Seen::Connect(card) = server.seen().await else { panic!("a connect first") };
        assert_eq!(card.id, agent);
    }

    let input = json!({ "text": "hello", "n": [1, 2] });
    let out = within("echo task", server.manager.submit(TaskSpec::new("echo", input.clone()))).await.unwrap();
    assert_eq!(*out, input);
    let out = within("upper task", server.manager.submit(TaskSpec::new("upper", json!({ "text": "hello" }))))
        .await
        .unwrap();
    assert_eq!(*out, json!({ "TEXT": "HELLO" }));

    // The obligations (propose, inform) crossed signed and verified: nothing was refused.
    let stats = server.gateway.stats();
    assert!(stats.messages_in >= 4 && stats.messages_out >= 4, "{stats:?}");
    assert!(stats.messages_refused.is_empty(), "{stats:?}");
    assert_eq!((stats.welcomed, stats.connected), (2, 2));
    assert_eq!(echo.bus_counters().refused_total(), 0);

    echo.shutdown().await.unwrap();
    assert_eq!(server.seen().await, Seen::Disconnect(crate::common::key(1).id(), Code::AgentDisconnected));
    upper.shutdown().await.unwrap();
    assert_eq!(server.seen().await, Seen::Disconnect(crate::common::key(2).id(), Code::AgentDisconnected));
    assert_eq!(server.gateway.stats().connected, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_program_is_a_failure_report() {
    let server = TestServer::start().await;
    let mut tap = server.runtime.subscribe_events();
    let agent = connect(
        &server.url(),
        options(3, "fail", 10, Arc::new(ExecContractor::new("echo oops >&2; exit 4"))),
    )
    .await
    .unwrap();
    let spec = TaskSpec { retry_limit: 1, ..TaskSpec::new("fail", json!(1)) };
    let err = within("failing task", server.manager.submit(spec)).await.unwrap_err();
    assert_eq!(err.code, Code::RetryLimit, "{err}");
    // Each execution ended with a failure report (not a lapsed lease or a disconnect).
    let mut failures = 0;
    while let Some((_, event)) = tap.try_recv() {
        if let EventKind::Reassigned { code, from } = event.kind {
            assert_eq!((code, from), (Code::ExecutionFailed, agent.id()));
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "both executions (the first and its retry) reported a failure");
    agent.shutdown().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_token_is_checked_when_the_server_asks_for_one() {
    let server =
        TestServer::with(GatewayConfig { token_check: Some(static_token("s3cret")), ..Default::default() })
            .await;
    let with = |n, token: Option<&str>| ConnectOptions {
        token: token.map(Into::into),
        ..options(n, "echo", 10, echo())
    };
    for token in [None, Some("wrong")] {
        match connect(&server.url(), with(4, token)).await {
            Err(WsError::Refused { code: Code::Unauthenticated, .. }) => {}
            other => panic!("token {token:?}: {other:?}"),
        }
    }
    let agent = connect(&server.url(), with(4, Some("s3cret"))).await.unwrap();
    let out = within("task", server.manager.submit(TaskSpec::new("echo", json!("x")))).await.unwrap();
    assert_eq!(*out, json!("x"));
    assert_eq!(server.gateway.stats().handshakes_refused.get(&Code::Unauthenticated), Some(&2));
    agent.shutdown().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_closing_gateway_says_goodbye_to_its_agents() {
    let server = TestServer::start().await;
    let mut agent = connect(&server.url(), options(5, "echo", 10, echo())).await.unwrap();
    assert!(matches!(server.seen().await, Seen::Connect(_)));
    server.gateway.close();
    match within("agent ends", agent.wait()).await {
        Err(WsError::Closed { code: Code::AgentDisconnected, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.seen().await, Seen::Disconnect(agent.id(), Code::AgentDisconnected));
    // And new agents are turned away.
    match connect(&server.url(), options(6, "echo", 10, echo())).await {
        Err(WsError::Refused { code: Code::Unavailable, .. }) => {}
        other => panic!("{other:?}"),
    }
    agent.shutdown().await.unwrap();
    server.stop().await;
}
