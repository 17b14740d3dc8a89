//! The node's settings: defaults, then a TOML file, then `XCHANGE_*` variables, then flags
//! (the CLI applies the last two). Unknown keys in the file are refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The port `xchange serve` listens on by default ("XC" on a phone keypad, 92).
pub const DEFAULT_PORT: u16 = 7192;

/// Everything `xchange serve` can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The file format's version; only 1 exists.
    pub version: u32,
    /// Where to listen (default 127.0.0.1:7192).
    pub listen: SocketAddr,
    /// The data folder: the SQLite file and the node's key live there.
    pub data: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; default: `sqlite://DATA/xchange.db`.
    pub store: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// A routing rules file (TOML).
    pub rules: Option<PathBuf>,
    /// Tokens that agents must present in their WebSocket hello; empty: any agent may
    /// connect (its key still signs what it sends).
    pub tokens: Vec<String>,
    /// Whether the HTTP API wants an API key on every `/v1/` call (see `auth.rs`). Off
    /// only for a node on a machine of its own, in development.
    pub auth: bool,
    /// An admin API key (`xck_<id>_<secret>`) to install at start instead of creating one
    /// in the data folder: for deployments that hand the key in (a secret).
    pub admin_key: Option<String>,
    /// Requests per second an API key may make on average (429 `busy` beyond).
    pub rate_limit_per_key: u32,
    /// Requests an API key may make at once before the average applies.
    pub rate_limit_burst: u32,
    /// Jobs this node manages at once; a submission beyond is refused (429 `busy`).
    pub max_running_jobs: usize,
    /// Messages per second one agent may send to this node on average, over the WebSocket
    /// and the bus alike (5005 `busy` beyond, with the time to wait).
    pub agent_rate_per_second: u32,
    /// Messages one agent may send at once before the average applies.
    pub agent_rate_burst: u32,
    /// Agents connected over the WebSocket at once; more are refused (5008).
    pub max_agent_connections: usize,
    /// Pools (subscriptions) one WebSocket agent may serve; a card with more is refused
    /// (5008). At most 64, the card's own bound.
    pub max_agent_pools: usize,
    /// How deep objects and arrays may nest in a filter (queries, event streams, job
    /// searches); deeper is refused (422).
    pub filter_max_depth: usize,
    /// How many conditions a filter may hold; more is refused (422).
    pub filter_max_conditions: usize,
    /// How long a job waits for an eligible contractor before failing with
    /// `no_eligible_contractor`, in milliseconds.
    pub no_contractor_timeout_ms: u64,
    /// Executions that may fail before a job fails, when the job does not say.
    pub default_retry_limit: u32,
    /// How long bids are collected, in milliseconds.
    pub bid_window_ms: u64,
    /// A contract lapses without a heartbeat for this long, in milliseconds.
    pub lease_ms: u64,
    /// The bus between processes: `nats://host:port` or `redis://host:port`; none: the
    /// in-process bus (agents join over the WebSocket only).
    pub bus: Option<String>,
    /// First token of every subject, channel, bucket and stream name on the bus.
    pub bus_prefix: String,
    /// Authenticate to NATS as the nkey user of the node's key (DATA/node.key), for a
    /// server whose users `xchange bus-access` wrote.
    pub bus_nkey: bool,
    /// How long an agent's card stays in the bus's directory unless renewed, in
    /// milliseconds.
    pub card_ttl_ms: u64,
    /// The URL other nodes and clients reach this node at, published with its task
    /// databases in the shared registry; default `http://` + the address it listens on.
    pub advertise_url: Option<String>,
    /// How many partitions the jobs are split into; nodes on one store share them out
    /// (the store keeps the largest count any node asked for).
    pub partitions: u32,
    /// How long a node holds a partition without renewing it, in milliseconds: after a
    /// node dies, its jobs wait this long before another node carries them on.
    pub partition_lease_ms: u64,
}

impl NodeConfig {
    /// The bounds every filter a caller sends is parsed under.
    pub fn filter_limits(&self) -> xchange_filter::Limits {
        xchange_filter::Limits {
            max_depth: self.filter_max_depth,
            max_nodes: self.filter_max_conditions,
            ..xchange_filter::Limits::default()
        }
    }

