//! The crate's one error type.

use std::time::Duration;

/// What can go wrong talking to NATS, Redis or the store.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A prefix must be one NATS subject token and a valid bucket name.
    #[error("invalid prefix {0:?}: expected 1-64 of [A-Za-z0-9_-]")]
    InvalidPrefix(String),
    /// Redis expires keys in whole seconds, so a shorter time-to-live cannot be kept.
    #[error("invalid card ttl {0:?}: expected at least one second")]
    InvalidTtl(Duration),
    /// NATS or JetStream refused or failed a request.
    #[cfg(feature = "nats")]
    #[error("nats: {0}")]
    Nats(#[source] async_nats::Error),
    /// Redis refused or failed a command.
    #[cfg(feature = "redis")]
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A bus URL names no transport this build knows.
    #[error("invalid bus url {0:?}: expected nats://host:port or redis://host:port")]
    InvalidUrl(String),
    /// The bus could not be joined.
    #[error("bus: {0}")]
    Bus(#[from] xchange_bus::BusError),
    /// The store failed to read the outbox.
    #[error("store: {0}")]
    Store(#[from] xchange_store::StoreError),
}

impl MeshError {
    /// async-nats has one error type per request kind; they all end up here.
    #[cfg(feature = "nats")]
    pub(crate) fn nats(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Nats(Box::new(err))
    }
}
