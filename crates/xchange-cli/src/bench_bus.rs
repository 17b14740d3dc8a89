//! `xchange bench bus`: no-op tasks through the whole contract net between processes, over
//! NATS or Redis. This process hosts the manager; `--agent-procs` child processes
//! (`xchange bench bus-agents`) host the contractors, many per process on one connection.
//! Every message crosses the broker; the broker's own counters (NATS `/varz`, Redis
//! `INFO commandstats`) are read before and after, so the report shows that it did.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use xchange_bus::{NetBus, NetOptions};
use xchange_core::{Announce, ContractorProfile, EngineConfig, EventKind};
use xchange_protocol::AgentId;
use xchange_runtime::{AgentSpec, Contractor, RuntimeBuilder};

use crate::bench::{Noop, machine, round3, signing_key};
use crate::stats::Latencies;

const POOL: &str = "bench-0";

/// Options of `xchange bench bus`.
#[derive(Debug, clap::Args)]
pub(crate) struct BusBenchArgs {
    /// The bus: nats://HOST:PORT or redis://HOST:PORT.
    #[arg(long, value_name = "URL")]
    bus: String,
    /// Contractor agents, spread over the agent processes.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// Tasks to run.
    #[arg(long, default_value_t = 50_000)]
    tasks: u64,
    /// `broadcast` or `sample:D`.
    #[arg(long, default_value = "sample:2")]
    announce: Announce,
    /// Processes hosting the agents (1 to 4).
    #[arg(long, default_value_t = 1)]
    agent_procs: u64,
    /// Tasks in flight at once.
    #[arg(long, default_value_t = 512)]
    window: u64,
    /// Sign the kinds that create obligations and verify every signature at the edge.
    #[arg(long)]
    sign: bool,
    /// The NATS server's monitoring address (http://HOST:PORT), to read its counters.
    #[arg(long, value_name = "URL")]
    nats_monitor: Option<String>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Options of `xchange bench bus-agents` (started by `bench bus`).
#[derive(Debug, clap::Args)]
pub(crate) struct BusAgentsArgs {
    #[arg(long)]
    bus: String,
    #[arg(long)]
    bus_prefix: String,
    /// Index of the first agent hosted here.
    #[arg(long)]
    first: u64,
    /// Agents hosted here.
    #[arg(long)]
    count: u64,
    #[arg(long)]
    sign: bool,
}

fn options(prefix: &str, sign: bool) -> NetOptions {
    let mut options = NetOptions::new(prefix);
    options.limits.require_signatures = sign;
    options
}

/// The bus alone: the benchmark needs no directory (the manager knows its agents by
/// construction), so it leaves nothing behind on the server.
async fn connect(url: &str, prefix: &str, sign: bool) -> anyhow::Result<Arc<NetBus>> {
    let options = options(prefix, sign);
    let bus = if url.starts_with("redis://") {
        NetBus::redis(url, options).await?
    } else {
        NetBus::nats(url, options).await?.0
    };
    Ok(Arc::new(bus))
}

fn profile() -> ContractorProfile {
    ContractorProfile {
        capacity: 1_000,
        queue_limit: 1_000,
        pools: vec![POOL.into()].into(),
        ..ContractorProfile::new(["noop"])
    }
}

/// Agent `i`'s id: its key's when signing.
fn agent_id(i: u64, sign: bool) -> AgentId {
    if sign { signing_key(3, i).id() } else { AgentId::from_index(3, i) }
}

fn engine_config(announce: Announce) -> EngineConfig {
    EngineConfig {
        announce,
        // Rounds close when every asked agent answered; the window only bounds a lost bid.
        bid_window: 2_000_000,
        lease: 30_000_000,
        heartbeat_interval: 10_000_000,
        report_resend: 2_000_000,
        ..EngineConfig::default()
    }
}

/// The contractors' side: hosts `count` no-op agents on one connection, says `ready` on
/// stdout once subscribed, and runs until stdin closes.
pub(crate) fn agents(args: BusAgentsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let bus = connect(&args.bus, &args.bus_prefix, args.sign).await?;
        let runtime = RuntimeBuilder::new(bus.clone(), Arc::new(engine_config(Announce::Sample(2)))).start();
        let noop: Arc<dyn Contractor> = Arc::new(Noop);
        let profile = profile();
        for i in args.first..args.first + args.count {
            let spec = AgentSpec::contractor(agent_id(i, args.sign), profile.clone(), noop.clone());
            runtime.spawn_agent(if args.sign { spec.with_key(signing_key(3, i)) } else { spec })?;
        }
        bus.flush().await?;
        println!("ready");
        // Until the parent closes our stdin (or dies).
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await??;
        runtime.shutdown().await;
        anyhow::Ok(())
    })
}

/// Child processes hosting the agents; killed when dropped.
struct AgentProcs(Vec<Child>);

