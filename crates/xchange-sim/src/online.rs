//! The online presets: tasks arrive over time at identical agents, and the completion
//! time of each task (arrival to result) is compared with the omniscient reference.
//!
//! Contract-net policies run the real engines on the simulator's event loop: the manager
//! samples `d` agents per task, each bids its estimated time (its queue and the task's
//! size), and the manager awards the fastest; the task is then queued at that agent. The
//! baselines place tasks without messages (`queueing.rs`).

use std::time::Instant;

use serde::Serialize;
use xchange_core::{Announce, ContractorProfile, EngineConfig, Micros, ScoreWeights};
use xchange_protocol::{TaskSpec, TaskState};

use crate::error::SimError;
use crate::queueing::{Dispatch, Online, Sizes, dispatch};
use crate::report::{Perf, peak_rss_mb};
use crate::sim::{LoopConfig, Sim, Workload};

/// The online presets.
pub const ONLINE_PRESETS: &[&str] = &["online", "online-pareto"];

/// An online preset by name: 10,000 identical agents at 80 % load, 1 ms message delay,
/// exponential (`online`) or Pareto (`online-pareto`, shape 2.5) sizes of mean 1 s.
pub fn online_preset(name: &str, agents: Option<usize>, tasks: Option<usize>) -> Option<Online> {
    let sizes = match name {
        "online" => Sizes::Exponential { mean: 1.0 },
        "online-pareto" => Sizes::Pareto { shape: 2.5, mean: 1.0 },
        _ => return None,
    };
    Some(Online { agents: agents.unwrap_or(10_000), tasks: tasks.unwrap_or(100_000), load: 0.8, sizes })
}

/// A policy of the online presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlinePolicy {
    /// A placement without messages.
    Baseline(Dispatch),
    /// The contract net with `d` agents sampled per task.
    Cnp { d: u32 },
    /// The same with late binding: the sampled agents keep a reservation and bid when
    /// free; the first bid wins.
    CnpLate { d: u32 },
}

impl OnlinePolicy {
    /// Every policy the online presets compare.
    pub const ALL: &'static [Self] = &[
        Self::Baseline(Dispatch::ShortestQueue),
        Self::Baseline(Dispatch::Random),
        Self::Baseline(Dispatch::RoundRobin),
        Self::Baseline(Dispatch::PowerOfD(2)),
        Self::Baseline(Dispatch::PowerOfD(5)),
        Self::Cnp { d: 2 },
        Self::Cnp { d: 5 },
        Self::CnpLate { d: 2 },
        Self::CnpLate { d: 4 },
        Self::CnpLate { d: 5 },
    ];

    fn name(&self) -> String {
        match self {
            Self::Baseline(Dispatch::ShortestQueue) => "jsq-omniscient".into(),
            Self::Baseline(Dispatch::Random) => "random".into(),
            Self::Baseline(Dispatch::RoundRobin) => "round-robin".into(),
            Self::Baseline(Dispatch::PowerOfD(d)) => format!("power-of-{d}"),
            Self::Cnp { d } => format!("cnp-oneshot-sample:{d}"),
            Self::CnpLate { d } => format!("cnp-late-sample:{d}"),
        }
    }

    fn d(&self) -> Option<u32> {
        match self {
            Self::Baseline(Dispatch::PowerOfD(d)) | Self::Cnp { d } | Self::CnpLate { d } => Some(*d),
            _ => None,
        }
    }
}

/// One policy's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineResult {
    /// The policy.
    pub policy: String,
    /// Agents asked per task, if the policy samples.
    pub d: Option<u32>,
    /// Whether late binding was on.
    pub late_binding: bool,
    /// Tasks that completed.
    pub completed: usize,
    /// Mean completion time, seconds.
    pub mean_s: f64,
    /// Median completion time, seconds.
    pub p50_s: f64,
    /// 99th percentile completion time, seconds.
    pub p99_s: f64,
    /// Mean completion time divided by the omniscient reference's.
    pub ratio_to_reference: f64,
    /// Messages delivered per task.
    pub messages_per_task: f64,
}

/// A run of an online preset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OnlineReport {
    /// The preset.
    pub preset: String,
    /// The seed.
    pub seed: u64,
    /// Agents.
    pub agents: usize,
    /// Tasks.
    pub tasks: usize,
    /// Offered load.
    pub load: f64,
    /// One row per policy.
    pub results: Vec<OnlineResult>,
    /// Wall-clock figures (not a function of the seed).
    pub perf: Perf,
}

/// What the simulated agents know of an online workload: each task's size.
struct Sized(Vec<f64>);

impl Workload for Sized {
    fn task_index(&self, spec: &TaskSpec) -> Option<usize> {
        spec.input.get("task").and_then(serde_json::Value::as_u64).map(|t| t as usize)
    }

    fn price(&self, _: usize, _: usize) -> Option<u64> {
        Some(0)
    }

