//! `xchange bench soak`: whether the exchange's memory and latency stay flat under a steady
//! load held for minutes.
//!
//! The exchange runs as a deployment runs it: an `xchange serve` child process (SQLite in a
//! fresh data folder, API keys on, the per-key rate limit lifted since every client shares
//! one admin key) with `--agents` echo contractors joined over its WebSocket, each a session
//! of its own like an `xchange agent run`, so every job crosses the paths of a deployment:
//! HTTP intake, the contract net over WebSocket to another process, the report back, the
//! outbox. The contractors live in this process and echo in place: `agent run --exec cat`
//! (`--exec cat`) forks a shell per job, which on two cores made the maximum a third to a
//! half of this one, a figure of the forks rather than of the exchange. Clients submit over
//! HTTP and learn each job's end from one `/v1/events` stream filtered to terminal states.
//!
//! Phase 1 (skipped with `--rate`) finds the maximum: clients submit as fast as the node
//! takes jobs, at most `--window` unfinished, for `--probe-secs`; the maximum is the
//! completions per second after the first 5 s. Phase 2, on a fresh node, submits open loop
//! at `--fraction` of it for `--secs`. Each job has a scheduled time and its latencies run
//! from it, so a server that stalls shows as latency, not as fewer jobs sent. Every
//! `--sample-secs` it records the jobs submitted and completed in the window, p50/p99
//! submit-to-completion of the jobs that ended in it, p99 submit (201) latency, and the
//! serve process's RSS, threads, open files and CPU from /proc.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use xchange_core::ContractorProfile;
use xchange_runtime::{Execution, contractor_fn};

use crate::stats::Latencies;

mod report;

use report::{Sampler, summarize};

/// Options of `xchange bench soak`.
#[derive(Debug, clap::Args)]
pub(crate) struct SoakArgs {
    /// Jobs per second of the soak; default: `--fraction` of the maximum phase 1 measures.
    #[arg(long)]
    rate: Option<f64>,
    /// The share of the measured maximum to hold.
    #[arg(long, default_value_t = 0.5)]
    fraction: f64,
    /// Seconds of phase 1.
    #[arg(long, default_value_t = 40)]
    probe_secs: u64,
    /// Seconds of the soak.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// Seconds per sample.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Contractors, each on its own WebSocket session.
    #[arg(long, default_value_t = 2)]
    agents: u32,
    /// Jobs each agent runs at once.
    #[arg(long, default_value_t = 32)]
    capacity: u32,
    /// Contractors are `xchange agent run --exec CMD` processes (a process per job) rather
    /// than echo contractors in this process.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// HTTP submissions in flight at most.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Unfinished jobs at most in phase 1 (more lowers the rate: a longer queue costs more).
    #[arg(long, default_value_t = 256)]
    window: u64,
    /// Write every sample to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Print one JSON summary as the last line.
    #[arg(long)]
    json: bool,
}

pub(crate) fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let positive = args.secs > 0 && args.sample_secs > 0 && args.agents > 0 && args.clients > 0;
    anyhow::ensure!(positive && args.fraction > 0.0, "every count, time and fraction must be positive");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(run(args))
}

async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let key = xchange_node::fresh_api_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = crate::client::with_key(reqwest::Client::builder(), &key)?
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let max = if args.rate.is_some() { None } else { Some(probe(&args, &http, &key).await?) };
    let rate = args.rate.unwrap_or_else(|| max.unwrap_or(0.0) * args.fraction);
    anyhow::ensure!(rate > 0.0, "the rate must be positive");
    let mut exchange = Exchange::start(&args, &http, &key, "soak").await?;
    let load = Load::follow(&http, &mut exchange, "soak", args.clients).await?;
    let csv = args.csv.as_ref().map(|p| std::fs::File::create(p).with_context(|| format!("creating {p:?}")));
    let csv = csv.transpose()?;
    eprintln!("phase 2: {rate:.1} jobs/s for {} s", args.secs);
    let sampler = Sampler { load: load.clone(), pid: exchange.serve.id(), base: exchange.base.clone(), csv };
    let sampling = tokio::spawn(sampler.run(args.sample_secs, args.secs));
    load.drive(Instant::now() + Duration::from_secs(args.secs), Some(rate), 0).await?;
    let samples = sampling.await??;
    // Jobs still running count as unfinished in the summary, not as lost.
    let drain = Instant::now() + Duration::from_secs(30);
    while !load.pending.lock().expect("pending").is_empty() && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(exchange);
    let summary = summarize(&samples, &load, max, rate);
    if args.json {
        println!("{summary}");
    }
    Ok(())
}

