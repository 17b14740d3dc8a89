//! What every session of a server shares: the runtime agents attach to, the edge limits,
//! credentials, the observer, counters, replay memory, and the shutdown signal.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;
use xchange_bus::{Bus, MsClock, system_ms_clock};
use xchange_core::ContractorProfile;
use xchange_protocol::{AgentId, Code, EdgeLimits, Nonce, Refusal, SUPPORTED_VERSIONS};
use xchange_runtime::Runtime;

use crate::card::RemoteCard;
use crate::frames::{Challenge, Hello, read_hello};
use xchange_bus::{RateLimit, ReplayGuard, SenderRates};

/// Checks the credential a hello carries (`None` when it carries none). Refuse with 5004
/// (unauthenticated) for a missing or wrong token, 5007 (forbidden) for a valid one that
/// may not connect this agent.
pub type TokenCheck = Arc<dyn Fn(Option<&str>, &RemoteCard) -> Result<(), Refusal> + Send + Sync>;

/// A check that accepts exactly `token`.
pub fn static_token(token: impl Into<String>) -> TokenCheck {
    static_tokens(vec![token.into()])
}

/// A check that accepts any of `tokens` (several, so that tokens can be rotated).
pub fn static_tokens(tokens: Vec<String>) -> TokenCheck {
    Arc::new(move |given, _| match given {
        Some(given) if token_matches(given, &tokens) => Ok(()),
        Some(_) => Err(Refusal::new(Code::Unauthenticated, "the token is not valid")),
        None => Err(Refusal::new(Code::Unauthenticated, "a token is required")),
    })
}

/// Whether `given` is one of `tokens`, compared in constant time (the HTTP API checks its
/// bearer tokens with the same function).
pub fn token_matches(given: &str, tokens: &[String]) -> bool {
    tokens.iter().any(|t| constant_time_eq(given.as_bytes(), t.as_bytes()))
}

/// Compares without stopping at the first difference, so that timing tells nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Told when agents connect and disconnect (the HTTP service stores cards and emits events).
pub trait SessionObserver: Send + Sync + 'static {
    /// An agent was welcomed (5001).
    fn on_connect(&self, card: &RemoteCard);
    /// An agent's session ended: 5003 after its goodbye (or the server's, at shutdown),
    /// 5009 when the connection dropped, 5005 when it read too slowly and was cut off.
    fn on_disconnect(&self, agent: AgentId, code: Code);
}

/// Settings of a [`Gateway`].
#[derive(Clone)]
pub struct GatewayConfig {
    /// Names this server in challenges (a hello signed for another server is refused).
    pub server_id: String,
    /// Unix milliseconds, for the edge checks.
    pub clock: MsClock,
    /// Limits on incoming envelopes; signatures are required unless turned off here.
    pub limits: EdgeLimits,
    /// Credentials; with none, any token (or none) is accepted.
    pub token_check: Option<TokenCheck>,
    /// Told of connects and disconnects.
    pub observer: Option<Arc<dyn SessionObserver>>,
    /// Messages queued for one agent; a client that lets it fill is cut off (5005).
    pub queue: usize,
    /// How long a client has to answer the challenge.
    pub handshake_timeout: Duration,
    /// How long one frame may take to send before the client counts as too slow (5005).
    pub send_timeout: Duration,
    /// Sessions at once; more are refused (5008).
    pub max_sessions: usize,
    /// Pools one agent may serve, each a subscription (a card allows 64 at most); a hello
    /// with more is refused (5008). An empty list (every pool) is one subscription.
    pub max_pools_per_agent: usize,
    /// Signed messages remembered at once against replays.
    pub replay_capacity: usize,
    /// Messages one agent may send (over all its sessions); more are refused with 5005
    /// and `retry_after_ms`. None: no limit.
    pub agent_rate: Option<RateLimit>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            server_id: "xchange".into(),
            clock: system_ms_clock(),
            limits: EdgeLimits::default(),
            token_check: None,
            observer: None,
            queue: 1024,
            handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_sessions: 10_000,
            max_pools_per_agent: 64,
            replay_capacity: 1 << 20,
            agent_rate: None,
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("server_id", &self.server_id)
            .field("limits", &self.limits)
            .field("token_check", &self.token_check.is_some())
            .field("queue", &self.queue)
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

/// What the sessions of a gateway did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Sessions open now (welcomed and not yet ended).
    pub connected: u64,
    /// Agents welcomed so far.
    pub welcomed: u64,
    /// Handshakes refused, per code.
    pub handshakes_refused: BTreeMap<Code, u64>,
    /// Envelopes taken from agents and published.
    pub messages_in: u64,
    /// Envelopes sent to agents.
    pub messages_out: u64,
    /// Envelopes refused, per code (a forged `from` is 5007).
    pub messages_refused: BTreeMap<Code, u64>,
    /// Sessions ended, per code (5003, 5009, 5005).
    pub disconnects: BTreeMap<Code, u64>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicUsize,
    pub(crate) welcomed: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    // Rare events: one lock each is cheap enough.
    handshakes_refused: Mutex<BTreeMap<Code, u64>>,
    messages_refused: Mutex<BTreeMap<Code, u64>>,
    disconnects: Mutex<BTreeMap<Code, u64>>,
}

