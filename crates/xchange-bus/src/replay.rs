//! Replay protection for signed messages taken from outside the process: the
//! (`from`, `id`, `nonce`) of each accepted signed message is kept until its `expires_at`
//! (docs/protocol.md, "Replays"). Since `expires_at` is signed and capped by the edge, the
//! memory is bounded by the rate of signed messages times the maximum time-to-live.

use std::collections::{BTreeSet, HashSet};

use parking_lot::Mutex;
use xchange_protocol::{AgentId, Code, Envelope, MsgId, Nonce, Refusal, UnixMs};

type Key = (AgentId, MsgId, Nonce);

#[derive(Default)]
struct Seen {
    keys: HashSet<Key>,
    by_expiry: BTreeSet<(UnixMs, Key)>,
}

/// Remembers the signed messages seen, shared by every session of a gateway or every subscription of a network bus (an agent that
/// reconnects cannot replay what it sent before).
pub struct ReplayGuard {
    seen: Mutex<Seen>,
    capacity: usize,
}

impl ReplayGuard {
    /// Remembers at most `capacity` messages at once; more are refused as busy (5005).
    pub fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(Seen::default()), capacity }
    }

    /// Admits `env` unless it was seen before (5018). Unsigned messages are not remembered:
    /// they create no obligation, and nothing binds their id to their sender.
    pub fn admit(&self, env: &Envelope, now: UnixMs) -> Result<(), Refusal> {
        let (Some(nonce), Some(_)) = (env.nonce, env.sig) else { return Ok(()) };
        let key = (env.from, env.id, nonce);
        let mut seen = self.seen.lock();
        while let Some(&(at, old)) = seen.by_expiry.first()
            && at <= now
        {
            seen.by_expiry.pop_first();
            seen.keys.remove(&old);
        }
        if seen.keys.contains(&key) {
            return Err(Refusal::new(Code::Replay, format!("message {} was already received", env.id)));
        }
        if seen.keys.len() >= self.capacity {
            return Err(Refusal::new(Code::Busy, "too many signed messages in flight to check for replays"));
        }
        seen.keys.insert(key);
        seen.by_expiry.insert((env.expires_at, key));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().keys.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use xchange_protocol::{AgentKey, Body, HeartbeatBody, Recipient, Sig, Version};

    use super::*;

    fn env(id: u8, expires_at: UnixMs, signed: bool) -> Envelope {
        Envelope {
            aixp: Version::V1_0,
            id: MsgId::new_v7(1_000, [id; 10]),
            body: Body::Heartbeat(HeartbeatBody { incarnation: 1, contracts: Vec::new() }),
            from: AgentKey::from_seed([1; 32]).id(),
            to: Recipient::Agent(AgentKey::from_seed([2; 32]).id()),
            conversation: None,
            epoch: 0,
            in_reply_to: None,
            reply_by: None,
            expires_at,
            hops: 0,
            max_hops: 0,
            lineage: Arc::from(Vec::new()),
            nonce: signed.then_some(Nonce([id; 16])),
            sig: signed.then_some(Sig([0; 64])),
        }
    }

    #[test]
    fn a_repeat_is_refused_until_the_message_expires() {
        let guard = ReplayGuard::new(10);
        guard.admit(&env(1, 100, true), 0).unwrap();
        assert_eq!(guard.admit(&env(1, 100, true), 50).unwrap_err().code, Code::Replay);
        guard.admit(&env(2, 100, true), 50).unwrap();
        // Past its expiry the edge refuses the message anyway (5012): it is forgotten.
        guard.admit(&env(3, 300, true), 100).unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn unsigned_messages_are_not_remembered() {
        let guard = ReplayGuard::new(10);
        guard.admit(&env(1, 100, false), 0).unwrap();
        guard.admit(&env(1, 100, false), 0).unwrap();
        assert_eq!(guard.len(), 0);
    }

    #[test]
    fn a_full_memory_refuses_as_busy() {
        let guard = ReplayGuard::new(2);
        guard.admit(&env(1, 100, true), 0).unwrap();
        guard.admit(&env(2, 100, true), 0).unwrap();
        assert_eq!(guard.admit(&env(3, 100, true), 0).unwrap_err().code, Code::Busy);
        guard.admit(&env(3, 200, true), 100).unwrap();
    }
}
