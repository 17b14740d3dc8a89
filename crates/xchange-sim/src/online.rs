//! The online presets: tasks arrive over time at identical agents, and the completion
//! time of each task (arrival to result) is compared with the omniscient reference.
//!
//! Contract-net policies run the real engines on the simulator's event loop: the manager
//! samples `d` agents per task, each bids its estimated time (its queue and the task's
//! size), and the manager awards the fastest; the task is then queued at that agent. The
//! baselines place tasks without messages (`queueing.rs`).

use std::time::Instant;

use serde::Serialize;
use xchange_core::{Announce, ContractorProfile, DetRng, EngineConfig, Micros, ScoreWeights};
use xchange_protocol::{TaskSpec, TaskState};

use crate::error::SimError;
use crate::hetero::{Pool, SKILLS, dispatch_hetero};
use crate::metrics::{coefficient_of_variation, jain, quantile, round};
use crate::queueing::{Arrivals, Dispatch, Dispatched, Online, Sizes, dispatch, unit};
use crate::report::{Perf, peak_rss_mb};
use crate::sim::{LoopConfig, Sim, Workload};

/// The online presets.
pub const ONLINE_PRESETS: &[&str] = &["online", "online-pareto", "online-hetero", "churn", "ci", "million"];

/// Agents that crash during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// Fraction of agents that crash once, at a uniformly random time while tasks arrive.
    pub fraction: f64,
    /// A crashed agent comes back (with an empty engine) after a time drawn uniformly from
    /// this range, seconds.
    pub recover_after_s: (f64, f64),
}

/// An online preset: the workload, crashes if any, and the policies it compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnlinePreset {
    /// Arrivals and agents.
    pub workload: Online,
    /// Crashes.
    pub churn: Option<Churn>,
    /// Policies run, the omniscient reference first.
    pub policies: &'static [OnlinePolicy],
    /// Agents of several speeds and skills ([`Pool::heterogeneous`]) instead of identical ones.
    pub heterogeneous: bool,
    /// Probability that a message is lost.
    pub loss: f64,
}

/// An online preset by name, with the number of agents and tasks overridden if given:
/// - `online`: 10,000 identical agents, Poisson arrivals at 80 % load, exponential sizes of
///   mean 1 s, 1 ms message delay, 100,000 tasks; `online-pareto`: Pareto sizes (shape 2.5);
/// - `online-hetero`: agents of three speeds (0.5, 1, 2) offering random subsets of four
///   skills, each task needing one skill, load 80 % of the total speed; the reference sends
///   each task to the eligible agent that would finish it first;
/// - `churn`: `online` with 30 % of the agents crashing once and recovering 2-10 s later;
/// - `ci`: the size CI runs (10,000 agents, 100,000 tasks), fewer policies;
/// - `million`: 1,000,000 agents and 10,000,000 tasks, the reference and one contract net.
pub fn online_preset(name: &str, agents: Option<usize>, tasks: Option<usize>) -> Option<OnlinePreset> {
    use OnlinePolicy::{Baseline, Cnp, CnpLate};
    const CHURN: &[OnlinePolicy] =
        &[Baseline(Dispatch::ShortestQueue), Cnp { d: 2 }, CnpLate { d: 4 }, CnpLate { d: 5 }];
    const CI: &[OnlinePolicy] =
        &[Baseline(Dispatch::ShortestQueue), Baseline(Dispatch::PowerOfD(2)), Cnp { d: 2 }, CnpLate { d: 5 }];
    const MILLION: &[OnlinePolicy] = &[Baseline(Dispatch::ShortestQueue), Cnp { d: 2 }];
    let exponential = Sizes::Exponential { mean: 1.0 };
    let (sizes, churn, policies, default_agents, default_tasks) = match name {
        "online" | "online-hetero" => (exponential, None, OnlinePolicy::ALL, 10_000, 100_000),
        "online-pareto" => {
            (Sizes::Pareto { shape: 2.5, mean: 1.0 }, None, OnlinePolicy::ALL, 10_000, 100_000)
        }
        "churn" => {
            let churn = Churn { fraction: 0.3, recover_after_s: (2.0, 10.0) };
            (exponential, Some(churn), CHURN, 10_000, 100_000)
        }
        "ci" => (exponential, None, CI, 10_000, 100_000),
        "million" => (exponential, None, MILLION, 1_000_000, 10_000_000),
        _ => return None,
    };
    let workload = Online {
        agents: agents.unwrap_or(default_agents),
        tasks: tasks.unwrap_or(default_tasks),
        load: 0.8,
        sizes,
        arrivals: Arrivals::Poisson,
    };
    Some(OnlinePreset { workload, churn, policies, heterogeneous: name == "online-hetero", loss: 0.0 })
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
    /// Bytes of those messages per task, encoded as JSON (from a fixed sample of one
    /// message in 64).
    pub bytes_per_task: f64,
    /// Messages lost on the way (presets with message loss).
    pub messages_lost: u64,
    /// Tasks submitted that no agent finished (from the agents' ledger; must be 0).
    pub tasks_lost: usize,
    /// Tasks executed to the end more than once (from the agents' ledger).
    pub duplicate_executions: usize,
    /// Jain's fairness index of per-agent work (1 is perfectly even).
    pub jain_fairness: f64,
    /// Coefficient of variation of per-agent work.
    pub work_cov: f64,
    /// Work done over agent time available until the last completion.
    pub utilisation: f64,
    /// What crashes did (presets with churn, contract-net policies).
    pub crashes: Option<CrashSummary>,
}