impl Counters {
    pub(crate) fn handshake_refused(&self, code: Code) {
        *self.handshakes_refused.lock().entry(code).or_default() += 1;
    }
    pub(crate) fn message_refused(&self, code: Code) {
        *self.messages_refused.lock().entry(code).or_default() += 1;
    }
    pub(crate) fn disconnected(&self, code: Code) {
        *self.disconnects.lock().entry(code).or_default() += 1;
    }
}

/// The server side of agent sessions: pass one to [`crate::serve_session`] for each
/// connection.
pub struct Gateway {
    pub(crate) runtime: Runtime,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: GatewayConfig,
    pub(crate) counters: Counters,
    pub(crate) replay: ReplayGuard,
    pub(crate) rates: Option<SenderRates>,
    pub(crate) closing: watch::Sender<bool>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Gateway {
    /// Agents attach to `runtime`'s directory and talk on its bus.
    pub fn new(runtime: Runtime, config: GatewayConfig) -> Self {
        Self {
            bus: runtime.bus().clone(),
            runtime,
            replay: ReplayGuard::new(config.replay_capacity),
            rates: config.agent_rate.map(SenderRates::new),
            config,
            counters: Counters::default(),
            closing: watch::channel(false).0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Ends every session with a goodbye (5003) and refuses new ones (for a graceful
    /// shutdown of the service; managers are told the agents left in an orderly way).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether [`Gateway::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closing.borrow()
    }

    /// What the sessions did so far.
    pub fn stats(&self) -> GatewayStats {
        let c = &self.counters;
        GatewayStats {
            connected: c.connected.load(Relaxed) as u64,
            welcomed: c.welcomed.load(Relaxed),
            handshakes_refused: c.handshakes_refused.lock().clone(),
            messages_in: c.messages_in.load(Relaxed),
            messages_out: c.messages_out.load(Relaxed),
            messages_refused: c.messages_refused.lock().clone(),
            disconnects: c.disconnects.lock().clone(),
        }
    }

    /// A fresh challenge.
    pub(crate) fn challenge(&self) -> Challenge {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the operating system provides randomness");
        Challenge {
            nonce: Nonce(nonce),
            server_id: self.config.server_id.clone(),
            versions: SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    /// Checks a hello against `challenge`: its shape and version, that it answers this
    /// challenge, that its signature verifies with the key its id names, its credential,
    /// and its card. Every failure is a refusal with its code.
    pub(crate) fn admit(
        &self,
        text: &str,
        challenge: &Challenge,
    ) -> Result<(RemoteCard, ContractorProfile), Refusal> {
        let unauthenticated = |reason: String| Err(Refusal::new(Code::Unauthenticated, reason));
        // A hello is small; the envelope size limit is more than enough.
        let (hello, raw): (Hello, Value) = read_hello(text, &self.config.limits)?;
        if hello.nonce != challenge.nonce || hello.server_id != challenge.server_id {
            return unauthenticated("the hello does not answer this server's challenge".into());
        }
        if hello.card.id != hello.from {
            return unauthenticated(format!(
                "the card's id {} is not the signing key {}",
                hello.card.id, hello.from
            ));
        }
        if let Err(e) = xchange_protocol::verify_value(&raw) {
            return unauthenticated(format!("the hello's signature: {}", e.reason));
        }
        if let Some(check) = &self.config.token_check {
            check(hello.token.as_deref(), &hello.card)?;
        }
        let profile = hello.card.profile()?;
        if hello.card.pools.len() > self.config.max_pools_per_agent {
            let reason = format!(
                "the card lists {} pools; this server allows {} subscriptions per agent",
                hello.card.pools.len(),
                self.config.max_pools_per_agent
            );
            return Err(Refusal::new(Code::ConnectionLimit, reason));
        }
        Ok((hello.card, profile))
    }
}
