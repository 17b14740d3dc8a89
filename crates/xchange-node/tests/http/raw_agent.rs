//! An agent that speaks the WebSocket frames itself, so that a test can send what a
//! well-behaved client never would: bids it was not asked for, reports for contracts it
//! does not hold, the same message twice, messages late or out of order.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use xchange_core::ContractorProfile;
use xchange_protocol::{AgentId, AgentKey, Body, Code, Envelope, MsgId, Nonce, Recipient, TaskId};
use xchange_ws::{Frame, Inbound, RemoteCard, TextFrames, read_frame, signed_hello};

use crate::common::TestNode;

/// What the node sent: an envelope, or an `error` frame refusing one of ours at the edge.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test's mailbox: size does not matter
pub(crate) enum Received {
    Msg(Envelope),
    Refused { code: Code, id: Option<MsgId> },
}

pub(crate) struct RawAgent {
    pub(crate) key: AgentKey,
    send: mpsc::UnboundedSender<String>,
    pub(crate) received: mpsc::UnboundedReceiver<Received>,
    next_nonce: u8,
}

impl RawAgent {
    /// Connects as the agent of `seed`, offering `capability` at `price` per unit.
    pub(crate) async fn connect(t: &TestNode, seed: u8, capability: &str, price: u64) -> Self {
        let key = AgentKey::from_seed([seed; 32]);
        let url = format!("ws://{}/v1/agents/connect", t.base.trim_start_matches("http://"));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut frames = TextFrames::new(ws);
        let Some(Ok(text)) = frames.next().await else { panic!("no challenge") };
        let Ok(Inbound::Frame(Frame::Challenge(challenge))) = read_frame(&text) else { panic!("{text}") };
        let mut profile = ContractorProfile::new([capability]);
        profile.price_per_unit = price;
        frames.send(signed_hello(&key, &challenge, RemoteCard::new(key.id(), &profile), None)).await.unwrap();
        let Some(Ok(text)) = frames.next().await else { panic!("no answer to the hello") };
        assert!(matches!(read_frame(&text), Ok(Inbound::Frame(Frame::Welcome(_)))), "{text}");
        let (send, mut outgoing) = mpsc::unbounded_channel::<String>();
        let (deliver, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(text) = outgoing.recv() => frames.send(text).await.unwrap(),
                    Some(Ok(text)) = frames.next() => {
                        let got = match read_frame(&text) {
                            Ok(Inbound::Msg(raw)) => Received::Msg(serde_json::from_str(raw.get()).unwrap()),
                            Ok(Inbound::Frame(Frame::Error(e))) => Received::Refused { code: e.code, id: e.id },
                            other => panic!("unexpected frame {other:?}: {text}"),
                        };
                        let _ = deliver.send(got);
                    }
                    else => return,
                }
            }
        });
        Self { key, send, received, next_nonce: 0 }
    }

    pub(crate) fn id(&self) -> AgentId {
        self.key.id()
    }

    /// Signs `body` about `task` under `epoch` to `manager`, answering `in_reply_to`;
    /// returns the envelope (sent once; [`RawAgent::send_again`] repeats its bytes).
    pub(crate) fn send(
        &mut self,
        manager: AgentId,
        task: TaskId,
        epoch: u32,
        in_reply_to: Option<MsgId>,
        body: Body,
    ) -> Envelope {
        self.next_nonce += 1;
        let seq = u32::from(self.next_nonce);
        let mut env = xchange_bus::testsuite::envelope(self.key.id(), Recipient::Agent(manager), body, seq);
        (env.conversation, env.epoch, env.in_reply_to) = (Some(task), epoch, in_reply_to);
        self.key.sign(&mut env, Nonce([self.next_nonce; 16]));
        self.send_again(&env);
        env
    }

    /// Sends `env` as it is: the very same message again.
    pub(crate) fn send_again(&self, env: &Envelope) {
        self.send.send(xchange_ws::msg_text(env)).unwrap();
    }

    /// The next thing received, within five seconds.
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.received.recv())
            .await
            .expect("something arrives within 5 s")
            .expect("the connection is open")
    }

    /// The next envelope whose body `pick` accepts; the others go to `seen`.
    pub(crate) async fn next_msg(&mut self, pick: fn(&Body) -> bool, seen: &mut Vec<Envelope>) -> Envelope {
        loop {
            match self.next().await {
                Received::Msg(env) if pick(&env.body) => return env,
                Received::Msg(env) => seen.push(env),
                Received::Refused { code, id } => panic!("refused at the edge: {code} {id:?}"),
            }
        }
    }

    /// The answer to `id`, an envelope in reply or an edge refusal; others go to `seen`.
    pub(crate) async fn answer_to(&mut self, id: MsgId, seen: &mut Vec<Envelope>) -> Received {
        loop {
            match self.next().await {
                Received::Msg(env) if env.in_reply_to == Some(id) => return Received::Msg(env),
                Received::Msg(env) => seen.push(env),
                refused @ Received::Refused { id: Some(r), .. } if r == id => return refused,
                other => panic!("unexpected {other:?} while waiting for the answer to {id}"),
            }
        }
    }
}

/// The code of a refusal: an `error` or `reject` envelope, or an edge `error` frame.
#[track_caller]
pub(crate) fn refusal_code(answer: &Received) -> Code {
    match answer {
        Received::Msg(Envelope { body: Body::Error(e), .. }) => e.code,
        Received::Msg(Envelope { body: Body::Reject(r), .. }) => r.code,
        Received::Refused { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
