//! The conformance suite every [`Bus`] implementation runs (quickwit's metastore-suite
//! style): `bus_conformance_suite!(constructor_expr)` (or `bus_conformance_suite!(async
//! future)` for a bus that connects to a server) expands to one `#[tokio::test]` per
//! behaviour, each on a fresh bus.
//!
//! Deliveries may be asynchronous (network buses), so checks wait for what must arrive with
//! a timeout and check for what must not with a short grace period. Counters are read after
//! the deliveries they count have arrived.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedReceiver;
use xchange_protocol::{
    AgentId, Body, Budget, CfpBody, Envelope, Kind, MsgId, ProgressBody, Recipient, TaskId, TaskSpec, Version,
};

use crate::{Bus, Delivery, Inbox, Topic};

/// Expands to the conformance tests for the bus built by `$make` (any expression whose
/// value implements [`Bus`]). The calling crate needs tokio with `rt` and `macros`.
#[macro_export]
macro_rules! bus_conformance_suite {
    // A network bus: `$make` is a future of `Option<Arc<dyn Bus>>`, `None` when the server
    // it needs is not configured (the test then says so and passes).
    (async $make:expr) => {
        $crate::bus_conformance_suite!(@tests $make);
    };
    (@tests $make:expr) => {
        mod bus_conformance {
            #[allow(unused_imports)]
            use super::*;

            async fn make() -> ::std::option::Option<::std::sync::Arc<dyn $crate::Bus>> {
                let bus = $make.await;
                if bus.is_none() {
                    eprintln!("bus_conformance: server not configured, test skipped");
                }
                bus
            }

            #[tokio::test]
            async fn delivers_to_the_addressed_agent_only() {
                if let Some(bus) = make().await {
                    $crate::testsuite::agent_delivery(bus).await;
                }
            }
            #[tokio::test]
            async fn pool_messages_fan_out_and_count_every_copy() {
                if let Some(bus) = make().await {
                    $crate::testsuite::pool_fan_out(bus).await;
                }
            }
            #[tokio::test]
            async fn unsubscribed_inboxes_receive_nothing() {
                if let Some(bus) = make().await {
                    $crate::testsuite::unsubscribe(bus).await;
                }
            }
            #[tokio::test]
            async fn messages_without_a_live_subscriber_are_dropped_and_counted() {
                if let Some(bus) = make().await {
                    $crate::testsuite::dropped(bus).await;
                }
            }
            #[tokio::test]
            async fn order_is_kept_per_sender_and_receiver() {
                if let Some(bus) = make().await {
                    $crate::testsuite::ordering(bus).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_publishers_lose_nothing() {
                if let Some(bus) = make().await {
                    $crate::testsuite::concurrent_publishers(bus).await;
                }
            }
        }
    };
    ($make:expr) => {
        $crate::bus_conformance_suite!(@tests async {
            ::std::option::Option::Some(::std::sync::Arc::new($make) as ::std::sync::Arc<dyn $crate::Bus>)
        });
    };
}

const WAIT: Duration = Duration::from_secs(5);
const GRACE: Duration = Duration::from_millis(50);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A valid, unsigned message from `from` to `to`; `seq` goes into the epoch so that order
/// can be checked.
pub fn envelope(from: AgentId, to: Recipient, body: Body, seq: u32) -> Envelope {
    let now = now_ms();
    let mut random = [0u8; 10];
    random[..4].copy_from_slice(&seq.to_be_bytes());
    random[4..].copy_from_slice(&from.0[..6]);
    Envelope {
        aixp: Version::V1_0,
        id: MsgId::new_v7(now, random),
        body,
        from,
        to,
        conversation: Some(TaskId::new_v7(now, [7; 10])),
        epoch: seq,
        in_reply_to: None,
        reply_by: None,
        expires_at: now + 20_000,
        hops: 1,
        max_hops: 8,
        lineage: Arc::from(Vec::new()),
        nonce: None,
        sig: None,
    }
}

/// A `progress` message (a kind that need not be signed).
pub fn progress(from: AgentId, to: AgentId, seq: u32) -> Arc<Envelope> {
    let body = Body::Progress(ProgressBody { fraction: 0.5, started: true, note: None });
    Arc::new(envelope(from, Recipient::Agent(to), body, seq))
}

/// A `cfp` on a pool subject.
pub fn cfp(from: AgentId, pool: &str, capability: &str) -> Arc<Envelope> {
    let mut task = TaskSpec::new(capability, serde_json::Value::Null);
    task.pool = pool.into();
    let body = Body::Cfp(CfpBody { task: Arc::new(task), budget: Budget::ZERO, late: false });
    let to = Recipient::Pool { pool: pool.into(), capability: capability.into() };
    Arc::new(envelope(from, to, body, 0))
}

fn agent(i: u64) -> AgentId {
    AgentId::from_index(0xb05, i)
}

async fn recv_n(rx: &mut UnboundedReceiver<Delivery>, n: usize) -> Vec<Delivery> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(d)) => out.push(d),
            Ok(None) => panic!("inbox closed after {} of {n} deliveries", out.len()),
            Err(_) => panic!("timed out after {} of {n} deliveries", out.len()),
        }
    }
    out
}

