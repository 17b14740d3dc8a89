//! `xchange demo`: the embedded exchange and a small society of agents analysing documents.

mod agents;
mod report;
mod text;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use xchange_bus::{Bus, InProcBus};
use xchange_core::{Announce, ContractorProfile, DetRng, EngineConfig, EventKind};
use xchange_protocol::{AgentId, TaskSpec};
use xchange_runtime::{AgentSpec, RuntimeBuilder};

use crate::stats::Latencies;
use agents::{ANALYZE, Coordinator, Crashes, WORK, Worker};
pub(crate) use report::Summary;

/// Options of `xchange demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Jobs (documents) to analyse.
    #[arg(long, default_value_t = 200)]
    jobs: u64,
    /// Seed of every random choice (documents, priorities, crashes, engines).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print one JSON object as the last line instead of the table.
    #[arg(long)]
    json: bool,
    /// Jobs in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Probability that a flaky worker crashes when it starts an execution.
    #[arg(long, default_value_t = 0.08)]
    crash_rate: f64,
}

/// Engine settings for the demo: short leases so that crashes show within seconds.
fn engine_config() -> EngineConfig {
    EngineConfig {
        announce: Announce::Sample(2),
        bid_window: 20_000,
        lease: 150_000,
        heartbeat_interval: 40_000,
        report_resend: 100_000,
        reannounce_backoff: 20_000,
        message_ttl: 10_000_000,
        no_contractor_timeout: 60_000_000,
        terminal_retention: 30_000_000,
        ..EngineConfig::default()
    }
}

/// A worker as the summary shows it.
pub(crate) struct WorkerInfo {
    pub(crate) name: String,
    pub(crate) worker: Arc<Worker>,
    pub(crate) price: u64,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.jobs > 0, "--jobs must be at least 1");
    anyhow::ensure!((0.0..=1.0).contains(&args.crash_rate), "--crash-rate must be between 0 and 1");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let summary = rt.block_on(run_society(&args))?;
    if args.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

fn document(rng: &mut DetRng) -> (String, String) {
    let title = text::TITLES[rng.below(text::TITLES.len())];
    let n = 2 + rng.below(4);
    let paragraphs: Vec<&str> = (0..n).map(|_| text::PARAGRAPHS[rng.below(text::PARAGRAPHS.len())]).collect();
    (title.to_owned(), paragraphs.join("\n\n"))
}

async fn run_society(args: &DemoArgs) -> anyhow::Result<Summary> {
    let bus = Arc::new(InProcBus::new());
    let runtime = RuntimeBuilder::new(bus.clone(), Arc::new(engine_config())).seed(args.seed).start();
    runtime.register_verifier("document-report", |spec: &TaskSpec, result: &serde_json::Value| {
        agents::verify_report(spec, result)
    });

    let mut workers = Vec::new();
    let mut handles = Vec::new();
    let mut next_id = 0u64;
    let mut id = || {
        next_id += 1;
        AgentId::from_index(7, next_id)
    };
    for (i, capability) in WORK.into_iter().enumerate() {
        // name, speed (units/s), price per unit, crashes
        for (style, speed, price, flaky) in
            [("swift", 60.0, 30, false), ("steady", 20.0, 8, false), ("flaky", 40.0, 12, true)]
        {
            let crashes = flaky.then(|| Crashes {
                rate: args.crash_rate,
                downtime: Duration::from_millis(250),
                rng: Mutex::new(DetRng::new(args.seed ^ (0x5eed_0000 + i as u64))),
                handle: OnceLock::new(),
                count: AtomicU64::new(0),
            });
            let worker = Arc::new(Worker { capability, speed, crashes, executions: AtomicU64::new(0) });
            let profile = ContractorProfile {
                capacity: 2,
                queue_limit: 16,
                price_per_unit: price,
                speed,
                ..ContractorProfile::new([capability])
            };
            let handle = runtime.spawn_agent(AgentSpec::contractor(id(), profile, worker.clone()))?;
            if let Some(c) = &worker.crashes {
                let _ = c.handle.set(handle.clone());
            }
            handles.push(handle);
            workers.push(WorkerInfo { name: format!("{style}-{capability}"), worker, price });
        }
    }
    for price in [5, 7] {
        let profile = ContractorProfile {
            capacity: 16,
            queue_limit: 32,
            price_per_unit: price,
            speed: 4.0,
            ..ContractorProfile::new([ANALYZE])
        };
        handles.push(
            runtime
                .spawn_agent(AgentSpec::contractor(id(), profile, Arc::new(Coordinator)).managing(true))?,
        );
    }
    let client = runtime.spawn_agent(AgentSpec::manager(id()))?;
    handles.push(client.clone());

    // Why work moved, counted from the lifecycle events of every manager.
    let reasons: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let mut tap = runtime.subscribe_events();
    let counting = reasons.clone();
    let tally = tokio::spawn(async move {
        while let Some((_, event)) = tap.recv().await {
            if let EventKind::Reassigned { code, .. } = event.kind {
                *counting.lock().expect("reasons lock").entry(code.name()).or_insert(0) += 1;
            }
        }
    });
    let progress = indicatif::ProgressBar::new(args.jobs);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} jobs  {msg}")
            .expect("valid progress template"),
    );
    let started = Instant::now();
    let mut rng = DetRng::new(args.seed);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut jobs = tokio::task::JoinSet::new();
    let mut finished = Vec::new();
    for _ in 0..args.jobs {
        let (title, body) = document(&mut rng);
        let mut spec = TaskSpec::new(ANALYZE, json!({ "title": title, "text": body }));
        spec.size = (text::word_count(&body) as f64 / 40.0).max(0.1);
        spec.priority = rng.below(100) as i64;
        spec.verifier = Some("document-report".into());
        spec.retry_limit = 5;
        let permit = semaphore.clone().acquire_owned().await?;
        let client = client.clone();
        jobs.spawn(async move {
            let t0 = Instant::now();
            let outcome = client.submit(spec).await;
            drop(permit);
            (outcome, t0.elapsed())
        });
        while let Some(done) = jobs.try_join_next() {
            finished.push(done?);
            progress.inc(1);
        }
    }
    progress.set_message("finishing");
    while let Some(done) = jobs.join_next().await {
        finished.push(done?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    let mut latencies = Latencies::new();
    let mut completed = 0;
    let mut failures = Vec::new();
    for (outcome, elapsed) in finished {
        latencies.record(elapsed.as_micros() as u64);
        match outcome {
            Ok(_) => completed += 1,
            Err(e) => failures.push(e.to_string()),
        }
    }
    let mut engines = xchange_core::Counters::default();
    for agent in &handles {
        engines += &agent.counters().await;
    }
    let messages = bus.counters().delivered_total();
    runtime.shutdown().await;
    let _ = tally.await;
    let reasons = std::mem::take(&mut *reasons.lock().expect("reasons lock"));
    Ok(Summary::new(args, completed, failures, engines, messages, &latencies, wall, workers, reasons))
}