/// Crashes and how fast the contract net recovered the work they hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrashSummary {
    /// Agents that crashed.
    pub crashes: u64,
    /// Crashes of agents holding at least one contract.
    pub holding_contracts: u64,
    /// Contracts lost in crashes.
    pub contracts_lost: u64,
    /// Contracts lost in crashes and placed again.
    pub reassigned: usize,
    /// Crash to reassignment, median, seconds.
    pub reassignment_p50_s: f64,
    /// Crash to reassignment, 99th percentile, seconds.
    pub reassignment_p99_s: f64,
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
    /// Fraction of agents that crash, if any.
    pub churn: Option<f64>,
    /// Whether agents differ in speed and skills.
    pub heterogeneous: bool,
    /// Probability that a message is lost.
    pub loss: f64,
    /// The arrival process.
    pub arrivals: Arrivals,
    /// One row per policy.
    pub results: Vec<OnlineResult>,
    /// Wall-clock figures (not a function of the seed).
    pub perf: Perf,
}

/// What the simulated agents know of an online workload: each task's size, and each agent's
/// speed (all 1 for identical agents).
struct Sized {
    sizes: Vec<f64>,
    speed: Option<Vec<f64>>,
}

impl Workload for Sized {
    fn task_index(&self, spec: &TaskSpec) -> Option<usize> {
        spec.input.get("task").and_then(serde_json::Value::as_u64).map(|t| t as usize)
    }

    fn price(&self, _: usize, _: usize) -> Option<u64> {
        Some(0)
    }

    fn duration(&self, agent: usize, task: usize) -> Micros {
        let speed = self.speed.as_ref().map_or(1.0, |s| s[agent]);
        (self.sizes[task] / speed * 1e6).round() as Micros
    }
}

/// The agents of a run.
enum Agents<'a> {
    /// This many identical agents offering one capability.
    Identical(usize),
    /// Agents of several speeds and skills, and the skill each task needs.
    Heterogeneous { pool: &'a Pool, skills: &'a [u8] },
}

fn skill_name(skill: u8) -> String {
    format!("skill-{skill}")
}

/// What one contract-net run gave.
struct CnpOutcome {
    completion: Vec<f64>,
    bytes: f64,
    lost: u64,
    /// Time of the last completion, seconds.
    makespan: f64,
    work: Vec<f64>,
    delivered: u64,
    events: u64,
    tasks_lost: usize,
    duplicates: usize,
    crashes: Option<CrashSummary>,
}

