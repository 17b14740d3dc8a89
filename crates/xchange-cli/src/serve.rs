//! `xchange serve`: the exchange service on the embedded default (SQLite in a data
//! folder, in-process bus) or on PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use xchange_node::{Node, NodeConfig};

/// Flags of `xchange serve`. Each also reads an `XCHANGE_*` variable; both override the
/// config file, which overrides the defaults.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML config file (unknown keys are refused).
    #[arg(long, env = "XCHANGE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7192].
    #[arg(long, env = "XCHANGE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data folder (the SQLite file lives there) [default: ./xchange-data].
    #[arg(long, env = "XCHANGE_DATA")]
    data: Option<PathBuf>,
    /// Store URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://DATA/xchange.db].
    #[arg(long, env = "XCHANGE_STORE")]
    store: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "XCHANGE_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Routing rules (TOML; see docs/routing.md).
    #[arg(long, env = "XCHANGE_RULES")]
    rules: Option<PathBuf>,
    /// Tokens agents must present in their WebSocket hello (comma-separated); none: any
    /// agent may connect.
    #[arg(long = "token", env = "XCHANGE_TOKENS", value_delimiter = ',')]
    tokens: Vec<String>,
    /// Whether every /v1/ call needs an API key [default: true]; false only for
    /// development on a machine of your own.
    #[arg(long, env = "XCHANGE_AUTH")]
    auth: Option<bool>,
    /// An admin API key to install (xck_<id>_<secret>), instead of creating one in the
    /// data folder at first start.
    #[arg(long, env = "XCHANGE_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// The bus between processes: nats://HOST:PORT or redis://HOST:PORT [default: in process].
    #[arg(long, env = "XCHANGE_BUS")]
    bus: Option<String>,
    /// Prefix of every subject, channel, bucket and stream on the bus [default: aixp].
    #[arg(long, env = "XCHANGE_BUS_PREFIX")]
    bus_prefix: Option<String>,
    /// Authenticate to NATS as the nkey user of the node's key (DATA/node.key), for a
    /// server configured by `xchange bus-access`.
    #[arg(long, env = "XCHANGE_BUS_NKEY")]
    bus_nkey: bool,
    /// The URL other nodes and clients reach this node at [default: http:// + the address
    /// it listens on].
    #[arg(long, env = "XCHANGE_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// How many partitions the jobs are split into across the nodes of one store [default: 16].
    #[arg(long, env = "XCHANGE_PARTITIONS")]
    partitions: Option<u32>,
    /// How long a partition's lease lasts unless renewed, in ms: a dead node's jobs wait
    /// this long for another node [default: 10000].
    #[arg(long, env = "XCHANGE_PARTITION_LEASE_MS")]
    partition_lease_ms: Option<u64>,
    /// Requests per second an API key may make on average [default: 1000].
    #[arg(long, env = "XCHANGE_RATE_LIMIT_PER_KEY")]
    rate_limit_per_key: Option<u32>,
    /// Requests an API key may make at once [default: 2000].
    #[arg(long, env = "XCHANGE_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<u32>,
    /// Jobs the node manages at once before refusing submissions [default: 100000].
    #[arg(long, env = "XCHANGE_MAX_RUNNING_JOBS")]
    max_running_jobs: Option<usize>,
    /// Messages per second one agent may send on average, WebSocket and bus [default: 5000].
    #[arg(long, env = "XCHANGE_AGENT_RATE_PER_SECOND")]
    agent_rate_per_second: Option<u32>,
    /// Messages one agent may send at once [default: 10000].
    #[arg(long, env = "XCHANGE_AGENT_RATE_BURST")]
    agent_rate_burst: Option<u32>,
    /// Agents connected over the WebSocket at once [default: 10000].
    #[arg(long, env = "XCHANGE_MAX_AGENT_CONNECTIONS")]
    max_agent_connections: Option<usize>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_file(path)?,
            None => NodeConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(data) = &self.data {
            config.data = data.clone();
        }
        if let Some(store) = &self.store {
            config.store = Some(store.clone());
        }
        if let Some(n) = self.max_body_bytes {
            config.max_body_bytes = n;
        }
        if let Some(rules) = &self.rules {
            config.rules = Some(rules.clone());
        }
        if !self.tokens.is_empty() {
            config.tokens = self.tokens.clone();
        }
        if let Some(bus) = &self.bus {
            config.bus = Some(bus.clone());
        }
        if let Some(prefix) = &self.bus_prefix {
            config.bus_prefix = prefix.clone();
        }
        if self.bus_nkey {
            config.bus_nkey = true;
        }
        if let Some(auth) = self.auth {
            config.auth = auth;
        }
        if let Some(key) = &self.admin_key {
            config.admin_key = Some(key.clone());
        }
        if let Some(url) = &self.advertise_url {
            config.advertise_url = Some(url.clone());
        }
        if let Some(n) = self.partitions {
            config.partitions = n;
        }
        if let Some(ms) = self.partition_lease_ms {
            config.partition_lease_ms = ms;
        }
        if let Some(n) = self.rate_limit_per_key {
            config.rate_limit_per_key = n;
        }
        if let Some(n) = self.rate_limit_burst {
            config.rate_limit_burst = n;
        }
        if let Some(n) = self.max_running_jobs {
            config.max_running_jobs = n;
        }
        if let Some(n) = self.agent_rate_per_second {
            config.agent_rate_per_second = n;
        }
        if let Some(n) = self.agent_rate_burst {
            config.agent_rate_burst = n;
        }
        if let Some(n) = self.max_agent_connections {
            config.max_agent_connections = n;
        }
        config.validate()?;
        Ok(config)
    }
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::process::init_logs("info");
    let config = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("creating the data folder {}", config.data.display()))?;
    let url = config.store_url();
    let store = xchange_store::open(&url).await.with_context(|| format!("opening the store {url}"))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let mut config = config;
    if config.advertise_url.is_none() {
        config.advertise_url = Some(format!("http://{addr}"));
    }
    let node =
        Node::start(config, store.clone()).await.map_err(|e| anyhow::anyhow!("starting the node: {e}"))?;
    let bus = match &node.config().bus {
        Some(bus) => format!("bus {bus} prefix {}", node.config().bus_prefix),
        None => "in-process bus".to_owned(),
    };
    println!(
        "xchange serve: listening on http://{addr} (store {}, {bus}, API docs at http://{addr}/docs)",
        xchange_store::redact_url(&url)
    );
    if let Some(path) = node.created_admin_key_file() {
        println!(
            "xchange serve: created an admin API key in {} (send it as Authorization: Bearer ...; \
             `xchange keys create` makes keys for organisations)",
            path.display()
        );
    } else if !node.config().auth {
        println!("xchange serve: authentication is OFF: anyone who reaches this port may use the API");
    }
    xchange_node::run(listener, node.clone(), async {
        if let Err(e) = crate::process::terminated().await {
            eprintln!("xchange serve: cannot wait for signals ({e}); stopping");
        }
    })
    .await
    .context("serving")?;
    println!("xchange serve: shutting down");
    node.shutdown().await;
    xchange_store::Store::close(&store).await;
    Ok(())
}
