//! `xchange bench takeover`: how long a replica's partitions and jobs wait after it dies.
//!
//! Starts `--nodes` replicas (`xchange serve` processes on one PostgreSQL schema and one
//! NATS bus) and agent processes, submits a steady stream of jobs to every live node, and
//! `--kills` times SIGKILLs the node with the most jobs in flight, then measures:
//!
//! - **takeover**: from the kill until every partition is leased again by a live node;
//! - **recovery**: from the kill until every job acknowledged before it has ended.
//!
//! The killed node is restarted on its data folder (the same identity) and the cluster
//! evens out before the next round. The aim is takeover within the lease plus 5 s.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::stats::Latencies;

/// Options of `xchange bench takeover`.
#[derive(Debug, clap::Args)]
pub(crate) struct TakeoverArgs {
    /// The PostgreSQL database the replicas share (a schema is created in it and dropped).
    #[arg(long)]
    store: String,
    /// The NATS server the replicas and agents share.
    #[arg(long)]
    bus: String,
    /// Replicas.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Rounds: kill the busiest node, measure, restart it.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Partitions of the jobs.
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// The partition lease, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    lease_ms: u64,
    /// Jobs submitted per second, over all live nodes.
    #[arg(long, default_value_t = 40)]
    rate: u64,
    /// How long each job runs at its agent, in milliseconds.
    #[arg(long, default_value_t = 500)]
    job_ms: u64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

struct Replica {
    child: Option<Child>,
    base: String,
    port: u16,
    data: PathBuf,
}

struct Cluster {
    exe: PathBuf,
    admin_key: String,
    store: String,
    bus: String,
    prefix: String,
    args_partitions: String,
    args_lease: String,
    replicas: Vec<Replica>,
    agents: Vec<Child>,
}

impl Cluster {
    fn spawn(&self, port: u16, data: &PathBuf) -> anyhow::Result<Child> {
        let base = format!("http://127.0.0.1:{port}");
        Command::new(&self.exe)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .args(["--store", &self.store, "--bus", &self.bus, "--bus-prefix", &self.prefix])
            .args(["--advertise-url", &base, "--partitions", &self.args_partitions])
            .args(["--partition-lease-ms", &self.args_lease])
            .env("RUST_LOG", "error")
            .env("XCHANGE_ADMIN_KEY", &self.admin_key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting xchange serve")
    }

    fn live_bases(&self) -> Vec<String> {
        self.replicas.iter().filter(|r| r.child.is_some()).map(|r| r.base.clone()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.replicas.iter_mut().filter_map(|r| r.child.as_mut()).chain(self.agents.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for r in &self.replicas {
            let _ = std::fs::remove_dir_all(&r.data);
        }
    }
}

pub(crate) fn takeover(args: TakeoverArgs) -> anyhow::Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2: a takeover needs a survivor");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(run(args))
}

async fn run(args: TakeoverArgs) -> anyhow::Result<()> {
    let schema = format!("xchange_bench_takeover_{}", std::process::id());
    let admin =
        Command::new("psql").arg(&args.store).args(["-qc", &format!("CREATE SCHEMA {schema}")]).status();
    if !admin.context("running psql to create a schema")?.success() {
        bail!("psql could not create schema {schema} in {}", args.store);
    }
    let separator = if args.store.contains('?') { '&' } else { '?' };
    let store = format!("{}{separator}options=-c%20search_path%3D{schema}", args.store);
    let result = measure(&args, &store).await;
    let _ = Command::new("psql")
        .arg(&args.store)
        .args(["-qc", &format!("DROP SCHEMA {schema} CASCADE")])
        .env("PGOPTIONS", "--client-min-messages=warning")
        .status();
    let report = result?;
    crate::bench::print_report(&report, args.json);
    Ok(())
}

async fn measure(args: &TakeoverArgs, store: &str) -> anyhow::Result<Value> {
    let admin_key = xchange_node::fresh_api_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = crate::client::with_key(reqwest::Client::builder(), &admin_key)?
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut cluster = Cluster {
        exe: std::env::current_exe()?,
        admin_key,
        store: store.to_owned(),
        bus: args.bus.clone(),
        prefix: format!("benchtakeover{}", std::process::id()),
        args_partitions: args.partitions.to_string(),
        args_lease: args.lease_ms.to_string(),
        replicas: Vec::new(),
        agents: Vec::new(),
    };
    for n in 0..args.nodes {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = std::env::temp_dir().join(format!("xchange-bench-takeover-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let child = cluster.spawn(port, &data)?;
        cluster.replicas.push(Replica {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            port,
            data,
        });
    }
    for base in cluster.live_bases() {
        wait_until(&http, &base, Duration::from_secs(30), |_| true).await?;
    }
    let exec = format!("sleep {:.3}; cat", args.job_ms as f64 / 1000.0);
    for _ in 0..2 {
        let agent = Command::new(&cluster.exe)
            .args(["agent", "run", "--bus", &args.bus, "--bus-prefix", &cluster.prefix])
            .args(["--capability", "echo", "--capacity", "64", "--exec", &exec])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        cluster.agents.push(agent);
    }
    let settle = Duration::from_millis(args.lease_ms * 4 + 10_000);
    wait_until(&http, &cluster.live_bases()[0], settle, |s| balanced(s, args.nodes)).await?;

    let targets = Arc::new(Mutex::new(cluster.live_bases()));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let submitter =
        tokio::spawn(submit(http.clone(), targets.clone(), args.rate, stop.clone(), acked.clone()));

    let (mut takeover, mut recovery) = (Latencies::new(), Latencies::new());
    for round in 0..args.kills {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut busiest = (0, 0);
        for (i, r) in cluster.replicas.iter().enumerate() {
            let running = status(&http, &r.base).await?["running_jobs"].as_u64().unwrap_or(0);
            if running >= busiest.1 {
                busiest = (i, running);
            }
        }
        let victim = busiest.0;
        let victim_id = status(&http, &cluster.replicas[victim].base).await?["node_id"].clone();
        let kill_ms = xchange_node::now_ms();
        let killed = Instant::now();
        if let Some(mut child) = cluster.replicas[victim].child.take() {
            child.kill()?;
            child.wait()?;
        }
        *targets.lock().unwrap_or_else(PoisonError::into_inner) = cluster.live_bases();
        let survivor = cluster.live_bases()[0].clone();
        let patience = Duration::from_millis(args.lease_ms * 3 + 30_000);
        wait_until(&http, &survivor, patience, |s| {
            s["partitions"]
                .as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["live"] == true && p["owner"] != victim_id))
        })
        .await?;
        let taken = killed.elapsed();
        takeover.record(taken.as_micros() as u64);
        wait_for_jobs_before(&http, &survivor, kill_ms, patience).await?;
        let ended = killed.elapsed();
        recovery.record(ended.as_micros() as u64);
        eprintln!(
            "round {round}: killed a node with {} jobs in flight; partitions taken over after {} ms, \
             the jobs acknowledged before the kill ended after {} ms",
            busiest.1,
            taken.as_millis(),
            ended.as_millis()
        );
        let (port, data) = (cluster.replicas[victim].port, cluster.replicas[victim].data.clone());
        cluster.replicas[victim].child = Some(cluster.spawn(port, &data)?);
        wait_until(&http, &cluster.replicas[victim].base.clone(), Duration::from_secs(30), |_| true).await?;
        *targets.lock().unwrap_or_else(PoisonError::into_inner) = cluster.live_bases();
        wait_until(&http, &survivor, settle, |s| balanced(s, args.nodes)).await?;
    }
    stop.store(true, Relaxed);
    let _ = submitter.await;
    let ms = |h: &Latencies, q: f64| h.quantile(q) / 1000;
    Ok(json!({
        "bench": "takeover",
        "nodes": args.nodes,
        "kills": args.kills,
        "partitions": args.partitions,
        "lease_ms": args.lease_ms,
        "jobs_acknowledged": acked.load(Relaxed),
        "takeover_p50_ms": ms(&takeover, 0.5),
        "takeover_p99_ms": ms(&takeover, 0.99),
        "recovery_p50_ms": ms(&recovery, 0.5),
        "recovery_p99_ms": ms(&recovery, 0.99),
        "aim_ms": args.lease_ms + 5_000,
        "aim_met": ms(&takeover, 0.99) <= args.lease_ms + 5_000,
    }))
}

/// Submits `rate` jobs per second, round robin over `targets`, until `stop`.
async fn submit(
    http: reqwest::Client,
    targets: Arc<Mutex<Vec<String>>>,
    rate: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut n: u64 = 0;
    while !stop.load(Relaxed) {
        tick.tick().await;
        n += 1;
        let base = {
            let targets = targets.lock().unwrap_or_else(PoisonError::into_inner);
            targets[n as usize % targets.len()].clone()
        };
        let (http, acked) = (http.clone(), acked.clone());
        tokio::spawn(async move {
            let body = json!({"job_goal": "takeover bench", "submitted_by": "bench", "capability": "echo",
                "job_init_data": {"n": n}});
            if let Ok(r) = http.post(format!("{base}/v1/jobs")).json(&body).send().await
                && r.status().is_success()
            {
                acked.fetch_add(1, Relaxed);
            }
        });
    }
}

async fn status(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let r = http.get(format!("{base}/v1/cluster")).send().await?;
    Ok(r.json().await?)
}

/// Waits until `check` holds for the cluster status at `base`.
async fn wait_until(
    http: &reqwest::Client,
    base: &str,
    patience: Duration,
    check: impl Fn(&Value) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    loop {
        if let Ok(s) = status(http, base).await
            && check(&s)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{base}: the cluster did not reach the expected state within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every live node holds a partition and every partition is held.
fn balanced(s: &Value, nodes: usize) -> bool {
    let empty = Vec::new();
    let live: Vec<&Value> =
        s["nodes"].as_array().unwrap_or(&empty).iter().filter(|n| n["alive"] == true).collect();
    live.len() == nodes
        && live.iter().all(|n| n["partitions"].as_array().is_some_and(|p| !p.is_empty()))
        && s["partitions"].as_array().is_some_and(|ps| ps.iter().all(|p| p["live"] == true))
}

/// Waits until no job created before `kill_ms` is unfinished.
async fn wait_for_jobs_before(
    http: &reqwest::Client,
    base: &str,
    kill_ms: u64,
    patience: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    let query = json!({"filter": {"state": {"$in": ["submitted", "announced", "awarded", "running"]},
        "created_ms": {"$lte": kill_ms}}, "limit": 1});
    loop {
        let r = http.post(format!("{base}/v1/jobs/query")).json(&query).send().await;
        if let Ok(r) = r
            && let Ok(page) = r.json::<Value>().await
            && page["items"].as_array().is_some_and(Vec::is_empty)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("jobs acknowledged before the kill did not end within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
