//! One place that turns a bus URL into everything a process needs to take part: the bus,
//! and with it the directory and the event relay on the same server.

use std::sync::Arc;
use std::time::Duration;

use xchange_bus::{Bus, InProcBus, NetBus, NetOptions};
use xchange_runtime::Runtime;
use xchange_store::Store;
use xchange_ws::{RemoteCard, SessionObserver};

use crate::{
    CardLease, DirectoryWatch, MeshError, NatsDirectory, RedisDirectory, RelayHandle, SharedRegistry,
};
use crate::{JetStreamRelay, RedisRelay, SharedKv};

enum Backend {
    InProcess,
    Nats { client: async_nats::Client, directory: NatsDirectory },
    Redis { conn: redis::aio::ConnectionManager, directory: RedisDirectory },
}

/// The bus a process joins and, for a network bus, the directory and relay beside it.
pub struct Mesh {
    bus: Arc<dyn Bus>,
    net: Option<Arc<NetBus>>,
    backend: Backend,
    prefix: String,
}

impl Mesh {
    /// The in-process bus: no directory (agents register with the runtime directly), no
    /// relay (events are read over HTTP).
    pub fn in_process() -> Self {
        Self {
            bus: Arc::new(InProcBus::new()),
            net: None,
            backend: Backend::InProcess,
            prefix: xchange_bus::DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Joins the bus at `url`: `nats://host:port` or `redis://host:port[/db]`. Cards in the
    /// directory live `card_ttl` unless renewed.
    pub async fn connect(url: &str, options: NetOptions, card_ttl: Duration) -> Result<Self, MeshError> {
        let prefix = options.prefix.clone();
        if url.starts_with("nats://") {
            let (bus, client) = NetBus::nats(url, options).await?;
            let directory = NatsDirectory::open(client.clone(), &prefix, card_ttl).await?;
            let net = Arc::new(bus);
            Ok(Self {
                bus: net.clone(),
                net: Some(net),
                backend: Backend::Nats { client, directory },
                prefix,
            })
        } else if url.starts_with("redis://") {
            let net = Arc::new(NetBus::redis(url, options).await?);
            let conn = redis::Client::open(url)?.get_connection_manager().await?;
            let directory = RedisDirectory::new(conn.clone(), &prefix, card_ttl)?;
            Ok(Self { bus: net.clone(), net: Some(net), backend: Backend::Redis { conn, directory }, prefix })
        } else {
            Err(MeshError::InvalidUrl(url.chars().take(200).collect()))
        }
    }

    /// The bus, for a runtime.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// The subject and key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns once this process's subscriptions reached the server: announce an agent
    /// after it, so that the first call for proposals finds it listening.
    pub async fn flush(&self) -> Result<(), MeshError> {
        match &self.net {
            Some(net) => Ok(net.flush().await?),
            None => Ok(()),
        }
    }

    /// Puts `card` in the directory and keeps it fresh (`None` in process).
    pub fn announce(&self, card: RemoteCard) -> Option<CardLease> {
        match &self.backend {
            Backend::InProcess => None,
            Backend::Nats { directory, .. } => Some(directory.announce(card)),
            Backend::Redis { directory, .. } => Some(directory.announce(card)),
        }
    }

    /// Attaches the directory's live cards to `runtime` as they come and go, telling
    /// `observer` too.
    pub fn watch(
        &self,
        runtime: Runtime,
        observer: Option<Arc<dyn SessionObserver>>,
    ) -> Option<DirectoryWatch> {
        match &self.backend {
            Backend::InProcess => None,
            Backend::Nats { directory, .. } => Some(directory.watch(runtime, observer)),
            Backend::Redis { directory, .. } => Some(directory.watch(runtime, observer)),
        }
    }

    /// Relays `store`'s outbox to the bus's server.
    pub fn relay<S: Store>(&self, store: S) -> Result<Option<RelayHandle>, MeshError> {
        match &self.backend {
            Backend::InProcess => Ok(None),
            Backend::Nats { client, .. } => {
                Ok(Some(JetStreamRelay::start(client.clone(), &self.prefix, store)?))
            }
            Backend::Redis { conn, .. } => Ok(Some(RedisRelay::start(conn.clone(), &self.prefix, store)?)),
        }
    }

    /// The registry shared with the other nodes on this bus (NATS only).
    pub async fn shared_registry(&self) -> Result<Option<SharedRegistry>, MeshError> {
        match &self.backend {
            Backend::Nats { client, .. } => {
                Ok(Some(SharedRegistry::open(client.clone(), &self.prefix).await?))
            }
            Backend::InProcess | Backend::Redis { .. } => Ok(None),
        }
    }

    /// The bucket `{prefix}_{name}` shared with the other nodes on this bus (NATS only).
    pub async fn shared_kv(&self, name: &str) -> Result<Option<SharedKv>, MeshError> {
        match &self.backend {
            Backend::Nats { client, .. } => {
                Ok(Some(SharedKv::open(client.clone(), &self.prefix, name).await?))
            }
            Backend::InProcess | Backend::Redis { .. } => Ok(None),
        }
    }

    /// The live cards offering `capability` (empty in process).
    pub async fn lookup(&self, capability: &str) -> Result<Vec<RemoteCard>, MeshError> {
        match &self.backend {
            Backend::InProcess => Ok(Vec::new()),
            Backend::Nats { directory, .. } => directory.lookup(capability).await,
            Backend::Redis { directory, .. } => directory.lookup(capability).await,
        }
    }
}
