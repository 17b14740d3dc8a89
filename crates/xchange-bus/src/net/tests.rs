//! The conformance suite over the real NATS and Redis servers (`XCHANGE_TEST_NATS`,
//! `XCHANGE_TEST_REDIS`; CI sets both), and the edge checks on bytes that arrive from the
//! wire.

use std::sync::Arc;

use super::*;
use crate::testsuite::unique_prefix;

#[cfg(feature = "nats")]
async fn nats_bus() -> Option<(NetBus, async_nats::Client, String)> {
    let url = std::env::var("XCHANGE_TEST_NATS").ok()?;
    let prefix = unique_prefix("bus");
    let (bus, client) = NetBus::nats(&url, NetOptions::new(prefix.clone())).await.expect("connect to NATS");
    Some((bus, client, prefix))
}

#[cfg(feature = "redis")]
async fn redis_bus() -> Option<NetBus> {
    let url = std::env::var("XCHANGE_TEST_REDIS").ok()?;
    Some(NetBus::redis(&url, NetOptions::new(unique_prefix("bus"))).await.expect("connect to Redis"))
}

#[cfg(feature = "nats")]
mod over_nats {
    use super::*;

    crate::bus_conformance_suite!(async async { nats_bus().await.map(|(bus, _, _)| Arc::new(bus) as Arc<dyn Bus>) });
}

#[cfg(feature = "redis")]
mod over_redis {
    use super::*;

    crate::bus_conformance_suite!(async async { redis_bus().await.map(|bus| Arc::new(bus) as Arc<dyn Bus>) });
}

#[cfg(feature = "nats")]
mod edge {
    use std::time::Duration;

    use xchange_protocol::{AgentKey, Body, Nonce, ProposeBody};

    use super::*;
    use crate::Inbox;
    use crate::testsuite::{envelope, progress};

    async fn until_refused(bus: &NetBus, n: u64) -> BusCounters {
        for _ in 0..100 {
            let c = bus.counters();
            if c.refused_total() >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bus.counters()
    }

    #[tokio::test]
    async fn bad_messages_from_the_wire_are_refused_with_their_code_and_counted() {
        let Some((bus, client, prefix)) = nats_bus().await else { return };
        let (me, them, other) =
            (AgentKey::from_seed([1; 32]), AgentKey::from_seed([2; 32]), AgentKey::from_seed([3; 32]));
        let (inbox, mut rx) = Inbox::channel(0);
        bus.subscribe(Topic::Agent(me.id()), inbox).unwrap();
        bus.flush().await.unwrap();
        let subject = |to: AgentId, from: AgentId| format!("{prefix}.agent.{to}.{from}");
        let raw = |env: &Envelope| Bytes::from(xchange_protocol::encode(env));

        let bid = Body::Propose(ProposeBody { price: 3, eta_ms: 10, load: 0.0 });
        let unsigned = envelope(them.id(), Recipient::Agent(me.id()), bid.clone(), 1);
        let mut signed = unsigned.clone();
        them.sign(&mut signed, Nonce([9; 16]));
        let mut tampered = signed.clone();
        tampered.epoch += 1;
        let to_other = progress(them.id(), other.id(), 1);
        // Signed by its sender, but past its expiry: a stale message held back and sent late.
        let mut expired = envelope(them.id(), Recipient::Agent(me.id()), bid, 2);
        expired.expires_at = expired.expires_at.saturating_sub(60_000);
        them.sign(&mut expired, Nonce([8; 16]));

        let sends: [(String, Bytes); 8] = [
            (subject(me.id(), them.id()), Bytes::from_static(b"{not json")),
            (subject(me.id(), them.id()), raw(&unsigned)),
            (subject(me.id(), them.id()), raw(&tampered)),
            // Published on my inbox but addressed to someone else.
            (subject(me.id(), them.id()), raw(&to_other)),
            // Published in another agent's name.
            (subject(me.id(), other.id()), raw(&signed)),
            (subject(me.id(), them.id()), raw(&signed)),
            (subject(me.id(), them.id()), raw(&signed)), // the replay
            (subject(me.id(), them.id()), raw(&expired)),
        ];
        for (s, payload) in sends {
            client.publish(s, payload).await.unwrap();
        }
        client.flush().await.unwrap();

        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.msg.id, signed.id);
        let c = until_refused(&bus, 7).await;
        assert_eq!(c.refused_with(Code::Malformed), 1, "{c:?}");
        assert_eq!(c.refused_with(Code::SignatureMissing), 1, "{c:?}");
        assert_eq!(c.refused_with(Code::SignatureInvalid), 1, "{c:?}");
        assert_eq!(c.refused_with(Code::Forbidden), 2, "{c:?}");
        assert_eq!(c.refused_with(Code::Replay), 1, "{c:?}");
        assert_eq!(c.refused_with(Code::Expired), 1, "{c:?}");
        assert_eq!(c.delivered_total(), 1);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_sender_over_its_rate_is_refused_as_busy_and_others_still_pass() {
        let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else { return };
        let prefix = unique_prefix("rate");
        let options = NetOptions {
            sender_rate: Some(crate::RateLimit { per_second: 1, burst: 3 }),
            ..NetOptions::new(prefix.clone())
        };
        let (bus, client) = NetBus::nats(&url, options).await.unwrap();
        let (me, flooder, polite) =
            (AgentKey::from_seed([1; 32]), AgentKey::from_seed([4; 32]), AgentKey::from_seed([5; 32]));
        let (inbox, mut rx) = Inbox::channel(0);
        bus.subscribe(Topic::Agent(me.id()), inbox).unwrap();
        bus.flush().await.unwrap();
        for (from, seq) in (0..10).map(|i| (&flooder, i)).chain([(&polite, 100)]) {
            let env = progress(from.id(), me.id(), seq);
            let subject = format!("{prefix}.agent.{}.{}", me.id(), from.id());
            client.publish(subject, Bytes::from(xchange_protocol::encode(&env))).await.unwrap();
        }
        client.flush().await.unwrap();
        let c = until_refused(&bus, 7).await;
        assert_eq!(c.refused_with(Code::Busy), 7, "{c:?}");
        let mut from = Vec::new();
        while from.len() < 4 {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
            from.push(got.msg.from);
        }
        assert_eq!(from.iter().filter(|f| **f == flooder.id()).count(), 3, "the burst passes");
        assert!(from.contains(&polite.id()), "another sender is not held back");
    }

    #[tokio::test]
    async fn an_invalid_prefix_is_refused() {
        let Ok(url) = std::env::var("XCHANGE_TEST_NATS") else { return };
        let err = NetBus::nats(&url, NetOptions::new("a.b")).await.unwrap_err();
        assert!(matches!(err, BusError::InvalidTopic { .. }), "{err}");
    }
}
