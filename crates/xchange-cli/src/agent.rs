//! `xchange agent`: any program becomes a contractor (`agent run`), and any shell becomes
//! a manager (`agent ask`).
//!
//! `agent run` hands each task's input to the program as JSON on stdin; its stdout (JSON)
//! is the result, a non-zero exit is a failure report. It joins either a node's WebSocket
//! (`--server`, reconnecting when the connection drops) or a bus directly (`--bus
//! nats://…`), where it announces its card in the bus's directory and contracts with any
//! manager, node or agent, with no node in the path. `agent ask` is such a manager: it
//! finds contractors only through the directory, announces tasks and prints the results.
//! Both say goodbye on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use xchange_bus::NetOptions;
use xchange_core::{ContractorProfile, EngineConfig};
use xchange_mesh::Mesh;
use xchange_node::keyfile::{fresh_key, load_or_create_key};
use xchange_protocol::{AgentKey, TaskSpec};
use xchange_runtime::{AgentSpec, ExecContractor, RuntimeBuilder};
use xchange_ws::{Backoff, ConnectOptions, RemoteCard};

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Do tasks with a program: input as JSON on stdin, result as JSON on stdout, a
    /// non-zero exit reports a failure. Joins a node (--server) or a bus (--bus).
    Run(RunArgs),
    /// Manage: find contractors for a capability in the bus's directory, announce tasks to
    /// them and print each result as a JSON line.
    Ask(AskArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BusArgs {
    /// Prefix of the bus's subjects, channels and buckets.
    #[arg(long, env = "XCHANGE_BUS_PREFIX", default_value = xchange_bus::DEFAULT_PREFIX)]
    bus_prefix: String,
    /// Seconds a card stays in the directory unless renewed.
    #[arg(long, default_value_t = 30)]
    card_ttl_secs: u64,
    /// The agent's key: a 32-byte Ed25519 seed in 64 hex digits, created if missing.
    /// Without it a new identity is made for this run.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Authenticate to NATS with the agent's key as its nkey user, for a server configured
    /// by `xchange bus-access` (needs --key-file: the server knows that key).
    #[arg(long, requires = "key_file")]
    nkey: bool,
}

impl BusArgs {
    async fn join(&self, url: &str, key: &AgentKey) -> anyhow::Result<Mesh> {
        if self.card_ttl_secs == 0 {
            bail!("--card-ttl-secs must be at least 1");
        }
        let mut options = NetOptions::new(self.bus_prefix.clone());
        if self.nkey {
            options.nkey_seed = Some(xchange_mesh::nkey_seed(&key.seed()));
        }
        Mesh::connect(url, options, Duration::from_secs(self.card_ttl_secs))
            .await
            .with_context(|| format!("joining the bus {url}"))
    }

    fn key(&self) -> anyhow::Result<AgentKey> {
        let Some(path) = &self.key_file else {
            let key = fresh_key()?;
            eprintln!("agent {}: a new key for this run (--key-file keeps an identity)", key.id());
            return Ok(key);
        };
        let (key, created) = load_or_create_key(path)?;
        let how = if created { "new key written to" } else { "key from" };
        eprintln!("agent {}: {how} {}", key.id(), path.display());
        Ok(key)
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("join").required(true).args(["server", "bus"])))]
pub(crate) struct RunArgs {
    /// A node's URL, http://host:port: join it over its WebSocket.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// A bus, nats://host:port or redis://host:port: contract directly with any manager.
    #[arg(long, value_name = "URL")]
    bus: Option<String>,
    #[command(flatten)]
    bus_args: BusArgs,
    /// A capability offered (repeat for several).
    #[arg(long = "capability", value_name = "NAME", required = true)]
    capabilities: Vec<String>,
    /// A pool served (repeat for several; none means every pool).
    #[arg(long = "pool", value_name = "NAME")]
    pools: Vec<String>,
    /// The command run for each task, with `sh -c`. Its environment names the contract:
    /// XCHANGE_TASK_ID, XCHANGE_EPOCH, XCHANGE_AGENT_ID, XCHANGE_MANAGER_ID.
    #[arg(long, value_name = "CMD")]
    exec: String,
    /// A bearer token for nodes that require one (--server only).
    #[arg(long, env = "XCHANGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Price per unit of task size asked in bids.
    #[arg(long, default_value_t = 10)]
    price: u64,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1)]
    capacity: u32,
    /// Seconds one execution may take before it is killed and reported failed.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Debug, Args)]
pub(crate) struct AskArgs {
    /// The bus, nats://host:port or redis://host:port.
    #[arg(long, value_name = "URL")]
    bus: String,
    #[command(flatten)]
    bus_args: BusArgs,
    /// The capability the tasks need.
    #[arg(long, value_name = "NAME")]
    capability: String,
    /// Each task's input, JSON.
    #[arg(long, default_value = "{}")]
    input: String,
    /// How many tasks to announce.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Seconds to wait for a contractor to appear in the directory.
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
}

