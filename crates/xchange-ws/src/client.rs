//! The client: one agent hosted in a local runtime whose bus is the WebSocket session.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use xchange_bus::{Bus, BusCounters, MsClock, system_ms_clock};
use xchange_core::{ContractorProfile, EngineConfig};
use xchange_protocol::{AgentId, AgentKey, Code, EdgeLimits, Envelope, SUPPORTED_MAJORS, Version};
use xchange_runtime::{AgentHandle, AgentSpec, Contractor, Runtime, RuntimeBuilder};

use crate::card::RemoteCard;
use crate::error::WsError;
use crate::frames::{Bye, Frame, Inbound, max_frame_bytes, msg_text, read_frame, signed_hello};
use crate::socket::{TextFrames, session_url};
use crate::until_set;
use crate::wsbus::WsBus;

/// How to retry after a lost connection: delays double from `initial` up to `max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Attempts per outage before giving up; `None` tries for ever.
    pub attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(30), attempts: None }
    }
}

/// What to connect as.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The agent's key: its id is the public key, the hello and the obligations it sends
    /// (`propose`, `inform`, `failure`) are signed with it.
    pub key: AgentKey,
    /// What the agent offers (its card).
    pub profile: ContractorProfile,
    /// What it does with contracts.
    pub behavior: Arc<dyn Contractor>,
    /// A bearer credential for servers that check one.
    pub token: Option<String>,
    /// Informational endpoints put on the card.
    pub endpoints: Vec<String>,
    /// The local engine's settings (heartbeat interval, message time-to-live, …).
    pub engine: EngineConfig,
    /// Checks on messages from the server. Signatures are not required by default: the
    /// server's own agents run in its process and do not sign, and the connection to it is
    /// what the client trusts.
    pub limits: EdgeLimits,
    /// Unix milliseconds for those checks.
    pub clock: MsClock,
    /// How long connecting and the handshake may take.
    pub handshake_timeout: Duration,
    /// Reconnect after a lost connection (a new incarnation of the agent); `None` ends the
    /// agent instead.
    pub reconnect: Option<Backoff>,
}

impl ConnectOptions {
    /// Options with defaults: no token, no reconnect.
    pub fn new(key: AgentKey, profile: ContractorProfile, behavior: Arc<dyn Contractor>) -> Self {
        Self {
            key,
            profile,
            behavior,
            token: None,
            endpoints: Vec::new(),
            engine: EngineConfig::default(),
            limits: EdgeLimits { require_signatures: false, ..EdgeLimits::default() },
            clock: system_ms_clock(),
            handshake_timeout: Duration::from_secs(10),
            reconnect: None,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("agent", &self.key.id())
            .field("profile", &self.profile)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

type Socket = TextFrames<MaybeTlsStream<TcpStream>>;

/// Connects to the server at `server` (`http://host:port`, see [`session_url`]) and hosts
/// the agent until [`RemoteAgent::shutdown`]. Fails if the connection or the handshake
/// fails; later losses are retried when [`ConnectOptions::reconnect`] is set.
pub async fn connect(server: &str, options: ConnectOptions) -> Result<RemoteAgent, WsError> {
    let url = session_url(server)?;
    let socket = open(&url, &options).await?;
    let (bus, out) = WsBus::new();
    let bus = Arc::new(bus);
    let runtime = RuntimeBuilder::new(bus.clone(), Arc::new(options.engine.clone())).start();
    let id = options.key.id();
    let spec = AgentSpec::contractor(id, options.profile.clone(), options.behavior.clone())
        .with_key(options.key.clone());
    let handle = runtime.spawn_agent(spec)?;
    let (stop, stopped) = watch::channel(false);
    let connections = Arc::new(AtomicU64::new(1));
    let link = Link {
        url,
        options,
        bus: bus.clone(),
        out,
        handle: handle.clone(),
        stop: stopped,
        connections: connections.clone(),
    };
    let io = tokio::spawn(link.drive(socket));
    Ok(RemoteAgent { id, runtime, handle, stop, io: Some(io), connections, bus })
}

/// A connected agent. Dropping it says goodbye, like [`RemoteAgent::shutdown`] without
/// waiting.
pub struct RemoteAgent {
    id: AgentId,
    runtime: Runtime,
    handle: AgentHandle,
    stop: watch::Sender<bool>,
    io: Option<JoinHandle<Result<(), WsError>>>,
    connections: Arc<AtomicU64>,
    bus: Arc<WsBus>,
}

impl fmt::Debug for RemoteAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAgent").field("id", &self.id).finish_non_exhaustive()
    }
}

impl RemoteAgent {
    /// The agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// The locally hosted agent (status and counters of its engine).
    pub fn agent(&self) -> &AgentHandle {
        &self.handle
    }

