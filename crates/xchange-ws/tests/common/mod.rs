//! The test server, an observer that records, raw clients and envelopes made by hand.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::MaybeTlsStream;
use xchange_bus::InProcBus;
use xchange_core::{Announce, ContractorProfile, EngineConfig, ExecOutcome};
use xchange_protocol::{
    AgentId, AgentKey, Body, Code, Envelope, HeartbeatBody, MsgId, ProposeBody, Recipient, TaskId, Version,
};
use xchange_runtime::{
    AgentHandle, AgentSpec, Contractor, Execution, Runtime, RuntimeBuilder, contractor_fn,
};
use xchange_ws::{
    Challenge, ConnectOptions, Frame, Gateway, GatewayConfig, Inbound, RemoteCard, SessionEnd,
    SessionObserver, TextFrames, read_frame, serve_session,
};

/// Protocol timings for tests: quick rounds, a lease long enough that only a departure
/// notice can explain a quick reassignment.
pub(crate) fn engine() -> EngineConfig {
    EngineConfig {
        announce: Announce::Broadcast,
        bid_window: 100_000,
        message_ttl: 10_000_000,
        lease: 30_000_000,
        heartbeat_interval: 1_000_000,
        report_resend: 500_000,
        no_contractor_timeout: 5_000_000,
        ..EngineConfig::default()
    }
}

pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(15), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

pub(crate) fn key(n: u8) -> AgentKey {
    AgentKey::from_seed([n; 32])
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// What the observer saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    Connect(RemoteCard),
    Disconnect(AgentId, Code),
}

pub(crate) struct Recorder {
    tx: mpsc::UnboundedSender<Seen>,
}