impl AgentProcs {
    fn start(args: &BusBenchArgs, prefix: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let per = args.agents.div_ceil(args.agent_procs);
        let mut procs = Self(Vec::new());
        for p in 0..args.agent_procs {
            let first = p * per;
            let count = per.min(args.agents.saturating_sub(first));
            let mut cmd = Command::new(&exe);
            cmd.args(["bench", "bus-agents", "--bus", &args.bus, "--bus-prefix", prefix]);
            cmd.args(["--first", &first.to_string(), "--count", &count.to_string()]);
            if args.sign {
                cmd.arg("--sign");
            }
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
            procs.0.push(cmd.spawn().context("starting an agent process")?);
        }
        for child in &mut procs.0 {
            let mut line = String::new();
            let out = child.stdout.as_mut().context("agent process stdout")?;
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
            if line.trim() != "ready" {
                bail!("an agent process did not start (said {line:?})");
            }
        }
        Ok(procs)
    }
}

impl Drop for AgentProcs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        for child in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the broker itself counted.
async fn broker_counters(args: &BusBenchArgs) -> anyhow::Result<Value> {
    if args.bus.starts_with("redis://") {
        let mut conn = redis::Client::open(args.bus.as_str())?.get_multiplexed_async_connection().await?;
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await?;
        let calls = |cmd: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        return Ok(json!({"publish_calls": calls("publish")}));
    }
    let Some(monitor) = &args.nats_monitor else { return Ok(Value::Null) };
    let varz: Value = reqwest::get(format!("{monitor}/varz")).await?.json().await?;
    Ok(json!({"in_msgs": varz["in_msgs"], "out_msgs": varz["out_msgs"], "in_bytes": varz["in_bytes"]}))
}

fn delta(before: &Value, after: &Value) -> Value {
    let Some(after) = after.as_object() else { return Value::Null };
    after
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0))))
        .collect()
}

pub(crate) fn bus(args: BusBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agents > 0 && args.tasks > 0 && args.window > 0,
        "agents, tasks and window must be positive"
    );
    anyhow::ensure!((1..=4).contains(&args.agent_procs), "--agent-procs must be 1 to 4");
    let prefix = format!("bench{}x{}", std::process::id(), xchange_node::now_ms() % 1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let setup = Instant::now();
    let net = rt.block_on(connect(&args.bus, &prefix, args.sign))?;
    let procs = AgentProcs::start(&args, &prefix)?;
    let report = rt.block_on(async {
        let bus: Arc<dyn xchange_bus::Bus> = net.clone();
        let runtime = RuntimeBuilder::new(bus.clone(), Arc::new(engine_config(args.announce))).start();
        let manager = AgentSpec::manager(AgentId::from_index(4, 0));
        let manager =
            runtime.spawn_agent(if args.sign { manager.with_key(signing_key(4, 0)) } else { manager })?;
        // The agents are known by construction here (no directory round trips in the figure).
        let profile = profile();
        let attached: Vec<_> = (0..args.agents)
            .map(|i| runtime.attach_remote(agent_id(i, args.sign), profile.clone()))
            .collect::<Result<_, _>>()?;
        net.flush().await?;
        manager.status().await?;
        let setup_s = setup.elapsed().as_secs_f64();
        let mut tap = runtime.subscribe_events();
        let broker_before = broker_counters(&args).await?;
        let before = bus.counters();
        let started = Instant::now();
        let load = tokio::spawn(crate::bench::load(manager, POOL.to_owned(), args.tasks, args.window));
        let mut awards = Latencies::new();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while !load.is_finished() {
            tick.tick().await;
            while let Some((_, event)) = tap.try_recv() {
                if let EventKind::Awarded { announce_to_award: Some(t), .. } = event.kind {
                    awards.record(t);
                }
            }
        }
        let (completed, failed, results) = load.await??;
        let wall = started.elapsed().as_secs_f64();
        let after = bus.counters();
        let broker = delta(&broker_before, &broker_counters(&args).await?);
        drop(attached);
        runtime.shutdown().await;
        anyhow::Ok(json!({
            "bench": "bus",
            "transport": if args.bus.starts_with("redis://") { "redis" } else { "nats" },
            "agents": args.agents,
            "agent_procs": args.agent_procs,
            "tasks": args.tasks,
            "announce": args.announce.to_string(),
            "window": args.window,
            "signing": args.sign,
            "completed": completed,
            "failed": failed,
            "wall_s": round3(wall),
            "setup_s": round3(setup_s),
            "contracts_per_s": (completed as f64 / wall).round(),
            "announce_to_award_p50_us": awards.quantile(0.5),
            "announce_to_award_p99_us": awards.quantile(0.99),
            "submit_to_result_p50_us": results.quantile(0.5),
            "submit_to_result_p99_us": results.quantile(0.99),
            "manager_received": after.delivered_total() - before.delivered_total(),
            "refused_at_edge": after.refused_total() - before.refused_total(),
            "overflowed": after.overflowed - before.overflowed,
            "broker": broker,
            "machine": machine(),
        }))
    })?;
    drop(procs);
    crate::bench::print_report(&report, args.json);
    Ok(())
}
