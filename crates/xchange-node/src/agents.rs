//! Agents that connect over the WebSocket or announce themselves in the bus's directory:
//! their cards, whether they are connected (for a bus agent: its card is live), and
//! the last status code they were reported with (5001 connected, 5003 disconnected, 5009
//! disconnected unexpectedly).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use utoipa::ToSchema;
use xchange_protocol::{AgentId, Code};
use xchange_ws::{RemoteCard, SessionObserver};

use crate::job::Reason;
use crate::node::now_ms;

/// One agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentEntry {
    /// The agent id: its Ed25519 public key.
    pub id: String,
    /// The card it presented at its last handshake: capabilities, pools, capacity, price,
    /// speed, endpoints.
    #[schema(value_type = Object)]
    pub card: Value,
    /// Whether its session is open now.
    pub connected: bool,
    /// 5001 while connected; 5003 or 5009 after it left; absent when the agent has not
    /// connected since the node started.
    pub status: Option<Reason>,
    /// When the status last changed (Unix ms).
    pub since_ms: Option<u64>,
    /// Sessions it opened since the node started.
    pub sessions: u64,
}

/// The agents the node has seen since it started; their cards also go to the store (the
/// node drains [`AgentDirectory::new`]'s receiver), so that they can be queried after a
/// restart.
#[derive(Debug)]
pub struct AgentDirectory {
    entries: Mutex<BTreeMap<String, AgentEntry>>,
    cards: mpsc::UnboundedSender<(String, Value)>,
}

impl AgentDirectory {
    /// An empty directory and the cards to store, as they arrive.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<(String, Value)>) {
        let (cards, rx) = mpsc::unbounded_channel();
        (Self { entries: Mutex::default(), cards }, rx)
    }

    /// The entry for a stored card: live status if the agent was seen since the start.
    pub fn entry(&self, id: &str, card: Value) -> AgentEntry {
        self.get(id).unwrap_or(AgentEntry {
            id: id.to_owned(),
            card,
            connected: false,
            status: None,
            since_ms: None,
            sessions: 0,
        })
    }

    /// Every agent, in id order.
    pub fn list(&self) -> Vec<AgentEntry> {
        self.entries.lock().values().cloned().collect()
    }

    /// One agent.
    pub fn get(&self, id: &str) -> Option<AgentEntry> {
        self.entries.lock().get(id).cloned()
    }
}

impl SessionObserver for AgentDirectory {
    fn on_connect(&self, card: &RemoteCard) {
        let id = card.id.to_string();
        let card = serde_json::to_value(card).unwrap_or_default();
        let mut entries = self.entries.lock();
        let sessions = entries.get(&id).map_or(0, |e| e.sessions) + 1;
        let status = Some(Reason::of(Code::AgentConnected));
        let since_ms = Some(now_ms());
        let entry =
            AgentEntry { id: id.clone(), card: card.clone(), connected: true, status, since_ms, sessions };
        entries.insert(id.clone(), entry);
        let _ = self.cards.send((id, card));
    }

    fn on_disconnect(&self, agent: AgentId, code: Code) {
        // The engine knows two ways of leaving; anything but a goodbye is unexpected.
        let code = if code == Code::AgentDisconnected { code } else { Code::UnexpectedDisconnect };
        if let Some(e) = self.entries.lock().get_mut(&agent.to_string()) {
            e.connected = false;
            e.status = Some(Reason::of(code));
            e.since_ms = Some(now_ms());
        }
    }
}

/// The directory as the gateway's observer.
pub(crate) fn observer(directory: &Arc<AgentDirectory>) -> Arc<dyn SessionObserver> {
    directory.clone()
}