/// The contract net on `arrivals`: real engines on the event loop, with crashes if any.
fn cnp(
    agents: &Agents<'_>,
    arrivals: &[(f64, f64)],
    policy: (u32, bool),
    (churn, loss): (Option<Churn>, f64),
    seed: u64,
    tell: &mut dyn FnMut(usize),
) -> CnpOutcome {
    let (d, late) = policy;
    let mut engine = EngineConfig {
        announce: Announce::Sample(d),
        late_binding: late,
        // Time to result decides; every agent asks the same price.
        weights: ScoreWeights { price: 0.0, eta: 1.0, reputation: 0.0, load: 0.0, priority: 0.0 },
        bid_window: 1_000_000,
        lease: 60_000_000,
        heartbeat_interval: 20_000_000,
        report_resend: 20_000_000,
        message_ttl: 120_000_000,
        // Nothing here duplicates messages: a finished task need not be remembered long.
        terminal_retention: 200_000,
        events: true,
        ..EngineConfig::default()
    };
    if churn.is_some() || loss > 0.0 {
        // A crash is found when its lease lapses: short leases, frequent renewals, and a
        // bid window that does not wait long for an agent that will never answer.
        // A report is resent soon too: a result whose report was lost dies with its agent if
        // the agent crashes before resending it, and the task must then run again.
        engine = EngineConfig {
            lease: 2_000_000,
            heartbeat_interval: 500_000,
            bid_window: 50_000,
            report_resend: 500_000,
            ..engine
        };
    }
    let profile = ContractorProfile { capacity: 1, queue_limit: 100_000, ..ContractorProfile::new(["work"]) };
    let profiles = match agents {
        Agents::Identical(n) => vec![profile; *n],
        Agents::Heterogeneous { pool, .. } => {
            // One profile per (speed, skills) kind, shared by the agents of that kind.
            let mut kinds: Vec<((u64, u8), ContractorProfile)> = Vec::new();
            let mut of = |speed: f64, mask: u8| {
                let key = (speed.to_bits(), mask);
                if let Some((_, p)) = kinds.iter().find(|(k, _)| *k == key) {
                    return p.clone();
                }
                let names = (0..SKILLS as u8).filter(|k| mask & (1 << k) != 0).map(skill_name);
                let p = ContractorProfile {
                    speed,
                    capacity: 1,
                    queue_limit: 100_000,
                    ..ContractorProfile::new(names)
                };
                kinds.push((key, p.clone()));
                p
            };
            pool.speed.iter().zip(&pool.skills).map(|(&s, &m)| of(s, m)).collect()
        }
    };
    let n = profiles.len();
    let speed = match agents {
        Agents::Identical(_) => None,
        Agents::Heterogeneous { pool, .. } => Some(pool.speed.clone()),
    };
    let work = Sized { sizes: arrivals.iter().map(|a| a.1).collect(), speed };
    let mut sim = Sim::new(engine, LoopConfig { loss, ..LoopConfig::default() }, &work, profiles, seed);
    if let Some(churn) = churn {
        schedule_crashes(&mut sim, n, arrivals.last().map_or(0.0, |a| a.0), churn, seed);
    }
    let mut submitted_at = Vec::with_capacity(arrivals.len());
    for (i, &(at, size)) in arrivals.iter().enumerate() {
        sim.run_until(seconds_to_micros(at));
        let capability = match agents {
            Agents::Identical(_) => "work".to_owned(),
            Agents::Heterogeneous { skills, .. } => skill_name(skills[i]),
        };
        let mut spec = Sim::<Sized>::spec(&capability, i);
        spec.size = size;
        submitted_at.push(sim.now());
        sim.submit(i, spec);
        if i % 16_384 == 0 {
            tell(i);
        }
    }
    sim.run();
    let completion = sim
        .outcomes
        .iter()
        .zip(&submitted_at)
        .filter_map(|(o, at)| o.filter(|o| o.state == TaskState::Completed).map(|o| (o.at - at) as f64 / 1e6))
        .collect();
    // The agents' own ledger: who finished what, independent of the engines' counts.
    let busy: Vec<f64> = sim.agent_tally.iter().map(|a| a.busy as f64 / 1e6).collect();
    let crashes = churn.map(|_| {
        let c = &sim.crash_ledger;
        let mut delays: Vec<f64> = c.crash_to_reassignment.iter().map(|&d| d as f64 / 1e6).collect();
        delays.sort_by(f64::total_cmp);
        CrashSummary {
            crashes: c.crashes,
            holding_contracts: c.crashes_holding_contracts,
            contracts_lost: c.contracts_lost,
            reassigned: delays.len(),
            reassignment_p50_s: round(quantile(&delays, 0.5), 4),
            reassignment_p99_s: round(quantile(&delays, 0.99), 4),
        }
    });
    CnpOutcome {
        completion,
        bytes: sim.mean_message_bytes() * sim.delivered as f64,
        lost: sim.lost,
        makespan: sim.outcomes.iter().flatten().map(|o| o.at).max().map_or(0.0, |t| t as f64 / 1e6),
        work: busy,
        delivered: sim.delivered,
        events: sim.events,
        tasks_lost: sim.task_tally.iter().filter(|t| t.finished == 0).count() + arrivals.len()
            - sim.submitted,
        duplicates: sim.task_tally.iter().filter(|t| t.finished > 1).count(),
        crashes,
    }
}

