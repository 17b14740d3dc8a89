//! The directory on both backends, attached to a real runtime: arrivals, goodbyes,
//! expiries, invalid cards, agents hosted by the watching runtime, lookups.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use redis::aio::ConnectionManager;
use xchange_bus::InProcBus;
use xchange_core::{ContractorProfile, EngineConfig};
use xchange_mesh::{CardLease, DirectoryStats, DirectoryWatch, NatsDirectory, RedisDirectory};
use xchange_protocol::{AgentId, Code};
use xchange_runtime::{AgentSpec, NoWork, Runtime, RuntimeBuilder, RuntimeError};
use xchange_ws::RemoteCard;

use crate::common::{delete_redis_keys, nats, prefix, redis, until};

#[derive(Clone, Copy)]
enum Backend {
    Nats,
    Redis,
}

/// One directory under a fresh prefix, with what the test needs to write around it.
enum Dir {
    Nats { dir: NatsDirectory, kv: Box<kv::Store>, client: async_nats::Client, bucket: String },
    Redis { dir: RedisDirectory, conn: ConnectionManager, prefix: String },
}

impl Dir {
    async fn open(backend: Backend, ttl: Duration) -> Option<Self> {
        let prefix = prefix();
        Some(match backend {
            Backend::Nats => {
                let client = nats().await?;
                let dir = NatsDirectory::open(client.clone(), &prefix, ttl).await.expect("open the bucket");
                let bucket = format!("{prefix}_agents");
                let kv = jetstream::new(client.clone()).get_key_value(bucket.as_str()).await;
                Self::Nats { dir, kv: Box::new(kv.expect("the bucket exists")), client, bucket }
            }
            Backend::Redis => {
                let conn = redis().await?;
                let dir = RedisDirectory::new(conn.clone(), &prefix, ttl).expect("a directory");
                Self::Redis { dir, conn, prefix }
            }
        })
    }

    fn announce(&self, card: &RemoteCard) -> CardLease {
        match self {
            Self::Nats { dir, .. } => dir.announce(card.clone()),
            Self::Redis { dir, .. } => dir.announce(card.clone()),
        }
    }

    fn watch(&self, runtime: &Runtime) -> DirectoryWatch {
        match self {
            Self::Nats { dir, .. } => dir.watch(runtime.clone(), None),
            Self::Redis { dir, .. } => dir.watch(runtime.clone(), None),
        }
    }

    async fn lookup(&self, capability: &str) -> Vec<AgentId> {
        let cards = match self {
            Self::Nats { dir, .. } => dir.lookup(capability).await,
            Self::Redis { dir, .. } => dir.lookup(capability).await,
        };
        cards.expect("lookup").into_iter().map(|card| card.id).collect()
    }

    /// Writes a value under agent id `id` as an agent would not.
    async fn put_raw(&self, id: AgentId, value: Vec<u8>) {
        match self {
            Self::Nats { kv, .. } => {
                kv.put(id.to_string(), value.into()).await.expect("put");
            }
            Self::Redis { conn, prefix, .. } => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("{prefix}:agent:{id}")).arg(value).arg("EX").arg(60);
                let () = cmd.query_async(&mut conn.clone()).await.expect("set");
            }
        }
    }

    async fn remove_all(self) {
        match self {
            Self::Nats { client, bucket, .. } => {
                jetstream::new(client).delete_key_value(bucket).await.expect("delete the bucket");
            }
            Self::Redis { mut conn, prefix, .. } => delete_redis_keys(&mut conn, &prefix).await,
        }
    }
}

fn runtime() -> Runtime {
    RuntimeBuilder::new(Arc::new(InProcBus::new()), Arc::new(EngineConfig::default())).start()
}

fn agent(n: u64) -> AgentId {
    AgentId::from_index(7, n)
}

fn card(n: u64, capability: &str) -> RemoteCard {
    RemoteCard::new(agent(n), &ContractorProfile::new([capability]))
}

/// Whether `runtime` already has agent `id` in its directory (then it refuses the id).
fn present(runtime: &Runtime, id: AgentId) -> bool {
    match runtime.attach_remote(id, ContractorProfile::new(["probe"])) {
        Ok(attachment) => {
            attachment.detach(Code::AgentDisconnected);
            false
        }
        Err(RuntimeError::AgentPresent(_)) => true,
        Err(err) => panic!("attach failed: {err}"),
    }
}

fn count(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Relaxed)
}

fn counts(stats: &DirectoryStats) -> [u64; 3] {
    [count(&stats.arrivals), count(&stats.departures), count(&stats.expiries)]
}

