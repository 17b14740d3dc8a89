//! One agent session on the server: the handshake, then envelopes both ways until a
//! goodbye or a drop.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{Notify, mpsc};
use xchange_bus::{Bus, Delivery, DeliverySink, Inbox, SubscriptionId};
use xchange_core::ContractorProfile;
use xchange_protocol::{AgentId, Code, Envelope, Refusal};
use xchange_runtime::{RemoteAttachment, RuntimeError, agent_topics};

use crate::card::RemoteCard;
use crate::frames::{
    Bye, ErrorFrame, Frame, Inbound, Welcome, envelope_id, max_frame_bytes, msg_text, read_frame,
};
use crate::gateway::Gateway;
use crate::until_set;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionEnd {
    /// The agent, if it was welcomed.
    pub agent: Option<AgentId>,
    /// 5003 after a goodbye, 5009 when the connection dropped, 5005 for a client too slow
    /// to read; for a refused handshake, the refusal's code.
    pub code: Code,
}

/// Serves one connection: `frames` are its text frames (a WebSocket adapted with a few
/// lines, see `docs/agents.md`; or [`crate::TextFrames`] over tokio-tungstenite). Returns
/// when the session is over; the connection is closed by then.
pub async fn serve_session<F, E>(mut frames: F, gateway: &Gateway) -> SessionEnd
where
    F: Stream<Item = Result<String, E>> + Sink<String> + Unpin,
    E: fmt::Display,
{
    let end = match handshake(&mut frames, gateway).await {
        Ok(session) => session.run(&mut frames).await,
        Err(end) => end,
    };
    // A close that the peer does not complete must not hold the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), frames.close()).await;
    end
}

/// Counts a session while it lives (for the session limit).
struct Slot<'a>(&'a Gateway);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.counters.connected.fetch_sub(1, Relaxed);
    }
}

/// An agent's subscriptions; dropped, they are removed.
struct Subscriptions {
    bus: Arc<dyn Bus>,
    ids: Vec<SubscriptionId>,
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            if let Err(e) = self.bus.unsubscribe(id) {
                tracing::debug!(error = %e, "unsubscribe failed");
            }
        }
    }
}

/// Where the bus puts the agent's deliveries: a bounded queue the session drains to the
/// socket. A full queue means the client reads too slowly: it is flagged, and the session
/// cuts the client off.
struct Outbox {
    tx: mpsc::Sender<Arc<Envelope>>,
    overflowed: AtomicBool,
    notify: Notify,
}