fn seconds_to_micros(s: f64) -> Micros {
    (s * 1e6).round() as Micros
}

/// Crashes `churn.fraction` of the agents, each once, at uniform times in `[0, span)`.
fn schedule_crashes<W: Workload>(sim: &mut Sim<'_, W>, agents: usize, span: f64, churn: Churn, seed: u64) {
    let mut rng = DetRng::new(seed ^ 0xc4a5_4000);
    let mut order: Vec<usize> = (0..agents).collect();
    let count = ((agents as f64) * churn.fraction).round() as usize;
    let (low, high) = churn.recover_after_s;
    for i in 0..count.min(agents) {
        let j = i + rng.below(agents - i);
        order.swap(i, j);
        let at = seconds_to_micros(unit(&mut rng) * span);
        let recover = seconds_to_micros(low + unit(&mut rng) * (high - low));
        sim.crash_at(order[i], at, recover);
    }
}

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The policy running.
    pub policy: &'a str,
    /// Its position among the preset's policies, from 0.
    pub step: usize,
    /// How many policies the preset runs.
    pub steps: usize,
    /// Tasks submitted so far in this policy's run.
    pub submitted: usize,
    /// Tasks in the workload.
    pub tasks: usize,
}

/// Runs the preset's policies on one seeded online workload.
pub fn run_online(name: &str, preset: OnlinePreset, seed: u64) -> Result<OnlineReport, SimError> {
    run_online_observed(name, preset, seed, &mut |_| {})
}

/// [`run_online`], telling `observe` how far it is now and then (wall-clock work only: the
/// report does not depend on it).
pub fn run_online_observed(
    name: &str,
    preset: OnlinePreset,
    seed: u64,
    observe: &mut dyn FnMut(Progress<'_>),
) -> Result<OnlineReport, SimError> {
    let started = Instant::now();
    let w = preset.workload;
    let pool = preset.heterogeneous.then(|| Pool::heterogeneous(w.agents, seed));
    let arrivals = w.arrivals_for(pool.as_ref().map_or(w.agents as f64, Pool::capacity), seed);
    let skills = pool.as_ref().map(|_| Pool::task_skills(arrivals.len(), seed)).unwrap_or_default();
    let agents = match &pool {
        Some(pool) => Agents::Heterogeneous { pool, skills: &skills },
        None => Agents::Identical(w.agents),
    };
    let place = |p: Dispatch| match &agents {
        Agents::Identical(n) => dispatch(*n, &arrivals, p, seed),
        Agents::Heterogeneous { pool, skills } => dispatch_hetero(pool, &arrivals, skills, p, seed),
    };
    // The reference is usually the first policy run too: place it once.
    let mut reference_run = Some(place(Dispatch::ShortestQueue));
    let reference = reference_run.as_ref().map_or(1.0, Dispatched::mean_completion);
    let mut events = 0;
    let mut results = Vec::new();
    let steps = preset.policies.len();
    for (step, &policy) in preset.policies.iter().enumerate() {
        let label = policy.name();
        let mut tell =
            |submitted| observe(Progress { policy: &label, step, steps, submitted, tasks: w.tasks });
        tell(0);
        let run = match policy {
            OnlinePolicy::Baseline(p) => {
                let placed = match p {
                    Dispatch::ShortestQueue => reference_run.take().unwrap_or_else(|| place(p)),
                    _ => place(p),
                };
                let makespan =
                    arrivals.iter().zip(&placed.completion).map(|(a, c)| a.0 + c).fold(0.0, f64::max);
                CnpOutcome {
                    bytes: 0.0,
                    lost: 0,
                    makespan,
                    completion: placed.completion,
                    work: placed.work,
                    delivered: 0,
                    events: 0,
                    tasks_lost: 0,
                    duplicates: 0,
                    crashes: None,
                }
            }
            OnlinePolicy::Cnp { d } => {
                cnp(&agents, &arrivals, (d, false), (preset.churn, preset.loss), seed, &mut tell)
            }
            OnlinePolicy::CnpLate { d } => {
                cnp(&agents, &arrivals, (d, true), (preset.churn, preset.loss), seed, &mut tell)
            }
        };
        tell(w.tasks);
        events += run.events;
        results.push(summarise(policy, run, &arrivals, reference));
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
        churn: preset.churn.map(|c| c.fraction),
        heterogeneous: preset.heterogeneous,
        loss: preset.loss,
        arrivals: w.arrivals,
        results,
        perf,
    })
}

