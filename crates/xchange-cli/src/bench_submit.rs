//! `xchange bench submit`: durable job submissions per second over HTTP, with latency
//! percentiles, on SQLite or PostgreSQL.
//!
//! It starts a node in this process on a loopback port, hosts an echo contractor next to
//! it (so that jobs also run, as in production) unless `--intake-only`, and lets
//! `--clients` concurrent HTTP clients submit `--jobs` distinct jobs. Every 201 counted was
//! sent after the job's commit. Clients and server share this machine's cores: the figure
//! is a floor for a server with cores of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use xchange_core::ContractorProfile;
use xchange_node::{Node, NodeConfig};
use xchange_protocol::AgentId;
use xchange_runtime::{AgentSpec, Execution, contractor_fn};

use crate::stats::Latencies;

/// Options of `xchange bench submit`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubmitArgs {
    /// Store URL; default: a fresh SQLite file in a temporary folder. Give PostgreSQL a
    /// fresh schema (`?options=-c%20search_path%3DNAME`): the node resumes the jobs an
    /// earlier run left unfinished, which would load this one.
    #[arg(long)]
    store: Option<String>,
    /// Jobs to submit.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    clients: u64,
    /// Do not host a contractor: measure intake alone (jobs stay waiting).
    #[arg(long)]
    intake_only: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.jobs > 0 && args.clients > 0, "--jobs and --clients must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(run(args))
}

async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("xchange-bench-submit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The clients authenticate like any: an admin key handed to the node.
    let key = xchange_node::fresh_api_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = NodeConfig {
        data: dir.clone(),
        store: args.store.clone(),
        admin_key: Some(key.clone()),
        // One key for every client: the per-key rate limit would measure itself.
        rate_limit_per_key: u32::MAX,
        rate_limit_burst: u32::MAX,
        ..NodeConfig::default()
    };
    let url = config.store_url();
    let store = xchange_store::open(&url).await.with_context(|| format!("opening {url}"))?;
    let durability = xchange_store::Store::durability_settings(&store).await?;
    let node =
        Node::start(config, store.clone()).await.map_err(|e| anyhow::anyhow!("starting the node: {e}"))?;
    if !args.intake_only {
        let echo = contractor_fn(|_ctx, spec| Execution::done(spec.input.clone()));
        let mut profile = ContractorProfile::new(["echo"]);
        profile.capacity = 1024;
        profile.queue_limit = 1 << 20;
        node.runtime().spawn_agent(AgentSpec::contractor(AgentId::from_index(0, 2), profile, echo))?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1/jobs", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(xchange_node::run(listener, node.clone(), async move {
        let _ = stopped.await;
    }));

    let http = crate::client::with_key(reqwest::Client::builder(), &key)?
        .pool_max_idle_per_host(args.clients as usize)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let run_id = std::process::id();
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients {
        let (http, base, next) = (http.clone(), base.clone(), next.clone());
        let total = args.jobs;
        clients.push(tokio::spawn(async move {
            let mut lat = Latencies::new();
            let mut refused = 0u64;
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= total {
                    break;
                }
                let body = json!({
                    "job_id": format!("bench-{run_id}-{i}"), "job_goal": "bench", "submitted_by": "bench",
                    "capability": "echo", "job_init_data": {"i": i},
                });
                let t = Instant::now();
                match http.post(&base).json(&body).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        lat.record(t.elapsed().as_micros() as u64);
                    }
                    _ => refused += 1,
                }
            }
            (lat, refused)
        }));
    }
    let mut all = Latencies::new();
    let mut refused = 0;
    for c in clients {
        let (lat, r) = c.await?;
        all.merge(&lat);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = all.len();
    let _ = stop.send(());
    let _ = server.await;
    node.shutdown().await;
    xchange_store::Store::close(&store).await;
    if args.store.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let backend = if url.starts_with("sqlite") { "sqlite" } else { "postgres" };
    let figures = json!({
        "store": backend,
        "durable": durability.is_durable(),
        "durability": durability,
        "jobs": args.jobs,
        "clients": args.clients,
        "accepted": accepted,
        "refused": refused,
        "seconds": elapsed,
        "submissions_per_s": accepted as f64 / elapsed,
        "p50_ms": all.quantile(0.5) as f64 / 1000.0,
        "p99_ms": all.quantile(0.99) as f64 / 1000.0,
        "with_contractor": !args.intake_only,
    });
    if !args.json {
        println!(
            "{backend}: {accepted} durable submissions in {elapsed:.2} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms ({} clients)",
            accepted as f64 / elapsed,
            all.quantile(0.5) as f64 / 1000.0,
            all.quantile(0.99) as f64 / 1000.0,
            args.clients
        );
    }
    println!("{figures}");
    Ok(())
}
