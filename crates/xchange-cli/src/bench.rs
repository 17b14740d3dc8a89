//! `xchange bench`: programs that print figures, never timed tests.
//!
//! `inproc` pushes no-op tasks through the whole loop (announce, bid, award, execute,
//! report, assess) in the runtime. Every agent is its own engine, reached only through the
//! bus; every message is counted at the bus, rejects included.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use xchange_bus::{Bus, EdgeMode, InProcBus};
use xchange_core::{Announce, ContractorProfile, EngineConfig, EventKind, ExecOutcome};
use xchange_protocol::{AgentId, AgentKey, TaskSpec};
use xchange_runtime::{AgentSpec, Contractor, ExecContext, Execution, RuntimeBuilder};

use crate::stats::Latencies;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// No-op tasks through the whole contract-net loop in one process.
    Inproc(InprocArgs),
    /// Durable job submissions per second over HTTP, on SQLite or PostgreSQL.
    Submit(crate::bench_submit::SubmitArgs),
    /// No-op tasks through the contract net between processes over NATS or Redis.
    Bus(crate::bench_bus::BusBenchArgs),
    /// Replicas on one PostgreSQL: how long a killed node's partitions and jobs wait.
    Takeover(crate::bench_takeover::TakeoverArgs),
    /// The exchange in processes at a steady share of its maximum: memory and p99 over time.
    Soak(crate::bench_soak::SoakArgs),
    /// The agent processes of `bench bus` (started by it).
    #[command(hide = true)]
    BusAgents(crate::bench_bus::BusAgentsArgs),
}

/// Options of `xchange bench inproc`.
#[derive(Debug, clap::Args)]
pub(crate) struct InprocArgs {
    /// Contractor agents, each its own engine.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// Tasks to run.
    #[arg(long, default_value_t = 200_000)]
    tasks: u64,
    /// `broadcast` or `sample:D`.
    #[arg(long, default_value = "sample:2")]
    announce: Announce,
    /// Tasks in flight at once, over all shards: enough to keep every shard busy; more only
    /// lengthens queues (and, with many agents, the memory touched between a call and its
    /// award).
    #[arg(long, default_value_t = 1024)]
    window: u64,
    /// Shards (threads) hosting the agents; each runs its own manager and contractor group.
    /// Default: one per core.
    #[arg(long)]
    shards: Option<usize>,
    /// Encode every message to JSON and decode it through the edge checks.
    #[arg(long)]
    encode: bool,
    /// Sign the kinds that create obligations and verify them at the edge (implies --encode).
    #[arg(long)]
    sign: bool,
    /// Seed of the engines.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// A contractor whose tasks take no time: the outcome is ready when execution starts.
pub(crate) struct Noop;

impl Contractor for Noop {
    fn execute(&self, _: ExecContext, _: Arc<TaskSpec>) -> Execution {
        Execution::Ready(ExecOutcome::Done(Arc::new(Value::Null)))
    }
}

/// The signing key of benchmark agent `i` of `kind` (3 contractors, 4 managers).
pub(crate) fn signing_key(kind: u8, i: u64) -> AgentKey {
    let mut seed = [kind; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    AgentKey::from_seed(seed)
}

/// Spawns an agent with a signing key when messages are signed.
fn agent(spec: AgentSpec, signing: bool, kind: u8, i: u64) -> AgentSpec {
    if signing { spec.with_key(signing_key(kind, i)) } else { spec }
}

/// The machine, as `/proc/cpuinfo` and the scheduler see it.
pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "cpu": model.unwrap_or("unknown"), "cores": cores })
}

