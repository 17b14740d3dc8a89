//! Envelopes from a connected agent: checked at the edge, refused unless they come from the
//! agent itself, refused when replayed; each refusal is an `error` frame and the session
//! goes on.

use futures_util::SinkExt;
use xchange_protocol::{Code, Envelope, MsgId, Nonce};
use xchange_ws::{Frame, msg_text, signed_hello};

use crate::common::{Raw, Seen, TestServer, card, envelope, hello_with, key, next_frame};

#[track_caller]
fn error(frame: Option<Frame>, code: Code, id: Option<MsgId>) {
    match frame {
        Some(Frame::Error(e)) => assert_eq!((e.code, e.id), (code, id), "{e:?}"),
        other => panic!("expected an error with {code}, got {other:?}"),
    }
}

fn signed(mut env: Envelope, n: u8, seq: u8) -> Envelope {
    key(n).sign(&mut env, Nonce([seq; 16]));
    env
}

async fn send(socket: &mut Raw, text: String) {
    socket.send(text).await.unwrap();
}

#[tokio::test]
async fn messages_are_checked_and_must_come_from_the_agent() {
    let server = TestServer::start().await;
    let (mut socket, answer) = hello_with(&server, |c| signed_hello(&key(1), c, card(1), None)).await;
    assert!(matches!(answer, Frame::Welcome(_)));
    assert!(matches!(server.seen().await, Seen::Connect(_)));
    let (me, manager) = (key(1).id(), server.manager.id());

    // Accepted: a signed propose and an unsigned heartbeat from the agent itself.
    send(&mut socket, msg_text(&signed(envelope(me, manager, true, 1), 1, 1))).await;
    send(&mut socket, msg_text(&envelope(me, manager, false, 2))).await;

    // A message from another agent, correctly signed by that agent: forged on this connection.
    let forged = signed(envelope(key(2).id(), manager, true, 3), 2, 3);
    send(&mut socket, msg_text(&forged)).await;
    error(next_frame(&mut socket).await, Code::Forbidden, Some(forged.id));

    // The same signed message twice: a replay.
    let once = signed(envelope(me, manager, true, 4), 1, 4);
    send(&mut socket, msg_text(&once)).await;
    send(&mut socket, msg_text(&once)).await;
    error(next_frame(&mut socket).await, Code::Replay, Some(once.id));

    // The edge checks, each with its code.
    let unsigned = envelope(me, manager, true, 5);
    send(&mut socket, msg_text(&unsigned)).await;
    error(next_frame(&mut socket).await, Code::SignatureMissing, Some(unsigned.id));
    let mut expired = envelope(me, manager, false, 6);
    expired.expires_at = 1;
    send(&mut socket, msg_text(&expired)).await;
    error(next_frame(&mut socket).await, Code::Expired, Some(expired.id));
    send(&mut socket, r#"{"type": "msg", "envelope": {"aixp": "9.0"}}"#.into()).await;
    error(next_frame(&mut socket).await, Code::Incompatible, None);
    send(&mut socket, "{not json".into()).await;
    error(next_frame(&mut socket).await, Code::Malformed, None);
    send(&mut socket, r#"{"type": "msg"}"#.into()).await;
    error(next_frame(&mut socket).await, Code::SchemaInvalid, None);
    send(&mut socket, signed_hello(&key(1), &test_challenge(), card(1), None)).await;
    error(next_frame(&mut socket).await, Code::OutOfSequence, None);
    send(&mut socket, format!(r#"{{"type": "msg", "envelope": "{}"}}"#, "x".repeat(300 * 1024))).await;
    error(next_frame(&mut socket).await, Code::TooLarge, None);

    let stats = server.gateway.stats();
    assert_eq!(stats.messages_in, 3, "{stats:?}");
    for code in [
        Code::Forbidden,
        Code::Replay,
        Code::SignatureMissing,
        Code::Expired,
        Code::Malformed,
        Code::TooLarge,
    ] {
        assert_eq!(stats.messages_refused.get(&code), Some(&1), "{code}: {stats:?}");
    }

    // After all that, a goodbye is still an orderly departure.
    send(&mut socket, r#"{"type": "bye", "code": 5003, "reason": "done"}"#.into()).await;
    assert_eq!(server.seen().await, Seen::Disconnect(me, Code::AgentDisconnected));
    assert!(next_frame(&mut socket).await.is_none());
    server.stop().await;
}

fn test_challenge() -> xchange_ws::Challenge {
    xchange_ws::Challenge {
        nonce: Nonce([1; 16]),
        server_id: "test-node".into(),
        versions: vec!["1.0".into()],
    }
}

#[tokio::test]
async fn an_agent_over_its_message_rate_is_told_when_to_come_back() {
    let rate = xchange_bus::RateLimit { per_second: 1, burst: 2 };
    let server =
        TestServer::with(xchange_ws::GatewayConfig { agent_rate: Some(rate), ..Default::default() }).await;
    let (mut socket, answer) = hello_with(&server, |c| signed_hello(&key(1), c, card(1), None)).await;
    assert!(matches!(answer, Frame::Welcome(_)));
    assert!(matches!(server.seen().await, Seen::Connect(_)));
    let (me, manager) = (key(1).id(), server.manager.id());
    for seq in 1..=3 {
        send(&mut socket, msg_text(&envelope(me, manager, false, seq))).await;
    }
    match next_frame(&mut socket).await {
        Some(Frame::Error(e)) => {
            assert_eq!(e.code, Code::Busy, "{e:?}");
            let wait = e.retry_after_ms.expect("a retry time");
            assert!((1..=1000).contains(&wait), "{e:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let stats = server.gateway.stats();
    assert_eq!((stats.messages_in, stats.messages_refused.get(&Code::Busy)), (2, Some(&1)), "{stats:?}");
    server.stop().await;
}