async fn assert_silent(rx: &mut UnboundedReceiver<Delivery>, what: &str) {
    if let Ok(Some(d)) = tokio::time::timeout(GRACE, rx.recv()).await {
        panic!("{what}: unexpected delivery {:?} of {}", d.msg.kind(), d.msg.id);
    }
}

/// An agent's inbox gets its messages, stamped with its token, and nobody else's.
pub async fn agent_delivery(bus: Arc<dyn Bus>) {
    let (a, b, s) = (agent(1), agent(2), agent(3));
    let (inbox_a, mut rx_a) = Inbox::channel(7);
    let (inbox_b, mut rx_b) = Inbox::channel(8);
    bus.subscribe(Topic::Agent(a), inbox_a).unwrap();
    bus.subscribe(Topic::Agent(b), inbox_b).unwrap();
    let msg = progress(s, a, 1);
    bus.publish(msg.clone()).unwrap();
    let got = recv_n(&mut rx_a, 1).await;
    assert_eq!(got[0].token, 7);
    assert_eq!(got[0].msg.id, msg.id);
    assert_eq!(got[0].msg.from, s);
    assert_silent(&mut rx_b, "another agent's inbox").await;
    let c = bus.counters();
    assert_eq!(c.delivered_of(Kind::Progress), 1);
    assert_eq!(c.delivered_total(), 1);
    assert_eq!(c.dropped, 0);
}

/// A pool message reaches every subscriber of that pool and capability, counted per copy.
pub async fn pool_fan_out(bus: Arc<dyn Bus>) {
    let mut rxs = Vec::new();
    for i in 0..3 {
        let (inbox, rx) = Inbox::channel(i);
        bus.subscribe(Topic::pool("global", "summarize"), inbox).unwrap();
        rxs.push(rx);
    }
    let (other_cap, mut rx_other_cap) = Inbox::channel(10);
    bus.subscribe(Topic::pool("global", "translate"), other_cap).unwrap();
    let (other_pool, mut rx_other_pool) = Inbox::channel(11);
    bus.subscribe(Topic::pool("lab", "summarize"), other_pool).unwrap();

    let msg = cfp(agent(9), "global", "summarize");
    bus.publish(msg.clone()).unwrap();
    for (i, rx) in rxs.iter_mut().enumerate() {
        let got = recv_n(rx, 1).await;
        assert_eq!(got[0].token, i as u32);
        assert_eq!(got[0].msg.id, msg.id);
    }
    assert_silent(&mut rx_other_cap, "another capability").await;
    assert_silent(&mut rx_other_pool, "another pool").await;
    let c = bus.counters();
    assert_eq!(c.delivered_of(Kind::Cfp), 3, "a broadcast to 3 subscribers counts 3");
    assert_eq!(c.delivered_total(), 3);
}