    /// The message rate each agent is held to.
    pub fn agent_rate(&self) -> xchange_bus::RateLimit {
        xchange_bus::RateLimit { per_second: self.agent_rate_per_second, burst: self.agent_rate_burst }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            version: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            data: PathBuf::from("xchange-data"),
            store: None,
            max_body_bytes: 1 << 20,
            rules: None,
            tokens: Vec::new(),
            auth: true,
            admin_key: None,
            rate_limit_per_key: 1_000,
            rate_limit_burst: 2_000,
            max_running_jobs: 100_000,
            agent_rate_per_second: 5_000,
            agent_rate_burst: 10_000,
            max_agent_connections: 10_000,
            max_agent_pools: 64,
            filter_max_depth: xchange_filter::Limits::default().max_depth,
            filter_max_conditions: xchange_filter::Limits::default().max_nodes,
            no_contractor_timeout_ms: 10 * 60 * 1000,
            default_retry_limit: 3,
            bid_window_ms: 100,
            lease_ms: 5_000,
            bus: None,
            bus_prefix: "aixp".to_owned(),
            bus_nkey: false,
            card_ttl_ms: 30_000,
            advertise_url: None,
            partitions: 16,
            partition_lease_ms: 10_000,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses values the node cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != 1 {
            return Err(ConfigError::Invalid(format!("version {} is not supported (only 1)", self.version)));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid("max_body_bytes must be at least 1024".into()));
        }
        if self.bid_window_ms == 0 || self.lease_ms < 100 {
            return Err(ConfigError::Invalid("bid_window_ms must be > 0 and lease_ms >= 100".into()));
        }
        if let Some(bus) = &self.bus
            && !(bus.starts_with("nats://") || bus.starts_with("redis://"))
        {
            return Err(ConfigError::Invalid(format!("bus {bus:?} must be a nats:// or redis:// URL")));
        }
        if !xchange_protocol::is_valid_name(&self.bus_prefix) {
            return Err(ConfigError::Invalid("bus_prefix must be 1-64 of [A-Za-z0-9_-]".into()));
        }
        if self.admin_key.as_deref().is_some_and(|k| crate::auth::split_key(k).is_none()) {
            return Err(ConfigError::Invalid("admin_key must be an API key: xck_<id>_<secret>".into()));
        }
        let counts = [
            self.rate_limit_per_key as usize,
            self.rate_limit_burst as usize,
            self.max_running_jobs,
            self.agent_rate_per_second as usize,
            self.agent_rate_burst as usize,
            self.max_agent_connections,
            self.filter_max_depth,
            self.filter_max_conditions,
        ];
        if counts.contains(&0) {
            return Err(ConfigError::Invalid(
                "rate_limit_per_key, rate_limit_burst, max_running_jobs, agent_rate_per_second, \
                 agent_rate_burst, max_agent_connections, filter_max_depth and filter_max_conditions \
                 must be at least 1"
                    .into(),
            ));
        }
        if self.max_agent_pools > 64 {
            return Err(ConfigError::Invalid("max_agent_pools must be at most 64 (a card's bound)".into()));
        }
        if !(1..=4096).contains(&self.partitions) {
            return Err(ConfigError::Invalid("partitions must be in 1..=4096".into()));
        }
        if self.partition_lease_ms < 300 {
            return Err(ConfigError::Invalid("partition_lease_ms must be at least 300".into()));
        }
        if self.card_ttl_ms < 1_000 {
            return Err(ConfigError::Invalid("card_ttl_ms must be at least 1000".into()));
        }
        Ok(())
    }

    /// The store URL: the configured one, or the SQLite file in the data folder.
    pub fn store_url(&self) -> String {
        self.store.clone().unwrap_or_else(|| format!("sqlite://{}", self.data.join("xchange.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, String> {
        let dir = std::env::temp_dir().join(format!("xchange-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("c{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        NodeConfig::from_file(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn file_overrides_defaults_and_refuses_unknown_keys() {
        let c = parse("listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n").unwrap();
        assert_eq!((c.listen.port(), c.max_body_bytes, c.version), (9000, 4096, 1));
        let err = parse("listne = \"127.0.0.1:9000\"\n").unwrap_err();
        assert!(err.contains("unknown field") && err.contains("listne"), "{err}");
        assert!(parse("version = 2\n").unwrap_err().contains("version 2"));
        assert!(parse("max_body_bytes = 10\n").unwrap_err().contains("max_body_bytes"));
        assert!(parse("bus = \"amqp://x\"\n").unwrap_err().contains("nats://"));
        assert!(parse("bus_prefix = \"a.b\"\n").unwrap_err().contains("bus_prefix"));
        assert!(parse("card_ttl_ms = 10\n").unwrap_err().contains("card_ttl_ms"));
        assert!(parse("partitions = 0\n").unwrap_err().contains("partitions"));
        assert!(parse("rate_limit_burst = 0\n").unwrap_err().contains("rate_limit_burst"));
        assert!(parse("agent_rate_burst = 0\n").unwrap_err().contains("agent_rate_burst"));
        assert!(parse("max_agent_connections = 0\n").unwrap_err().contains("max_agent_connections"));
        assert!(parse("max_agent_pools = 65\n").unwrap_err().contains("max_agent_pools"));
        assert!(parse("admin_key = \"secret\"\n").unwrap_err().contains("admin_key"));
        assert!(parse("partition_lease_ms = 10\n").unwrap_err().contains("partition_lease_ms"));
        let c = parse("bus = \"nats://127.0.0.1:4222\"\nbus_prefix = \"lab\"\n").unwrap();
        assert_eq!((c.bus.as_deref(), c.bus_prefix.as_str()), (Some("nats://127.0.0.1:4222"), "lab"));
    }

    #[test]
    fn default_store_is_sqlite_in_the_data_folder() {
        let c = NodeConfig { data: PathBuf::from("/tmp/x"), ..NodeConfig::default() };
        assert_eq!(c.store_url(), "sqlite:///tmp/x/xchange.db");
    }
}