    fn duration(&self, _: usize, task: usize) -> Micros {
        (self.0[task] * 1e6).round() as Micros
    }
}

/// Completion times and messages of the contract net on `arrivals`.
fn cnp(agents: usize, arrivals: &[(f64, f64)], d: u32, late: bool, seed: u64) -> (Vec<f64>, u64, u64) {
    let engine = EngineConfig {
        announce: Announce::Sample(d),
        late_binding: late,
        // Time to result decides; every agent asks the same price.
        weights: ScoreWeights { price: 0.0, eta: 1.0, reputation: 0.0, load: 0.0, priority: 0.0 },
        bid_window: 1_000_000,
        lease: 60_000_000,
        heartbeat_interval: 20_000_000,
        report_resend: 20_000_000,
        message_ttl: 120_000_000,
        terminal_retention: 1_000_000,
        ..EngineConfig::default()
    };
    let profile = ContractorProfile { capacity: 1, queue_limit: 100_000, ..ContractorProfile::new(["work"]) };
    let work = Sized(arrivals.iter().map(|a| a.1).collect());
    let mut sim = Sim::new(engine, LoopConfig::default(), &work, vec![profile; agents], seed);
    let mut submitted_at = Vec::with_capacity(arrivals.len());
    for (i, &(at, size)) in arrivals.iter().enumerate() {
        sim.run_until((at * 1e6).round() as Micros);
        let mut spec = Sim::<Sized>::spec("work", i);
        spec.size = size;
        submitted_at.push(sim.now());
        sim.submit(i, spec);
    }
    sim.run();
    let completion = sim
        .submitted
        .iter()
        .zip(&submitted_at)
        .filter(|(t, _)| sim.finished.get(*t).is_some_and(|(s, _)| *s == TaskState::Completed))
        .map(|(t, at)| (sim.finished_at[t] - at) as f64 / 1e6)
        .collect();
    (completion, sim.delivered, sim.events)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Runs `policies` on one seeded online workload.
pub fn run_online(
    name: &str,
    w: Online,
    seed: u64,
    policies: &[OnlinePolicy],
) -> Result<OnlineReport, SimError> {
    let started = Instant::now();
    let arrivals = w.arrivals(seed);
    let reference = dispatch(w.agents, &arrivals, Dispatch::ShortestQueue, seed).mean_completion();
    let mut events = 0;
    let mut results = Vec::new();
    for &policy in policies {
        let (mut completion, messages) = match policy {
            OnlinePolicy::Baseline(p) => (dispatch(w.agents, &arrivals, p, seed).completion, 0),
            OnlinePolicy::Cnp { d } | OnlinePolicy::CnpLate { d } => {
                let late = matches!(policy, OnlinePolicy::CnpLate { .. });
                let (c, m, e) = cnp(w.agents, &arrivals, d, late, seed);
                events += e;
                (c, m)
            }
        };
        let completed = completion.len();
        let mean = completion.iter().sum::<f64>() / completed.max(1) as f64;
        completion.sort_by(f64::total_cmp);
        results.push(OnlineResult {
            policy: policy.name(),
            d: policy.d(),
            late_binding: matches!(policy, OnlinePolicy::CnpLate { .. }),
            completed,
            mean_s: round(mean, 4),
            p50_s: round(quantile(&completion, 0.5), 4),
            p99_s: round(quantile(&completion, 0.99), 4),
            ratio_to_reference: round(mean / reference, 4),
            messages_per_task: round(messages as f64 / w.tasks as f64, 2),
        });
    }
    let wall_s = started.elapsed().as_secs_f64();
    let perf = Perf {
        wall_s: round(wall_s, 3),
        events,
        events_per_s: (events as f64 / wall_s.max(1e-9)).round(),
        peak_rss_mb: peak_rss_mb(),
    };
    Ok(OnlineReport {
        preset: name.to_owned(),
        seed,
        agents: w.agents,
        tasks: w.tasks,
        load: w.load,
        results,
        perf,
    })
}

impl OnlineReport {
    /// A table for the terminal.
    pub fn table(&self) -> String {
        let mut out = format!(
            "preset {} seed {}: {} agents, {} tasks, load {}\n{:<24} {:>9} {:>9} {:>9} {:>8} {:>10} {:>4} {:>9}\n",
            self.preset,
            self.seed,
            self.agents,
            self.tasks,
            self.load,
            "policy",
            "mean_s",
            "p50_s",
            "p99_s",
            "ratio",
            "msgs/task",
            "d",
            "completed"
        );
        for r in &self.results {
            let d = r.d.map_or("n/a".to_owned(), |d| d.to_string());
            out.push_str(&format!(
                "{:<24} {:>9.4} {:>9.4} {:>9.4} {:>8.4} {:>10.2} {:>4} {:>9}\n",
                r.policy,
                r.mean_s,
                r.p50_s,
                r.p99_s,
                r.ratio_to_reference,
                r.messages_per_task,
                d,
                r.completed
            ));
        }
        out
    }
}