impl SessionObserver for Recorder {
    fn on_connect(&self, card: &RemoteCard) {
        let _ = self.tx.send(Seen::Connect(card.clone()));
    }
    fn on_disconnect(&self, agent: AgentId, code: Code) {
        let _ = self.tx.send(Seen::Disconnect(agent, code));
    }
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) runtime: Runtime,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) manager: AgentHandle,
    seen: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
    sessions: Arc<Mutex<Vec<AbortHandle>>>,
    ends: tokio::sync::Mutex<mpsc::UnboundedReceiver<SessionEnd>>,
    accept: AbortHandle,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::with(GatewayConfig::default()).await
    }

    pub(crate) async fn with(config: GatewayConfig) -> Self {
        let runtime = RuntimeBuilder::new(Arc::new(InProcBus::new()), Arc::new(engine())).seed(3).start();
        let manager = runtime.spawn_agent(AgentSpec::manager(AgentId::from_index(7, 0))).unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let config = GatewayConfig {
            server_id: "test-node".into(),
            observer: Some(Arc::new(Recorder { tx })),
            ..config
        };
        let gateway = Arc::new(Gateway::new(runtime.clone(), config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let (ends_tx, ends) = mpsc::unbounded_channel();
        let accept = tokio::spawn({
            let (gateway, sessions) = (gateway.clone(), sessions.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (gateway, ends) = (gateway.clone(), ends_tx.clone());
                    let task = tokio::spawn(async move {
                        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                        let _ = ends.send(serve_session(TextFrames::new(ws), &gateway).await);
                    });
                    sessions.lock().push(task.abort_handle());
                }
            }
        });
        Self {
            addr,
            runtime,
            gateway,
            manager,
            seen: tokio::sync::Mutex::new(seen),
            sessions,
            ends: tokio::sync::Mutex::new(ends),
            accept: accept.abort_handle(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next observer event.
    pub(crate) async fn seen(&self) -> Seen {
        within("an observer event", async { self.seen.lock().await.recv().await.unwrap() }).await
    }

    /// The next session that ended, and how.
    pub(crate) async fn ended(&self) -> SessionEnd {
        within("a session end", async { self.ends.lock().await.recv().await.unwrap() }).await
    }

    /// Drops every connection on the server's side, as a crashed proxy would.
    pub(crate) fn drop_sessions(&self) {
        for task in self.sessions.lock().drain(..) {
            task.abort();
        }
    }

    pub(crate) async fn stop(self) {
        self.accept.abort();
        self.drop_sessions();
        self.runtime.shutdown().await;
    }
}

/// Client options for agent `n` offering `capability`.
pub(crate) fn options(n: u8, capability: &str, price: u64, behavior: Arc<dyn Contractor>) -> ConnectOptions {
    let profile =
        ContractorProfile { price_per_unit: price, capacity: 2, ..ContractorProfile::new([capability]) };
    ConnectOptions { engine: engine(), ..ConnectOptions::new(key(n), profile, behavior) }
}

/// Returns its input.
pub(crate) fn echo() -> Arc<dyn Contractor> {
    contractor_fn(|_, spec| Execution::done(spec.input.clone()))
}

/// Names who did it, after `ms` milliseconds.
pub(crate) fn signed_by(ms: u64) -> Arc<dyn Contractor> {
    contractor_fn(move |ctx, spec| {
        let by = ctx.agent().to_string();
        Execution::pending(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ExecOutcome::Done(Arc::new(json!({ "by": by, "input": spec.input })))
        })
    })
}

pub(crate) fn by(result: &Value) -> AgentId {
    result["by"].as_str().unwrap().parse().unwrap()
}

pub(crate) type Raw = TextFrames<MaybeTlsStream<TcpStream>>;

/// A connection without the client: the test speaks the frames itself.
pub(crate) async fn raw(server: &TestServer) -> Raw {
    let url = format!("ws://{}/v1/agents/connect", server.addr);
    let (ws, _) = within("connect", tokio_tungstenite::connect_async(url)).await.unwrap();
    TextFrames::new(ws)
}

/// The next frame that is not a `msg`; `None` once the server closed the connection.
pub(crate) async fn next_frame<S>(socket: &mut S) -> Option<Frame>
where
    S: Stream<Item = Result<String, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    within("a frame", async {
        loop {
            match socket.next().await {
                Some(Ok(text)) => match read_frame(&text).unwrap() {
                    Inbound::Frame(frame) => return Some(frame),
                    Inbound::Msg(_) => continue,
                },
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
}

/// Opens a raw connection and answers the challenge with `hello(challenge)`; returns the
/// connection and the server's answer.
pub(crate) async fn hello_with(
    server: &TestServer,
    hello: impl FnOnce(&Challenge) -> String,
) -> (Raw, Frame) {
    let mut socket = raw(server).await;
    let Some(Frame::Challenge(challenge)) = next_frame(&mut socket).await else { panic!("no challenge") };
    assert_eq!(challenge.server_id, "test-node");
    assert_eq!(challenge.versions, ["1.0"]);
    socket.send(hello(&challenge)).await.unwrap();
    let answer = next_frame(&mut socket).await.expect("an answer to the hello");
    (socket, answer)
}

/// A card for agent `n`.
pub(crate) fn card(n: u8) -> RemoteCard {
    RemoteCard::new(key(n).id(), &ContractorProfile::new(["work"]))
}

/// An envelope from `from` to `to` by hand: a `propose` (which must be signed) or an
/// unsigned `heartbeat`.
pub(crate) fn envelope(from: AgentId, to: AgentId, propose: bool, seq: u8) -> Envelope {
    let now = now_ms();
    let body = if propose {
        Body::Propose(ProposeBody { price: 1, eta_ms: 1, load: 0.0 })
    } else {
        Body::Heartbeat(HeartbeatBody { incarnation: 1, contracts: Vec::new() })
    };
    Envelope {
        aixp: Version::V1_0,
        id: MsgId::new_v7(now, [seq; 10]),
        conversation: propose.then(|| TaskId::new_v7(now, [seq; 10])),
        hops: u8::from(propose),
        body,
        from,
        to: Recipient::Agent(to),
        epoch: 0,
        in_reply_to: None,
        reply_by: None,
        expires_at: now + 10_000,
        max_hops: 8,
        lineage: Arc::from(Vec::new()),
        nonce: None,
        sig: None,
    }
}

/// A stream and sink of frames in memory, whose sink can be stalled: a client that stops
/// reading.
pub(crate) struct MemFrames {
    pub(crate) rx: mpsc::UnboundedReceiver<String>,
    pub(crate) tx: mpsc::UnboundedSender<String>,
    pub(crate) stall: Arc<AtomicBool>,
}

impl Stream for MemFrames {
    type Item = Result<String, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|t| t.map(Ok))
    }
}

impl Sink<String> for MemFrames {
    type Error = Infallible;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Stalled: never ready (the session's send timeout is what wakes it).
        if self.stall.load(Ordering::SeqCst) { Poll::Pending } else { Poll::Ready(Ok(())) }
    }
    fn start_send(self: Pin<&mut Self>, text: String) -> Result<(), Infallible> {
        let _ = self.tx.send(text);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}