pub(crate) fn run(command: AgentCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    crate::process::init_logs("warn");
    match command {
        AgentCommand::Run(args) => rt.block_on(run_agent(args)),
        AgentCommand::Ask(args) => rt.block_on(ask(args)),
    }
}

async fn run_agent(args: RunArgs) -> anyhow::Result<()> {
    if args.capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    let profile = ContractorProfile {
        pools: args.pools.iter().map(|p| Arc::from(p.as_str())).collect::<Vec<_>>().into(),
        capacity: args.capacity,
        price_per_unit: args.price,
        ..ContractorProfile::new(args.capabilities.iter().map(String::as_str))
    };
    let behavior =
        Arc::new(ExecContractor::new(args.exec.as_str()).timeout(Duration::from_secs(args.timeout_secs)));
    let offer = format!("offering {} with `{}`", args.capabilities.join(", "), args.exec);
    match (&args.server, &args.bus) {
        (Some(server), _) => {
            let options = ConnectOptions {
                token: args.token.clone(),
                reconnect: Some(Backoff::default()),
                ..ConnectOptions::new(args.bus_args.key()?, profile, behavior)
            };
            let mut agent = xchange_ws::connect(server, options)
                .await
                .with_context(|| format!("connecting to {server}"))?;
            eprintln!("agent {} connected to {server}, {offer}", agent.id());
            tokio::select! {
                ended = agent.wait() => return ended.context("the session ended"),
                signal = crate::process::terminated() => signal?,
            }
            eprintln!("shutting down");
            agent.shutdown().await.context("saying goodbye")?;
        }
        (None, Some(url)) => {
            let key = args.bus_args.key()?;
            let mesh = args.bus_args.join(url, &key).await?;
            let id = key.id();
            let runtime = RuntimeBuilder::new(mesh.bus(), Arc::new(EngineConfig::default())).start();
            // A new incarnation per process: a restarted agent cannot renew the leases of
            // contracts its previous run held.
            let incarnation = xchange_node::now_ms();
            let spec = AgentSpec::contractor(id, profile.clone(), behavior)
                .with_key(key)
                .restored(incarnation, Vec::new());
            runtime.spawn_agent(spec)?;
            mesh.flush().await?;
            let lease = mesh.announce(RemoteCard::new(id, &profile)).context("the bus has no directory")?;
            eprintln!("agent {id} joined {url} (prefix {}), {offer}", mesh.prefix());
            crate::process::terminated().await?;
            eprintln!("shutting down");
            if let Err(e) = lease.withdraw().await {
                eprintln!("could not withdraw the card ({e}); it expires by itself");
            }
            runtime.shutdown().await;
        }
        (None, None) => unreachable!("clap requires --server or --bus"),
    }
    eprintln!("disconnected");
    Ok(())
}

async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let input: serde_json::Value = serde_json::from_str(&args.input).context("--input is not JSON")?;
    let key = args.bus_args.key()?;
    let mesh = args.bus_args.join(&args.bus, &key).await?;
    let runtime = RuntimeBuilder::new(mesh.bus(), Arc::new(EngineConfig::default())).start();
    let manager = runtime.spawn_agent(AgentSpec::manager(key.id()).with_key(key))?;
    let watch = mesh.watch(runtime.clone(), None).context("the bus has no directory")?;
    mesh.flush().await?;
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let found = loop {
        let cards = mesh.lookup(&args.capability).await?;
        // The watcher must have attached them too, so that the manager knows them.
        if !cards.is_empty() && watch.stats().arrivals.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break cards;
        }
        if Instant::now() >= deadline {
            bail!(
                "no agent offering {:?} appeared in the directory within {}s",
                args.capability,
                args.wait_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids: Vec<String> = found.iter().map(|c| c.id.to_string()).collect();
    eprintln!("manager {}: found {} in the directory: {}", manager.id(), args.capability, ids.join(", "));
    let started = Instant::now();
    let tasks = (0..args.count).map(|_| manager.submit(TaskSpec::new(&args.capability, input.clone())));
    let mut failed = 0;
    for outcome in futures_util::future::join_all(tasks).await {
        match outcome {
            Ok(result) => println!("{}", serde_json::json!({"ok": true, "result": result})),
            Err(f) => {
                failed += 1;
                println!("{}", serde_json::json!({"ok": false, "code": f.code.number(), "reason": f.reason}));
            }
        }
    }
    eprintln!("{} task(s) in {:.2}s, {failed} failed", args.count, started.elapsed().as_secs_f64());
    drop(watch);
    runtime.shutdown().await;
    if failed > 0 {
        bail!("{failed} task(s) failed");
    }
    Ok(())
}
