//! Hellos that must be refused, each with its code; the connection is closed after.

use std::time::Duration;

use serde_json::{Value, json};
use xchange_protocol::{Code, Nonce};
use xchange_ws::{Challenge, Frame, GatewayConfig, signed_hello};

use crate::common::{Raw, TestServer, card, hello_with, key, next_frame, raw};

/// The hello of agent `n`, signed, then changed by `tamper`.
fn tampered(n: u8, challenge: &Challenge, tamper: impl FnOnce(&mut Value)) -> String {
    let mut hello: Value = serde_json::from_str(&signed_hello(&key(n), challenge, card(n), None)).unwrap();
    tamper(&mut hello);
    hello.to_string()
}

#[track_caller]
fn refused(answer: &Frame, code: Code) {
    match answer {
        Frame::Refused(e) => {
            assert_eq!(e.code, code, "{e:?}");
            assert_eq!(e.name, code.name());
            assert!(!e.message.is_empty() && !e.message.starts_with(char::is_uppercase), "{e:?}");
        }
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
}

async fn closed(mut socket: Raw) {
    assert!(next_frame(&mut socket).await.is_none(), "the server closes after a refusal");
}

#[tokio::test]
async fn bad_hellos_are_refused_with_their_codes() {
    let server = TestServer::start().await;
    type Hello = fn(&Challenge) -> String;
    let cases: [(&str, Hello, Code); 9] = [
        (
            "a signature that does not verify",
            |c| tampered(1, c, |h| h["card"]["price_per_unit"] = json!(0)),
            Code::Unauthenticated,
        ),
        (
            "no signature",
            |c| tampered(1, c, |h| drop(h.as_object_mut().unwrap().remove("sig"))),
            Code::Unauthenticated,
        ),
        (
            "a card whose id is not the key's",
            |c| signed_hello(&key(1), c, card(2), None),
            Code::Unauthenticated,
        ),
        (
            "another challenge's nonce",
            |c| signed_hello(&key(1), &Challenge { nonce: Nonce([0; 16]), ..c.clone() }, card(1), None),
            Code::Unauthenticated,
        ),
        (
            "another server's id",
            |c| {
                signed_hello(
                    &key(1),
                    &Challenge { server_id: "elsewhere".into(), ..c.clone() },
                    card(1),
                    None,
                )
            },
            Code::Unauthenticated,
        ),
        ("an unknown major version", |c| tampered(1, c, |h| h["aixp"] = json!("2.0")), Code::Incompatible),
        ("not json", |_| "hello?".into(), Code::Malformed),
        ("another frame", |_| r#"{"type": "bye", "aixp": "1.0", "code": 5003}"#.into(), Code::SchemaInvalid),
        (
            "an invalid card",
            |c| {
                let mut bad = card(1);
                bad.capabilities = vec!["two words".into()];
                signed_hello(&key(1), c, bad, None)
            },
            Code::SchemaInvalid,
        ),
    ];
    for (what, hello, code) in cases {
        let (socket, answer) = hello_with(&server, hello).await;
        refused(&answer, code);
        closed(socket).await;
        let end = server.ended().await;
        assert_eq!((end.agent, end.code), (None, code), "{what}");
    }
    let stats = server.gateway.stats();
    assert_eq!(stats.handshakes_refused.values().sum::<u64>(), 9, "{stats:?}");
    assert_eq!((stats.welcomed, stats.connected), (0, 0));
    server.stop().await;
}

#[tokio::test]
async fn an_agent_connects_once_at_a_time() {
    let server = TestServer::start().await;
    let (_first, answer) = hello_with(&server, |c| signed_hello(&key(1), c, card(1), None)).await;
    assert!(
        matches!(answer, Frame::Welcome(w) if w.agent_id == key(1).id() && w.code == Code::AgentConnected)
    );
    let (second, answer) = hello_with(&server, |c| signed_hello(&key(1), c, card(1), None)).await;
    refused(&answer, Code::Conflict);
    closed(second).await;
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_cut_off_after_the_handshake_timeout() {
    let config = GatewayConfig { handshake_timeout: Duration::from_millis(200), ..Default::default() };
    let server = TestServer::with(config).await;
    let mut socket = raw(&server).await;
    assert!(matches!(next_frame(&mut socket).await, Some(Frame::Challenge(_))));
    refused(&next_frame(&mut socket).await.unwrap(), Code::Busy);
    closed(socket).await;
    server.stop().await;
}

#[tokio::test]
async fn the_session_limit_is_enforced() {
    let server = TestServer::with(GatewayConfig { max_sessions: 1, ..Default::default() }).await;
    let (_first, answer) = hello_with(&server, |c| signed_hello(&key(1), c, card(1), None)).await;
    assert!(matches!(answer, Frame::Welcome(_)));
    let mut second = raw(&server).await;
    refused(&next_frame(&mut second).await.unwrap(), Code::ConnectionLimit);
    closed(second).await;
    server.stop().await;
}

#[tokio::test]
async fn a_card_with_more_pools_than_the_server_allows_is_refused() {
    let server = TestServer::with(GatewayConfig { max_pools_per_agent: 1, ..Default::default() }).await;
    let mut two_pools = card(1);
    two_pools.pools = vec!["a".into(), "b".into()];
    let (socket, answer) = hello_with(&server, |c| signed_hello(&key(1), c, two_pools, None)).await;
    refused(&answer, Code::ConnectionLimit);
    closed(socket).await;
    let mut one_pool = card(2);
    one_pool.pools = vec!["a".into()];
    let (_socket, answer) = hello_with(&server, |c| signed_hello(&key(2), c, one_pool, None)).await;
    assert!(matches!(answer, Frame::Welcome(_)), "{answer:?}");
    server.stop().await;
}