impl DeliverySink for Outbox {
    fn deliver(&self, delivery: Delivery) -> bool {
        match self.tx.try_send(delivery.msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflowed.swap(true, Relaxed) {
                    self.notify.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

struct Session<'a> {
    gateway: &'a Gateway,
    card: RemoteCard,
    outbox: Arc<Outbox>,
    rx: mpsc::Receiver<Arc<Envelope>>,
    _subs: Subscriptions,
    /// Taken when the session ends; a session dropped before (its task aborted) still
    /// detaches the agent and tells the observer, as an unexpected disconnect.
    attachment: Option<RemoteAttachment>,
    _slot: Slot<'a>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some(attachment) = self.attachment.take() {
            self.finish(attachment, Code::UnexpectedDisconnect);
        }
    }
}

async fn send<F: Sink<String> + Unpin>(frames: &mut F, text: String, within: Duration) -> Result<(), Code> {
    match tokio::time::timeout(within, frames.send(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Code::UnexpectedDisconnect),
        Err(_) => Err(Code::Busy),
    }
}

async fn refuse<F: Sink<String> + Unpin>(frames: &mut F, gateway: &Gateway, refusal: Refusal) -> SessionEnd {
    tracing::debug!(code = refusal.code.number(), reason = %refusal.reason, "agent handshake refused");
    gateway.counters.handshake_refused(refusal.code);
    let frame = Frame::Refused(ErrorFrame::new(&refusal, None));
    let _ = send(frames, frame.to_text(), gateway.config.send_timeout).await;
    SessionEnd { agent: None, code: refusal.code }
}

/// Challenge, hello, checks; then the agent's topics are subscribed and its card attached,
/// in that order, so that no message sent to it on arrival is lost.
async fn handshake<'a, F, E>(frames: &mut F, gateway: &'a Gateway) -> Result<Session<'a>, SessionEnd>
where
    F: Stream<Item = Result<String, E>> + Sink<String> + Unpin,
    E: fmt::Display,
{
    let config = &gateway.config;
    if gateway.is_closed() {
        return Err(
            refuse(frames, gateway, Refusal::new(Code::Unavailable, "the server is shutting down")).await
        );
    }
    let slot = Slot(gateway);
    if gateway.counters.connected.fetch_add(1, Relaxed) >= config.max_sessions {
        let refusal =
            Refusal::new(Code::ConnectionLimit, format!("{} agents are connected", config.max_sessions));
        return Err(refuse(frames, gateway, refusal).await);
    }
    let challenge = gateway.challenge();
    let dropped = SessionEnd { agent: None, code: Code::UnexpectedDisconnect };
    if send(frames, Frame::Challenge(challenge.clone()).to_text(), config.send_timeout).await.is_err() {
        return Err(dropped);
    }
    let text = match tokio::time::timeout(config.handshake_timeout, frames.next()).await {
        Err(_) => {
            let secs = config.handshake_timeout.as_secs_f64();
            return Err(refuse(
                frames,
                gateway,
                Refusal::new(Code::Busy, format!("no hello within {secs} s")),
            )
            .await);
        }
        Ok(Some(Ok(text))) => text,
        Ok(_) => return Err(dropped),
    };
    let (card, profile) = match gateway.admit(&text, &challenge) {
        Ok(admitted) => admitted,
        Err(refusal) => return Err(refuse(frames, gateway, refusal).await),
    };
    let id = card.id;
    let (outbox, rx, subs) = match subscribe(gateway, id, &profile) {
        Ok(parts) => parts,
        Err(refusal) => return Err(refuse(frames, gateway, refusal).await),
    };
    let attachment = match gateway.runtime.attach_remote(id, profile) {
        Ok(a) => a,
        Err(e) => {
            let refusal = match e {
                RuntimeError::AgentPresent(_) => {
                    Refusal::new(Code::Conflict, format!("agent {id} is already connected"))
                }
                RuntimeError::InvalidSpec(reason) => Refusal::new(Code::SchemaInvalid, reason),
                other => Refusal::new(Code::Unavailable, other.to_string()),
            };
            return Err(refuse(frames, gateway, refusal).await);
        }
    };
    let session =
        Session { gateway, card, outbox, rx, _subs: subs, attachment: Some(attachment), _slot: slot };
    gateway.counters.welcomed.fetch_add(1, Relaxed);
    tracing::info!(agent = %id, capabilities = ?session.card.capabilities, "agent connected");
    // Told before the welcome goes out, so that the observer always hears a connect before
    // the disconnect that a failed welcome leads to.
    if let Some(observer) = &config.observer {
        observer.on_connect(&session.card);
    }
    let welcome = Frame::Welcome(Welcome { agent_id: id, code: Code::AgentConnected });
    if let Err(code) = send(frames, welcome.to_text(), config.send_timeout).await {
        return Err(session.end(code));
    }
    Ok(session)
}

type Subscribed = (Arc<Outbox>, mpsc::Receiver<Arc<Envelope>>, Subscriptions);

fn subscribe(gateway: &Gateway, id: AgentId, profile: &ContractorProfile) -> Result<Subscribed, Refusal> {
    let (tx, rx) = mpsc::channel(gateway.config.queue.max(1));
    let outbox = Arc::new(Outbox { tx, overflowed: AtomicBool::new(false), notify: Notify::new() });
    let inbox = Inbox::from_sink(outbox.clone(), 0);
    let mut subs = Subscriptions { bus: gateway.bus.clone(), ids: Vec::new() };
    for topic in agent_topics(id, Some(profile)) {
        let sub = gateway
            .bus
            .subscribe(topic, inbox.clone())
            .map_err(|e| Refusal::new(Code::Unavailable, e.to_string()))?;
        subs.ids.push(sub);
    }
    Ok((outbox, rx, subs))
}

/// What to do after an incoming frame.
enum Next {
    Continue,
    Reply(ErrorFrame),
    Bye,
}