/// Phase 1: the completions per second, after 5 s, of a node kept `--window` jobs behind.
async fn probe(args: &SoakArgs, http: &reqwest::Client, key: &str) -> anyhow::Result<f64> {
    let mut exchange = Exchange::start(args, http, key, "probe").await?;
    let load = Load::follow(http, &mut exchange, "probe", args.clients).await?;
    let warm = Duration::from_secs(5);
    load.drive(Instant::now() + warm, None, args.window).await?;
    let (from, before) = (Instant::now(), load.done.load(Relaxed));
    load.drive(from + Duration::from_secs(args.probe_secs).saturating_sub(warm).max(warm), None, args.window)
        .await?;
    let per_s = (load.done.load(Relaxed) - before) as f64 / from.elapsed().as_secs_f64();
    eprintln!("phase 1: {per_s:.0} jobs/s completed, at most {} unfinished", args.window);
    Ok(per_s)
}

/// The exchange under test, its processes killed and its data removed when dropped.
struct Exchange {
    serve: Child,
    agents: Vec<Child>,
    echoes: Vec<xchange_ws::RemoteAgent>,
    base: String,
    dir: PathBuf,
    reader: Option<tokio::task::AbortHandle>,
}

impl Exchange {
    async fn start(args: &SoakArgs, http: &reqwest::Client, key: &str, tag: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("xchange-soak-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let (listen, unlimited) = (format!("127.0.0.1:{port}"), u32::MAX.to_string());
        let mut serve = xchange(["serve", "--listen", &listen, "--rate-limit-per-key", &unlimited])?;
        serve.args(["--rate-limit-burst", &unlimited, "--data"]).arg(&dir).env("XCHANGE_ADMIN_KEY", key);
        let serve = serve.stderr(log).spawn().context("starting xchange serve")?;
        let base = format!("http://127.0.0.1:{port}");
        let mut exchange = Self { serve, agents: Vec::new(), echoes: Vec::new(), base, dir, reader: None };
        // An agent whose first connection fails exits: start them once the node listens.
        exchange.wait_for(http, "/healthz", |_| true).await?;
        for _ in 0..args.agents {
            let capacity = args.capacity.to_string();
            match &args.exec {
                Some(exec) => {
                    let mut agent = xchange(["agent", "run", "--server", &exchange.base, "--exec", exec])?;
                    agent.args(["--capability", "echo", "--capacity", &capacity]).stderr(Stdio::null());
                    exchange.agents.push(agent.spawn().context("starting xchange agent run")?);
                }
                None => {
                    let echo = contractor_fn(|_ctx, spec| Execution::done(spec.input.clone()));
                    let profile =
                        ContractorProfile { capacity: args.capacity, ..ContractorProfile::new(["echo"]) };
                    let key = xchange_node::keyfile::fresh_key()?;
                    let options = xchange_ws::ConnectOptions::new(key, profile, echo);
                    exchange.echoes.push(xchange_ws::connect(&exchange.base, options).await?);
                }
            }
        }
        let agents = args.agents as usize;
        let connected = |v: &Value| {
            v["items"]
                .as_array()
                .is_some_and(|a| a.iter().filter(|a| a["connected"] == true).count() >= agents)
        };
        exchange.wait_for(http, "/v1/agents", connected).await?;
        Ok(exchange)
    }

    /// Waits until `path` answers 2xx with what `done` wants, failing if serve exits.
    async fn wait_for(
        &mut self,
        http: &reqwest::Client,
        path: &str,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.serve.try_wait()? {
                let log = self.dir.join("serve.log");
                anyhow::bail!("xchange serve exited ({status}); see {}", log.display());
            }
            let answer = match http.get(format!("{}{path}", self.base)).send().await {
                Ok(r) if r.status().is_success() => Some(r.json::<Value>().await.unwrap_or_default()),
                _ => None,
            };
            if answer.as_ref().is_some_and(&done) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{}{path} was not ready in 30 s", self.base);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A command running this binary with `args`, its logs quiet and its output dropped.
fn xchange<const N: usize>(args: [&str; N]) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe().context("finding the xchange binary")?);
    command.args(args).env("RUST_LOG", "warn").stdout(Stdio::null());
    Ok(command)
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
        for child in self.agents.iter_mut().chain([&mut self.serve]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Jobs since the last sample.
struct Window {
    submitted: u64,
    refused: u64,
    completed: u64,
    failed: u64,
    ended: Latencies,
    accepted: Latencies,
}

impl Window {
    fn new() -> Self {
        let none = Latencies::new;
        Self { submitted: 0, refused: 0, completed: 0, failed: 0, ended: none(), accepted: none() }
    }
}

/// The clients' side: what was sent, when it was due, and what has ended.
struct Load {
    http: reqwest::Client,
    jobs_url: String,
    prefix: String,
    /// Scheduled time of each unfinished job: the event stream removes it.
    pending: Mutex<HashMap<u64, Instant>>,
    window: Mutex<Window>,
    /// HTTP submissions in flight.
    permits: Arc<tokio::sync::Semaphore>,
    /// Jobs that ended, and jobs sent (the next job's index).
    done: AtomicU64,
    sent: AtomicU64,
}

impl Load {
    /// Opens the event stream before any job is sent (it starts at the newest event) and
    /// follows it on a task of its own, which ends before `exchange` does.
    async fn follow(
        http: &reqwest::Client,
        exchange: &mut Exchange,
        tag: &str,
        clients: usize,
    ) -> anyhow::Result<Arc<Self>> {
        let ended = r#"{"payload.state": {"$in": ["completed", "failed", "cancelled", "expired"]}}"#;
        let url =
            reqwest::Url::parse_with_params(&format!("{}/v1/events", exchange.base), [("filter", ended)])?;
        let stream = http.get(url).send().await?.error_for_status()?;
        let load = Arc::new(Self {
            http: http.clone(),
            jobs_url: format!("{}/v1/jobs", exchange.base),
            prefix: format!("soak-{}-{tag}-", std::process::id()),
            pending: Mutex::new(HashMap::new()),
            window: Mutex::new(Window::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(clients)),
            done: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        });
        let reader = load.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = reader.read(stream).await {
                eprintln!("the event stream ended: {e}");
            }
        });
        exchange.reader = Some(task.abort_handle());
        Ok(load)
    }

    async fn read(&self, mut stream: reqwest::Response) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        while let Some(chunk) = stream.chunk().await? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                if let Some(data) = line.strip_prefix(b"data:") {
                    self.ended(&serde_json::from_slice(data)?);
                }
            }
        }
        Ok(())
    }

    fn ended(&self, event: &Value) {
        let index = event["job_id"].as_str().and_then(|id| id.strip_prefix(&self.prefix)?.parse().ok());
        let Some(at) = index.and_then(|i: u64| self.pending.lock().expect("pending").remove(&i)) else {
            return;
        };
        let micros = at.elapsed().as_micros() as u64;
        self.done.fetch_add(1, Relaxed);
        let mut window = self.window.lock().expect("window");
        if event["payload"]["state"] == "completed" {
            window.completed += 1;
            window.ended.record(micros);
        } else {
            window.failed += 1;
        }
    }

    async fn submit(self: Arc<Self>, i: u64, at: Instant) {
        // Registered first: the job may end before its 201 arrives.
        self.pending.lock().expect("pending").insert(i, at);
        let body = json!({
            "job_id": format!("{}{i}", self.prefix), "job_goal": "soak", "submitted_by": "soak",
            "capability": "echo", "job_init_data": {"i": i},
        });
        let sent = self.http.post(&self.jobs_url).json(&body).send().await;
        let accepted = sent.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED);
        if !accepted {
            self.pending.lock().expect("pending").remove(&i);
        }
        let mut window = self.window.lock().expect("window");
        if accepted {
            window.submitted += 1;
            window.accepted.record(at.elapsed().as_micros() as u64);
        } else {
            window.refused += 1;
        }
    }

    /// Sends jobs until `end`, each from a task of its own: at `rate` per second on a fixed
    /// schedule, or without one as fast as fewer than `window` jobs are unfinished.
    async fn drive(self: &Arc<Self>, end: Instant, rate: Option<f64>, window: u64) -> anyhow::Result<()> {
        let (start, first) = (Instant::now(), self.sent.load(Relaxed));
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while Instant::now() < end {
            tick.tick().await;
            let due = match rate {
                // Job `first + k` is due at `k / r` s.
                Some(r) => first + (start.elapsed().as_secs_f64() * r) as u64 + 1,
                None => self.done.load(Relaxed) + window,
            };
            while self.sent.load(Relaxed) < due && Instant::now() < end {
                let permit = self.permits.clone().acquire_owned().await?;
                let i = self.sent.fetch_add(1, Relaxed);
                let at = rate
                    .map_or_else(Instant::now, |r| start + Duration::from_secs_f64((i - first) as f64 / r));
                let load = self.clone();
                tokio::spawn(async move {
                    load.submit(i, at).await;
                    drop(permit);
                });
            }
        }
        Ok(())
    }
}