/// After unsubscribing, an inbox gets nothing more; the other subscribers are unaffected.
pub async fn unsubscribe(bus: Arc<dyn Bus>) {
    let (a, s) = (agent(1), agent(2));
    let (inbox, mut rx) = Inbox::channel(1);
    let id = bus.subscribe(Topic::Agent(a), inbox).unwrap();
    let (keep, mut rx_keep) = Inbox::channel(2);
    bus.subscribe(Topic::global("echo"), keep.clone()).unwrap();
    let pool_sub = bus.subscribe(Topic::global("echo"), keep).unwrap();

    bus.publish(progress(s, a, 1)).unwrap();
    recv_n(&mut rx, 1).await;
    bus.unsubscribe(id).unwrap();
    bus.unsubscribe(id).unwrap(); // twice is harmless
    bus.publish(progress(s, a, 2)).unwrap();
    assert_silent(&mut rx, "unsubscribed agent inbox").await;

    bus.unsubscribe(pool_sub).unwrap();
    bus.publish(cfp(s, "global", "echo")).unwrap();
    recv_n(&mut rx_keep, 1).await;
    assert_silent(&mut rx_keep, "one of two pool subscriptions removed").await;
    let c = bus.counters();
    assert_eq!(c.delivered_of(Kind::Progress), 1);
    assert_eq!(c.delivered_of(Kind::Cfp), 1);
    let unrouted = u64::from(bus.counts_unrouted());
    assert_eq!(c.dropped, unrouted, "the message to the unsubscribed agent, if the bus can know");
}

/// Publishing to nobody succeeds and counts as dropped; so does a copy for a closed inbox.
pub async fn dropped(bus: Arc<dyn Bus>) {
    let s = agent(1);
    bus.publish(progress(s, agent(2), 1)).unwrap();
    bus.publish(cfp(s, "global", "nobody-offers-this")).unwrap();
    let (inbox, rx) = Inbox::channel(0);
    bus.subscribe(Topic::Agent(agent(3)), inbox).unwrap();
    drop(rx);
    bus.publish(progress(s, agent(3), 2)).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bus.counters().dropped == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(GRACE).await;
    }
    tokio::time::sleep(GRACE).await;
    let c = bus.counters();
    assert_eq!(c.delivered_total(), 0);
    // Two messages nobody subscribed to (counted only by a bus that can know), one copy for
    // a closed inbox (counted by every bus).
    let unrouted = if bus.counts_unrouted() { 2 } else { 0 };
    assert_eq!(c.dropped, unrouted + 1);
}

/// Messages from one sender to one receiver arrive in the order they were published.
pub async fn ordering(bus: Arc<dyn Bus>) {
    let (r, s) = (agent(1), agent(2));
    let (inbox, mut rx) = Inbox::channel(0);
    bus.subscribe(Topic::Agent(r), inbox).unwrap();
    const N: u32 = 1_000;
    for seq in 0..N {
        bus.publish(progress(s, r, seq)).unwrap();
    }
    let got = recv_n(&mut rx, N as usize).await;
    let seqs: Vec<u32> = got.iter().map(|d| d.msg.epoch).collect();
    assert_eq!(seqs, (0..N).collect::<Vec<_>>());
    assert_eq!(bus.counters().delivered_of(Kind::Progress), u64::from(N));
}

/// Publishers on several threads at once: every message arrives once, and each sender's
/// messages stay in order.
pub async fn concurrent_publishers(bus: Arc<dyn Bus>) {
    const SENDERS: u64 = 4;
    const N: u32 = 500;
    let r = agent(100);
    let (inbox, mut rx) = Inbox::channel(0);
    bus.subscribe(Topic::Agent(r), inbox).unwrap();
    let threads: Vec<_> = (0..SENDERS)
        .map(|i| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for seq in 0..N {
                    bus.publish(progress(agent(i), r, seq)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("publisher thread");
    }
    let got = recv_n(&mut rx, (SENDERS * u64::from(N)) as usize).await;
    for i in 0..SENDERS {
        let seqs: Vec<u32> = got.iter().filter(|d| d.msg.from == agent(i)).map(|d| d.msg.epoch).collect();
        assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "sender {i}");
    }
    assert_silent(&mut rx, "after all messages").await;
    let c = bus.counters();
    assert_eq!(c.delivered_total(), SENDERS * u64::from(N));
    assert_eq!(c.dropped, 0);
}

/// A prefix no other test run uses, for buses on a shared server.
pub fn unique_prefix(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t{what}{}x{}x{}", std::process::id(), now_ms() % 100_000_000, N.fetch_add(1, Relaxed))
}
