//! The attach/detach bookkeeping both watchers share: which agents of the directory this
//! runtime knows, and since when their card was last renewed.

use std::collections::HashMap;
#[cfg(feature = "redis")]
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use xchange_protocol::Code;
use xchange_runtime::{RemoteAttachment, Runtime, RuntimeError};
use xchange_ws::SessionObserver;

use super::{DirectoryStats, parse_card};

pub(crate) struct Roster {
    runtime: Runtime,
    stats: Arc<DirectoryStats>,
    /// Told of arrivals and departures, as of WebSocket sessions (a node lists the agents).
    observer: Option<Arc<dyn SessionObserver>>,
    /// By agent id text, the form the backends key cards by.
    live: HashMap<String, Live>,
}

struct Live {
    attachment: RemoteAttachment,
    renewed: Instant,
}

impl Roster {
    pub(crate) fn new(
        runtime: Runtime,
        stats: Arc<DirectoryStats>,
        observer: Option<Arc<dyn SessionObserver>>,
    ) -> Self {
        Self { runtime, stats, observer, live: HashMap::new() }
    }

    /// A card value read under agent id `id`: attaches a new agent, notes a renewal of a
    /// known one. A later card with other contents does not change what the runtime knows
    /// (re-attaching would make managers reassign the agent's contracts); an agent that
    /// changes its card withdraws it first.
    pub(crate) fn card(&mut self, id: &str, value: &[u8]) {
        DirectoryStats::bump(&self.stats.cards_seen);
        let card = match parse_card(id, value) {
            Ok(card) => card,
            Err(reason) => return self.invalid(id, &reason),
        };
        if let Some(live) = self.live.get_mut(id) {
            live.renewed = Instant::now();
            return;
        }
        let profile = match card.profile() {
            Ok(profile) => profile,
            Err(refusal) => return self.invalid(id, &refusal.reason),
        };
        match self.runtime.attach_remote(card.id, profile) {
            Ok(attachment) => {
                DirectoryStats::bump(&self.stats.arrivals);
                tracing::debug!(agent = %id, "agent card attached");
                if let Some(observer) = &self.observer {
                    observer.on_connect(&card);
                }
                self.live.insert(id.to_owned(), Live { attachment, renewed: Instant::now() });
            }
            // Hosted by this runtime (or attached by a transport): already in its directory.
            Err(RuntimeError::AgentPresent(_)) => {}
            Err(RuntimeError::InvalidSpec(reason)) => self.invalid(id, &reason),
            Err(err) => tracing::warn!(agent = %id, error = %err, "attaching an agent card failed"),
        }
    }

    fn invalid(&self, id: &str, reason: &str) {
        DirectoryStats::bump(&self.stats.cards_invalid);
        tracing::warn!(agent = %id, reason, "invalid agent card ignored");
    }

    /// Agent `id` left: 5003 (agent_disconnected) for an orderly goodbye, else 5009.
    pub(crate) fn left(&mut self, id: &str, code: Code) {
        if let Some(live) = self.live.remove(id) {
            let counter =
                if code == Code::AgentDisconnected { &self.stats.departures } else { &self.stats.expiries };
            DirectoryStats::bump(counter);
            tracing::debug!(agent = %id, code = code.number(), "agent card detached");
            if let Some(observer) = &self.observer {
                observer.on_disconnect(live.attachment.id(), code);
            }
            live.attachment.detach(code);
        }
    }

    /// Detaches (5009) the agents whose card was not renewed for `ttl`. Only the NATS
    /// watcher needs it: Redis expires keys itself.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn sweep(&mut self, ttl: Duration) {
        let now = Instant::now();
        let stale: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| now.duration_since(live.renewed) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.left(&id, Code::UnexpectedDisconnect);
        }
    }

    /// Whether agent `id` is attached by this roster.
    #[cfg(feature = "redis")]
    pub(crate) fn knows(&self, id: &str) -> bool {
        self.live.contains_key(id)
    }

    /// The attached agents not in `present`.
    #[cfg(feature = "redis")]
    pub(crate) fn missing(&self, present: &HashSet<String>) -> Vec<String> {
        self.live.keys().filter(|id| !present.contains(*id)).cloned().collect()
    }
}