async fn arrivals_goodbyes_and_lookups(backend: Backend) {
    let Some(dir) = Dir::open(backend, Duration::from_secs(3)).await else { return };
    let rt = runtime();

    // A card put before the watch starts is attached too.
    let early = dir.announce(&card(1, "echo"));
    for _ in 0..500 {
        if !dir.lookup("echo").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let watch = dir.watch(&rt);
    let stats = watch.stats();
    until("the early card is attached", || count(&stats.arrivals) == 1).await;
    assert!(present(&rt, agent(1)));

    // An agent hosted by the watching runtime is skipped without a word.
    let hosted =
        rt.spawn_agent(AgentSpec::contractor(agent(2), ContractorProfile::new(["echo"]), Arc::new(NoWork)));
    let hosted = hosted.expect("spawn a hosted agent");
    let hosted_card = dir.announce(&card(2, "echo"));
    let late = dir.announce(&card(3, "upper"));
    until("the late card is attached", || count(&stats.arrivals) == 2).await;
    assert!(present(&rt, agent(3)));

    let mut no_capability = card(5, "echo");
    no_capability.capabilities.clear();
    dir.put_raw(agent(4), b"not a card".to_vec()).await;
    dir.put_raw(agent(5), serde_json::to_vec(&no_capability).unwrap()).await;
    dir.put_raw(agent(6), serde_json::to_vec(&card(8, "echo")).unwrap()).await;
    until("three invalid cards are counted", || count(&stats.cards_invalid) >= 3).await;
    assert!(!present(&rt, agent(4)) && !present(&rt, agent(8)));

    assert_eq!(dir.lookup("echo").await, sorted([agent(1), agent(2)]));
    assert_eq!(dir.lookup("upper").await, [agent(3)]);
    assert!(dir.lookup("nobody").await.is_empty());

    late.withdraw().await.expect("withdraw");
    until("the withdrawn card is detached", || count(&stats.departures) == 1).await;
    assert!(!present(&rt, agent(3)), "the agent left the runtime's directory");
    assert!(dir.lookup("upper").await.is_empty());
    assert_eq!(counts(stats), [2, 1, 0]);
    assert!(count(&stats.cards_seen) >= 3);

    hosted_card.withdraw().await.expect("withdraw");
    early.withdraw().await.expect("withdraw");
    until("the early card is detached", || count(&stats.departures) == 2).await;
    assert_eq!(counts(stats), [2, 2, 0], "the hosted agent was never attached, so never detached");
    drop(hosted);
    drop(watch);
    rt.shutdown().await;
    dir.remove_all().await;
}

fn sorted<const N: usize>(mut ids: [AgentId; N]) -> Vec<AgentId> {
    ids.sort_by_key(AgentId::to_string);
    ids.to_vec()
}

async fn unrenewed_cards_expire(backend: Backend) {
    let Some(dir) = Dir::open(backend, Duration::from_secs(1)).await else { return };
    let rt = runtime();
    let watch = dir.watch(&rt);
    let stats = watch.stats();
    let lease = dir.announce(&card(1, "echo"));
    until("the card is attached", || count(&stats.arrivals) == 1).await;
    assert_eq!(lease.id(), agent(1));
    // Renewals keep it: several times the time-to-live later it is still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(counts(stats), [1, 0, 0]);
    assert!(present(&rt, agent(1)));

    drop(lease);
    until("the card expires", || count(&stats.expiries) == 1).await;
    assert_eq!(counts(stats), [1, 0, 1]);
    assert!(!present(&rt, agent(1)));
    drop(watch);
    rt.shutdown().await;
    dir.remove_all().await;
}

#[tokio::test]
async fn nats_cards_arrive_leave_and_are_looked_up() {
    arrivals_goodbyes_and_lookups(Backend::Nats).await;
}

#[tokio::test]
async fn redis_cards_arrive_leave_and_are_looked_up() {
    arrivals_goodbyes_and_lookups(Backend::Redis).await;
}

#[tokio::test]
async fn nats_cards_not_renewed_expire_as_5009() {
    unrenewed_cards_expire(Backend::Nats).await;
}

#[tokio::test]
async fn redis_cards_not_renewed_expire_as_5009() {
    unrenewed_cards_expire(Backend::Redis).await;
}

#[tokio::test]
async fn invalid_prefixes_and_ttls_are_refused() {
    let Some(client) = nats().await else { return };
    let bad = NatsDirectory::open(client.clone(), "a.b", Duration::from_secs(5)).await;
    assert!(matches!(bad, Err(xchange_mesh::MeshError::InvalidPrefix(_))), "{bad:?}");
    let bad = NatsDirectory::open(client, "ok", Duration::from_millis(10)).await;
    assert!(matches!(bad, Err(xchange_mesh::MeshError::InvalidTtl(_))), "{bad:?}");
}