pub(crate) fn inproc(args: InprocArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.agents > 0 && args.tasks > 0 && args.window > 0,
        "agents, tasks and window must be positive"
    );
    let encode = args.encode || args.sign;
    let edge = if encode { EdgeMode::Encode { verify_signatures: args.sign } } else { EdgeMode::Direct };
    let bus = Arc::new(InProcBus::builder().edge(edge).build());
    let cfg = EngineConfig {
        announce: args.announce,
        // Long enough never to fire in a healthy run: every round closes when all answered.
        bid_window: 5_000_000,
        lease: 30_000_000,
        heartbeat_interval: 10_000_000,
        report_resend: 10_000_000,
        ..EngineConfig::default()
    };
    let runtime = RuntimeBuilder::new(bus.clone(), Arc::new(cfg))
        .shards(
            args.shards.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1),
        )
        .seed(args.seed)
        .start_on_threads()
        .context("starting shard threads")?;
    // One manager per shard, and the contractors of each shard serve that shard's pool: each
    // shard is an independent group whose messages never cross cores (engines sharded per
    // core). Every agent is still its own engine, reached only through the bus.
    let shards = runtime.shard_count();
    let noop: Arc<dyn Contractor> = Arc::new(Noop);
    let setup = Instant::now();
    // Agents of one kind share one profile, as a pool of identical workers would: its names
    // are then one allocation that stays in cache, not one per agent.
    let profiles: Vec<ContractorProfile> = (0..shards)
        .map(|shard| ContractorProfile {
            capacity: 1_000,
            queue_limit: 1_000,
            pools: vec![pool(shard).into()].into(),
            ..ContractorProfile::new(["noop"])
        })
        .collect();
    for i in 0..args.agents {
        let shard = (i % shards as u64) as usize;
        let profile = profiles[shard].clone();
        let spec = AgentSpec::contractor(AgentId::from_index(3, i), profile, noop.clone()).on_shard(shard);
        runtime.spawn_agent(agent(spec, args.sign, 3, i))?;
    }
    let mut managers = Vec::new();
    for shard in 0..shards {
        let spec = AgentSpec::manager(AgentId::from_index(4, shard as u64)).on_shard(shard);
        managers.push(runtime.spawn_agent(agent(spec, args.sign, 4, shard as u64))?);
    }
    let driver = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A shard handles its queue in order: once each manager answers, every agent spawned
    // before it is live and every manager has every card.
    driver.block_on(async {
        for m in &managers {
            m.status().await?;
        }
        anyhow::Ok(())
    })?;
    let setup_s = setup.elapsed().as_secs_f64();
    let report = driver.block_on(async {
        let mut tap = runtime.subscribe_events();
        let mut awards = Latencies::new();
        let before = bus.counters();
        let started = Instant::now();
        // Each shard's load runs on the shard's own thread, next to its manager.
        let mut loads = Vec::new();
        for (shard, manager) in managers.into_iter().enumerate() {
            let quota = args.tasks / shards as u64 + u64::from((shard as u64) < args.tasks % shards as u64);
            let window = (args.window / shards as u64).max(1);
            let handle = runtime.shard_handle(shard).context("shards run on threads")?;
            loads.push(handle.spawn(load(manager, pool(shard), quota, window)));
        }
        let mut all = tokio::task::JoinSet::new();
        for l in loads {
            all.spawn(l);
        }
        let (mut completed, mut failed, mut results) = (0u64, 0u64, Latencies::new());
        // The tap is polled, not awaited: a parked reader would make every shard wake this
        // thread across cores, which costs more than the work measured.
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(2));
        while !all.is_empty() {
            tick.tick().await;
            while let Some((_, event)) = tap.try_recv() {
                if let EventKind::Awarded { announce_to_award: Some(t), .. } = event.kind {
                    awards.record(t);
                }
            }
            while let Some(r) = all.try_join_next() {
                let (ok, bad, lat) = r???;
                completed += ok;
                failed += bad;
                results.merge(&lat);
            }
        }
        while let Some((_, event)) = tap.try_recv() {
            if let EventKind::Awarded { announce_to_award: Some(t), .. } = event.kind {
                awards.record(t);
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let after = bus.counters();
        let messages = after.delivered_total() - before.delivered_total();
        anyhow::Ok(json!({
            "bench": "inproc",
            "agents": args.agents,
            "tasks": args.tasks,
            "announce": args.announce.to_string(),
            "shards": shards,
            "managers": shards,
            "window": args.window,
            "encoding": encode,
            "signing": args.sign,
            "completed": completed,
            "failed": failed,
            "wall_s": round3(wall),
            "setup_s": round3(setup_s),
            "contracts_per_s": (completed as f64 / wall).round(),
            "announce_to_award_p50_us": awards.quantile(0.5),
            "announce_to_award_p99_us": awards.quantile(0.99),
            "announce_to_award_samples": awards.len(),
            "submit_to_result_p50_us": results.quantile(0.5),
            "submit_to_result_p99_us": results.quantile(0.99),
            "messages": messages,
            "messages_per_task": round3(messages as f64 / (completed + failed) as f64),
            "refused_at_edge": after.refused_total() - before.refused_total(),
            "machine": machine(),
        }))
    })?;
    driver.block_on(runtime.shutdown());
    print_report(&report, args.json);
    Ok(())
}

/// Prints a benchmark's report: one JSON line, or one `key value` line per figure.
pub(crate) fn print_report(report: &Value, json: bool) {
    if json {
        println!("{report}");
    } else {
        for (k, v) in report.as_object().into_iter().flatten() {
            println!("{k:<28} {v}");
        }
    }
}

fn pool(shard: usize) -> String {
    format!("bench-{shard}")
}

/// Submits `quota` no-op tasks to `manager`, keeping `window` in flight; returns how many
/// completed, how many failed, and submit-to-result latencies.
pub(crate) async fn load(
    manager: xchange_runtime::AgentHandle,
    pool: String,
    quota: u64,
    window: u64,
) -> anyhow::Result<(u64, u64, Latencies)> {
    let mut spec = TaskSpec::new("noop", Value::Null);
    spec.pool = pool.into();
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut submitted, mut ok, mut bad, mut lat) = (0u64, 0u64, 0u64, Latencies::new());
    while ok + bad < quota {
        while submitted < quota && (in_flight.len() as u64) < window {
            let (manager, spec) = (manager.clone(), spec.clone());
            in_flight.spawn(async move {
                let t0 = Instant::now();
                let done = manager.submit(spec).await.is_ok();
                (done, t0.elapsed().as_micros() as u64)
            });
            submitted += 1;
        }
        let Some(r) = in_flight.join_next().await else { break };
        let (done, micros) = r?;
        lat.record(micros);
        if done { ok += 1 } else { bad += 1 }
    }
    Ok((ok, bad, lat))
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
