//! The bus of a remote agent's local runtime: what its engine publishes goes to the
//! server as `msg` frames; what the server sends is checked at the edge and handed to the
//! local inboxes subscribed to its recipient.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use tokio::sync::mpsc;
use xchange_bus::{Bus, BusCounters, BusError, Inbox, KINDS, SubscriptionId, Topic};
use xchange_protocol::{Code, Envelope};

pub(crate) struct WsBus {
    out: mpsc::UnboundedSender<Arc<Envelope>>,
    subs: Mutex<Vec<(SubscriptionId, Topic, Inbox)>>,
    next: AtomicU64,
    delivered: [AtomicU64; KINDS],
    dropped: AtomicU64,
    refused: Mutex<BTreeMap<Code, u64>>,
}

impl WsBus {
    /// A bus whose published messages come out of the returned receiver.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Arc<Envelope>>) {
        let (out, rx) = mpsc::unbounded_channel();
        let bus = Self {
            out,
            subs: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
            delivered: Default::default(),
            dropped: AtomicU64::new(0),
            refused: Mutex::new(BTreeMap::new()),
        };
        (bus, rx)
    }

    /// Hands a checked message from the server to the inboxes of its recipient.
    pub(crate) fn deliver(&self, msg: Envelope) {
        let topic = Topic::of(&msg.to);
        let kind = msg.kind().index();
        let msg = Arc::new(msg);
        let mut delivered = 0;
        for (_, _, inbox) in self.subs.lock().iter().filter(|(_, t, _)| *t == topic) {
            delivered += u64::from(inbox.deliver(msg.clone()));
        }
        if delivered == 0 {
            self.dropped.fetch_add(1, Relaxed);
        }
        self.delivered[kind].fetch_add(delivered, Relaxed);
    }

    /// Counts a message from the server that the edge refused.
    pub(crate) fn refused(&self, code: Code) {
        *self.refused.lock().entry(code).or_default() += 1;
    }
}

impl Bus for WsBus {
    fn publish(&self, msg: Arc<Envelope>) -> Result<(), BusError> {
        self.out.send(msg).map_err(|_| BusError::Closed)
    }

    fn subscribe(&self, topic: Topic, inbox: Inbox) -> Result<SubscriptionId, BusError> {
        let id = SubscriptionId(self.next.fetch_add(1, Relaxed));
        self.subs.lock().push((id, topic, inbox));
        Ok(id)
    }

    fn unsubscribe(&self, id: SubscriptionId) -> Result<(), BusError> {
        self.subs.lock().retain(|(s, _, _)| *s != id);
        Ok(())
    }

    fn counters(&self) -> BusCounters {
        BusCounters {
            delivered: std::array::from_fn(|i| self.delivered[i].load(Relaxed)),
            dropped: self.dropped.load(Relaxed),
            bytes_encoded: 0,
            overflowed: 0,
            disconnects: 0,
            refused: self.refused.lock().clone(),
        }
    }

    /// The server's edge requires the kinds that create obligations to be signed.
    fn wants_signatures(&self) -> bool {
        true
    }
}