fn summarise(
    policy: OnlinePolicy,
    mut run: CnpOutcome,
    arrivals: &[(f64, f64)],
    reference: f64,
) -> OnlineResult {
    let completed = run.completion.len();
    let mean = run.completion.iter().sum::<f64>() / completed.max(1) as f64;
    run.completion.sort_by(f64::total_cmp);
    let capacity = run.makespan * run.work.len() as f64;
    OnlineResult {
        policy: policy.name(),
        d: policy.d(),
        late_binding: matches!(policy, OnlinePolicy::CnpLate { .. }),
        completed,
        mean_s: round(mean, 4),
        p50_s: round(quantile(&run.completion, 0.5), 4),
        p99_s: round(quantile(&run.completion, 0.99), 4),
        ratio_to_reference: round(mean / reference, 4),
        messages_per_task: round(run.delivered as f64 / arrivals.len().max(1) as f64, 2),
        bytes_per_task: round(run.bytes / arrivals.len().max(1) as f64, 0),
        messages_lost: run.lost,
        tasks_lost: run.tasks_lost,
        duplicate_executions: run.duplicates,
        jain_fairness: round(jain(&run.work), 4),
        work_cov: round(coefficient_of_variation(&run.work), 4),
        utilisation: round(if capacity > 0.0 { run.work.iter().sum::<f64>() / capacity } else { 0.0 }, 4),
        crashes: run.crashes,
    }
}

impl OnlineReport {
    /// One CSV line per policy, with the run's settings repeated on each (no `perf`).
    pub fn to_csv(&self) -> String {
        crate::metrics::report_csv(self)
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        let churn = self.churn.map_or(String::new(), |c| format!(", {:.0} % of agents crash", c * 100.0));
        let mut out = format!(
            "preset {} seed {}: {} agents, {} tasks, load {}{churn}\n{:<22} {:>8} {:>8} {:>8} {:>7} {:>9} {:>3} {:>9} {:>5} {:>4} {:>6} {:>6} {:>14}\n",
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
            "completed",
            "lost",
            "dup",
            "jain",
            "util",
            "crash->re p50/p99"
        );
        for r in &self.results {
            let d = r.d.map_or("n/a".to_owned(), |d| d.to_string());
            let crash = r.crashes.as_ref().map_or("n/a".to_owned(), |c| {
                format!("{:.2}/{:.2}s", c.reassignment_p50_s, c.reassignment_p99_s)
            });
            out.push_str(&format!(
                "{:<22} {:>8.4} {:>8.4} {:>8.4} {:>7.4} {:>9.2} {:>3} {:>9} {:>5} {:>4} {:>6.4} {:>6.4} {:>14}\n",
                r.policy,
                r.mean_s,
                r.p50_s,
                r.p99_s,
                r.ratio_to_reference,
                r.messages_per_task,
                d,
                r.completed,
                r.tasks_lost,
                r.duplicate_executions,
                r.jain_fairness,
                r.utilisation,
                crash
            ));
        }
        let p = &self.perf;
        let rss = p.peak_rss_mb.map_or_else(|| "n/a".to_owned(), |m| format!("{m} MiB"));
        out.push_str(&format!(
            "perf: {:.3} s wall, {} events, {:.0} events/s, peak RSS {rss}\n",
            p.wall_s, p.events, p.events_per_s
        ));
        out
    }
}