impl Session<'_> {
    fn id(&self) -> AgentId {
        self.card.id
    }

    async fn run<F, E>(mut self, frames: &mut F) -> SessionEnd
    where
        F: Stream<Item = Result<String, E>> + Sink<String> + Unpin,
        E: fmt::Display,
    {
        let config = &self.gateway.config;
        let mut closing = self.gateway.closing.subscribe();
        let code = loop {
            tokio::select! {
                biased;
                () = until_set(&mut closing) => {
                    let bye = Bye { code: Code::AgentDisconnected, reason: "the server is shutting down".into() };
                    let _ = send(frames, Frame::Bye(bye).to_text(), config.send_timeout).await;
                    break Code::AgentDisconnected;
                }
                () = self.outbox.notify.notified() => break Code::Busy,
                Some(env) = self.rx.recv() => {
                    if let Err(code) = send(frames, msg_text(&env), config.send_timeout).await {
                        break code;
                    }
                    self.gateway.counters.messages_out.fetch_add(1, Relaxed);
                }
                frame = frames.next() => match frame {
                    Some(Ok(text)) => match self.inbound(&text) {
                        Next::Continue => {}
                        Next::Bye => break Code::AgentDisconnected,
                        Next::Reply(error) => {
                            if let Err(code) = send(frames, Frame::Error(error).to_text(), config.send_timeout).await {
                                break code;
                            }
                        }
                    },
                    Some(Err(e)) => {
                        tracing::debug!(agent = %self.id(), error = %e, "agent connection failed");
                        break Code::UnexpectedDisconnect;
                    }
                    None => break Code::UnexpectedDisconnect,
                },
            }
        };
        if code == Code::Busy {
            // Best effort, briefly: the client is not reading anyway.
            let bye = Bye { code, reason: "the agent reads its messages too slowly".into() };
            let _ = tokio::time::timeout(Duration::from_millis(100), frames.send(Frame::Bye(bye).to_text()))
                .await;
        }
        self.end(code)
    }

    /// Handles one incoming frame.
    fn inbound(&self, text: &str) -> Next {
        let gateway = self.gateway;
        let limits = &gateway.config.limits;
        let refused = |refusal: Refusal, id| {
            gateway.counters.message_refused(refusal.code);
            tracing::debug!(agent = %self.id(), code = refusal.code.number(), reason = %refusal.reason, "agent message refused");
            ErrorFrame::new(&refusal, id)
        };
        if text.len() > max_frame_bytes(limits) {
            let reason = format!("frame is {} bytes; the limit is {}", text.len(), max_frame_bytes(limits));
            return Next::Reply(refused(Refusal::new(Code::TooLarge, reason), None));
        }
        let raw = match read_frame(text) {
            Ok(Inbound::Msg(raw)) => raw,
            Ok(Inbound::Frame(Frame::Bye(bye))) => {
                tracing::debug!(agent = %self.id(), code = bye.code.number(), reason = %bye.reason, "agent said goodbye");
                return Next::Bye;
            }
            Ok(Inbound::Frame(other)) => {
                let reason = format!("a {} frame is not expected after the handshake", other.kind());
                return Next::Reply(refused(Refusal::new(Code::OutOfSequence, reason), None));
            }
            Err(refusal) => return Next::Reply(refused(refusal, None)),
        };
        let now = (gateway.config.clock)();
        let env = match xchange_protocol::decode(raw.get().as_bytes(), now, None, limits) {
            Ok(env) => env,
            Err(refusal) => return Next::Reply(refused(refusal, envelope_id(raw))),
        };
        if env.from != self.id() {
            let reason = format!("message from {} on the connection of {}", env.from, self.id());
            return Next::Reply(refused(Refusal::new(Code::Forbidden, reason), Some(env.id)));
        }
        if let Some(Err(over)) = gateway.rates.as_ref().map(|r| r.admit(env.from)) {
            let retry_after_ms = Some(over.retry_after.as_millis().max(1) as u64);
            return Next::Reply(ErrorFrame { retry_after_ms, ..refused(over.refusal, Some(env.id)) });
        }
        if let Err(refusal) = gateway.replay.admit(&env, now) {
            return Next::Reply(refused(refusal, Some(env.id)));
        }
        let id = env.id;
        if let Err(e) = gateway.bus.publish(Arc::new(env)) {
            return Next::Reply(refused(Refusal::new(Code::Unavailable, e.to_string()), Some(id)));
        }
        gateway.counters.messages_in.fetch_add(1, Relaxed);
        Next::Continue
    }

    /// Ends the session with `code`.
    fn end(mut self, code: Code) -> SessionEnd {
        if let Some(attachment) = self.attachment.take() {
            self.finish(attachment, code);
        }
        SessionEnd { agent: Some(self.id()), code }
    }

    /// Detaches the agent (managers hear 5003 or 5009) and tells the observer why.
    fn finish(&self, attachment: RemoteAttachment, code: Code) {
        let id = self.id();
        tracing::info!(agent = %id, code = code.number(), "agent disconnected");
        self.gateway.counters.disconnected(code);
        attachment.detach(code);
        if let Some(observer) = &self.gateway.config.observer {
            observer.on_disconnect(id, code);
        }
    }
}