    /// Sessions opened so far: 1, plus one per reconnection.
    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// What crossed the session: deliveries to the agent, refusals of the server's messages.
    pub fn bus_counters(&self) -> BusCounters {
        self.bus.counters()
    }

    /// Waits until the agent is disconnected for good: `Ok` after a shutdown, the reason
    /// otherwise (a lost connection without reconnect, a goodbye from the server, a refused
    /// reconnection).
    pub async fn wait(&mut self) -> Result<(), WsError> {
        let Some(io) = self.io.as_mut() else { return Ok(()) };
        let result =
            io.await.unwrap_or_else(|e| Err(WsError::Transport(format!("the session task failed: {e}"))));
        self.io = None;
        result
    }

    /// Says goodbye (5003: managers reassign its contracts at once), closes the connection
    /// and stops the local runtime.
    pub async fn shutdown(mut self) -> Result<(), WsError> {
        self.stop.send_replace(true);
        let result = self.wait().await;
        self.runtime.shutdown().await;
        result
    }

    /// Fault injection: the connection drops without a goodbye, as if the process died;
    /// the server reports 5009 and managers reassign the agent's contracts.
    pub async fn kill(mut self) {
        if let Some(io) = self.io.take() {
            io.abort();
            let _ = io.await;
        }
        self.runtime.shutdown().await;
    }
}

impl Drop for RemoteAgent {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The session task's state: it outlives connections when reconnecting.
struct Link {
    url: String,
    options: ConnectOptions,
    bus: Arc<WsBus>,
    out: mpsc::UnboundedReceiver<Arc<Envelope>>,
    handle: AgentHandle,
    stop: watch::Receiver<bool>,
    connections: Arc<AtomicU64>,
}

/// Why a session ended.
enum Outcome {
    Stop,
    Lost(WsError),
}

impl Link {
    async fn drive(mut self, mut socket: Socket) -> Result<(), WsError> {
        loop {
            let lost = match self.session(&mut socket).await {
                Outcome::Stop => {
                    let bye = Frame::Bye(Bye {
                        code: Code::AgentDisconnected,
                        reason: "the agent is shutting down".into(),
                    });
                    let _ = tokio::time::timeout(Duration::from_secs(2), socket.send(bye.to_text())).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close()).await;
                    return Ok(());
                }
                Outcome::Lost(e) => e,
            };
            tracing::warn!(agent = %self.handle.id(), error = %lost, "session lost");
            // The server's managers reassign what the agent held; running on would be waste.
            let _ = self.handle.kill().await;
            let Some(backoff) = self.options.reconnect.clone() else { return Err(lost) };
            socket = match self.reconnect(&backoff).await {
                Some(Ok(socket)) => socket,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            };
            // What the old incarnation still published belongs to contracts that are gone.
            while self.out.try_recv().is_ok() {}
            self.handle.restart().await?;
            self.connections.fetch_add(1, Relaxed);
            tracing::info!(agent = %self.handle.id(), "reconnected");
        }
    }

