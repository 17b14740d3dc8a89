//! The edge: where a message leaves the typed world and comes back through the checks.

use xchange_protocol::{EdgeLimits, Envelope, Refusal};

use crate::MsClock;
use crate::counters::Stats;

/// How messages cross an in-process bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EdgeMode {
    /// The `Arc<Envelope>` travels as is: no encoding, no checks (inside one process the
    /// sender is trusted).
    #[default]
    Direct,
    /// Every message is encoded to JSON and decoded again through the protocol's edge checks
    /// (version, size, expiry, hops and, if asked, signatures), as between processes. Used to
    /// measure and test what crossing a process boundary costs.
    Encode {
        /// Whether kinds that must be signed are refused unless their signature verifies.
        verify_signatures: bool,
    },
}

pub(crate) struct Edge {
    mode: EdgeMode,
    clock: MsClock,
    limits: EdgeLimits,
}

impl Edge {
    /// `limits.require_signatures` is overridden by the mode's `verify_signatures`.
    pub(crate) fn new(mode: EdgeMode, clock: MsClock, limits: EdgeLimits) -> Option<Self> {
        match mode {
            EdgeMode::Direct => None,
            EdgeMode::Encode { verify_signatures } => Some(Self {
                mode,
                clock,
                limits: EdgeLimits { require_signatures: verify_signatures, ..limits },
            }),
        }
    }

    pub(crate) fn mode(&self) -> EdgeMode {
        self.mode
    }

    pub(crate) fn verifies_signatures(&self) -> bool {
        matches!(self.mode, EdgeMode::Encode { verify_signatures: true })
    }

    /// Encodes `msg`, counts the bytes, and decodes it as its recipient would.
    ///
    /// Decoded once per message, not per subscriber: copies of one broadcast are the same
    /// bytes, and only the recipient check differs, which pool subjects do not have.
    pub(crate) fn round_trip(&self, msg: &Envelope, stats: &Stats) -> Result<Envelope, Refusal> {
        let bytes = xchange_protocol::encode(msg);
        stats.encoded(bytes.len());
        xchange_protocol::decode(&bytes, (self.clock)(), msg.to.agent(), &self.limits)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use xchange_protocol::{AgentKey, Body, Code, Kind, Nonce, ProposeBody, Recipient};

    use super::*;
    use crate::testsuite::{envelope, progress};
    use crate::{Bus, InProcBus, Inbox, Topic};

    fn bus_at(now: Arc<AtomicU64>, verify_signatures: bool) -> InProcBus {
        InProcBus::builder()
            .edge(EdgeMode::Encode { verify_signatures })
            .clock(Arc::new(move || now.load(Relaxed)))
            .build()
    }

    fn wall_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn expired_messages_are_refused_by_the_edge_clock_and_counted() {
        let now = Arc::new(AtomicU64::new(wall_ms()));
        let bus = bus_at(now.clone(), false);
        let (a, s) = (AgentKey::from_seed([1; 32]).id(), AgentKey::from_seed([2; 32]).id());
        let (inbox, mut rx) = Inbox::channel(0);
        bus.subscribe(Topic::Agent(a), inbox).unwrap();
        bus.publish(progress(s, a, 1)).unwrap();
        assert_eq!(rx.try_recv().unwrap().msg.epoch, 1);
        now.fetch_add(60_000, Relaxed); // past the test message's 20 s time-to-live
        bus.publish(progress(s, a, 2)).unwrap();
        assert!(rx.try_recv().is_err());
        let c = bus.counters();
        assert_eq!(c.refused_with(Code::Expired), 1);
        assert_eq!(c.delivered_of(Kind::Progress), 1);
        assert!(c.bytes_encoded > 200, "{}", c.bytes_encoded);
        assert!(!bus.wants_signatures());
    }

    #[test]
    fn signatures_are_required_only_when_asked() {
        let (m, c) = (AgentKey::from_seed([1; 32]), AgentKey::from_seed([2; 32]));
        let body = Body::Propose(ProposeBody { price: 3, eta_ms: 10, load: 0.0 });
        let unsigned = envelope(c.id(), Recipient::Agent(m.id()), body, 1);
        let mut signed = unsigned.clone();
        c.sign(&mut signed, Nonce([5; 16]));
        let mut forged = signed.clone();
        forged.epoch += 1;

        let strict = bus_at(Arc::new(AtomicU64::new(wall_ms())), true);
        assert!(strict.wants_signatures());
        let (inbox, mut rx) = Inbox::channel(0);
        strict.subscribe(Topic::Agent(m.id()), inbox).unwrap();
        for msg in [unsigned.clone(), forged, signed.clone()] {
            strict.publish(Arc::new(msg)).unwrap();
        }
        assert_eq!(rx.try_recv().unwrap().msg.id, signed.id);
        assert!(rx.try_recv().is_err());
        let counters = strict.counters();
        assert_eq!(counters.refused_with(Code::SignatureMissing), 1);
        assert_eq!(counters.refused_with(Code::SignatureInvalid), 1);

        let lax = bus_at(Arc::new(AtomicU64::new(wall_ms())), false);
        let (inbox, mut rx) = Inbox::channel(0);
        lax.subscribe(Topic::Agent(m.id()), inbox).unwrap();
        lax.publish(Arc::new(unsigned)).unwrap();
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn misaddressed_and_looping_messages_are_refused_not_panicked_on() {
        let bus = bus_at(Arc::new(AtomicU64::new(wall_ms())), false);
        let (a, s) = (AgentKey::from_seed([1; 32]).id(), AgentKey::from_seed([2; 32]).id());
        let (inbox, mut rx) = Inbox::channel(0);
        bus.subscribe(Topic::Agent(a), inbox).unwrap();
        let mut deep = (*progress(s, a, 1)).clone();
        deep.hops = 9;
        bus.publish(Arc::new(deep)).unwrap();
        let mut ttl = (*progress(s, a, 2)).clone();
        ttl.expires_at += 24 * 3_600_000;
        bus.publish(Arc::new(ttl)).unwrap();
        assert!(rx.try_recv().is_err());
        let c = bus.counters();
        assert_eq!(c.refused_with(Code::HopLimit), 1);
        assert_eq!(c.refused_with(Code::TtlTooLong), 1);
        assert_eq!(c.refused_total(), 2);
        assert_eq!(c.delivered_total(), 0);
    }
}