    /// Tries to connect again with `backoff`; `None` if stopped meanwhile.
    async fn reconnect(&mut self, backoff: &Backoff) -> Option<Result<Socket, WsError>> {
        let mut delay = backoff.initial;
        let mut attempt = 0;
        loop {
            tokio::select! {
                () = until_set(&mut self.stop) => return None,
                () = tokio::time::sleep(delay) => {}
            }
            attempt += 1;
            let result = tokio::select! {
                () = until_set(&mut self.stop) => return None,
                result = open(&self.url, &self.options) => result,
            };
            match result {
                Ok(socket) => return Some(Ok(socket)),
                Err(e) if e.is_transient() && backoff.attempts.is_none_or(|n| attempt < n) => {
                    tracing::warn!(error = %e, attempt, "reconnect failed");
                    delay = (delay * 2).min(backoff.max);
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    async fn session(&mut self, socket: &mut Socket) -> Outcome {
        let lost = |reason: String| Outcome::Lost(WsError::Transport(reason));
        loop {
            tokio::select! {
                biased;
                () = until_set(&mut self.stop) => return Outcome::Stop,
                Some(env) = self.out.recv() => {
                    if let Err(e) = socket.send(msg_text(&env)).await {
                        return lost(e.to_string());
                    }
                }
                frame = socket.next() => match frame {
                    None => return lost("the server closed the connection".into()),
                    Some(Err(e)) => return lost(e.to_string()),
                    Some(Ok(text)) => {
                        if let Some(outcome) = self.inbound(&text) {
                            return outcome;
                        }
                    }
                },
            }
        }
    }

    /// Handles one frame from the server; `Some` when it ends the session.
    fn inbound(&self, text: &str) -> Option<Outcome> {
        let me = self.handle.id();
        match read_frame(text) {
            Ok(Inbound::Msg(raw)) => {
                let now = (self.options.clock)();
                match xchange_protocol::decode(raw.get().as_bytes(), now, Some(me), &self.options.limits) {
                    Ok(env) => self.bus.deliver(env),
                    Err(refusal) => {
                        tracing::debug!(code = refusal.code.number(), reason = %refusal.reason, "message from the server refused");
                        self.bus.refused(refusal.code);
                    }
                }
                None
            }
            Ok(Inbound::Frame(Frame::Bye(bye))) => {
                Some(Outcome::Lost(WsError::Closed { code: bye.code, reason: bye.reason }))
            }
            Ok(Inbound::Frame(Frame::Error(error))) => {
                // The server refused one of our messages: the engine's timers recover (a
                // report is resent, a bid lapses); the log says why.
                tracing::warn!(code = error.code.number(), reason = %error.message, id = ?error.id, "server refused a message");
                None
            }
            Ok(Inbound::Frame(other)) => {
                tracing::debug!(frame = other.kind(), "unexpected frame ignored");
                None
            }
            Err(refusal) => {
                tracing::debug!(reason = %refusal.reason, "unreadable frame from the server");
                self.bus.refused(refusal.code);
                None
            }
        }
    }
}

/// Connects and does the handshake: challenge, signed hello, welcome.
async fn open(url: &str, o: &ConnectOptions) -> Result<Socket, WsError> {
    let max = max_frame_bytes(&o.limits);
    let config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (ws, _) = tokio::time::timeout(o.handshake_timeout, connecting)
        .await
        .map_err(|_| WsError::Timeout(format!("connecting to {url}")))?
        .map_err(|e| WsError::Transport(format!("{url}: {e}")))?;
    let mut socket = TextFrames::new(ws);
    let challenge = match expect(&mut socket, o.handshake_timeout).await? {
        Frame::Challenge(challenge) => challenge,
        other => return Err(unexpected(other, "a challenge")),
    };
    let speaks = |v: &String| v.parse::<Version>().is_ok_and(|v| SUPPORTED_MAJORS.contains(&v.major));
    if !challenge.versions.iter().any(speaks) {
        let message = format!("the server speaks {:?}; this client speaks 1.x", challenge.versions);
        return Err(WsError::Refused { code: Code::Incompatible, message });
    }
    let card = RemoteCard { endpoints: o.endpoints.clone(), ..RemoteCard::new(o.key.id(), &o.profile) };
    let hello = signed_hello(&o.key, &challenge, card, o.token.clone());
    socket.send(hello).await.map_err(|e| WsError::Transport(e.to_string()))?;
    match expect(&mut socket, o.handshake_timeout).await? {
        Frame::Welcome(w) if w.agent_id == o.key.id() => Ok(socket),
        Frame::Welcome(w) => {
            Err(WsError::Protocol(format!("welcomed as {} instead of {}", w.agent_id, o.key.id())))
        }
        other => Err(unexpected(other, "a welcome")),
    }
}

fn unexpected(frame: Frame, wanted: &str) -> WsError {
    match frame {
        Frame::Refused(e) => WsError::Refused { code: e.code, message: e.message },
        Frame::Bye(b) => WsError::Closed { code: b.code, reason: b.reason },
        other => WsError::Protocol(format!("expected {wanted}, got a {} frame", other.kind())),
    }
}

/// The next handshake frame.
async fn expect(socket: &mut Socket, within: Duration) -> Result<Frame, WsError> {
    let next = tokio::time::timeout(within, socket.next())
        .await
        .map_err(|_| WsError::Timeout("waiting for the server's handshake".into()))?;
    match next {
        None => Err(WsError::Transport("the server closed the connection during the handshake".into())),
        Some(Err(e)) => Err(WsError::Transport(e.to_string())),
        Some(Ok(text)) => match read_frame(&text) {
            Ok(Inbound::Frame(frame)) => Ok(frame),
            Ok(Inbound::Msg(_)) => Err(WsError::Protocol("a msg frame before the welcome".into())),
            Err(refusal) => Err(WsError::Protocol(refusal.to_string())),
        },
    }
}
