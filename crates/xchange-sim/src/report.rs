//! Policies, their results, and the report: a table for the terminal and one JSON object
//! whose every field outside `perf` is a pure function of the seed and the workload.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use crate::baseline;
use crate::cnp;
use crate::error::SimError;
use crate::instance::{Batch, Preset};

/// How tasks are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// The optimum (Hungarian algorithm), no messages.
    Hungarian,
    /// Global greedy baseline, no messages.
    Greedy,
    /// Random perfect matching baseline, no messages.
    Random,
    /// One-shot contract net, broadcast announcements.
    CnpOneshot,
    /// Iterated contract net: an auction over provisional awards.
    CnpIterated,
}

impl Policy {
    /// Every policy that runs today, in report order.
    pub const AVAILABLE: [Self; 5] =
        [Self::Hungarian, Self::Greedy, Self::Random, Self::CnpOneshot, Self::CnpIterated];

    /// The policy's name on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hungarian => "hungarian",
            Self::Greedy => "greedy",
            Self::Random => "random",
            Self::CnpOneshot => "cnp-oneshot",
            Self::CnpIterated => "cnp-iterated",
        }
    }

    /// Parses a list of names; `all` (or an empty list) means every available policy.
    /// Duplicates are dropped; the order is the report order.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Self>, SimError> {
        let mut out = Vec::new();
        for name in names {
            match name.as_ref() {
                "all" => out.extend(Self::AVAILABLE),
                other => out.push(other.parse()?),
            }
        }
        if out.is_empty() {
            out.extend(Self::AVAILABLE);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

impl std::str::FromStr for Policy {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Hungarian, Self::Greedy, Self::Random, Self::CnpOneshot, Self::CnpIterated]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| SimError::UnknownPolicy(s.to_owned()))
    }
}

/// One policy's result on the instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// The policy.
    pub policy: &'static str,
    /// Sum of costs of the committed allocation.
    pub cost: u64,
    /// `cost` divided by the Hungarian optimum (4 decimals).
    pub ratio_to_optimum: f64,
    /// Tasks completed.
    pub completed: usize,
    /// Messages delivered per task (2 decimals; 0 for policies without messages).
    pub messages_per_task: f64,
    /// Agents sampled per call for proposals; `None` for broadcast and for baselines.
    pub d: Option<u32>,
    /// Whether late binding was used.
    pub late_binding: bool,
    /// Bytes per task of those messages, encoded as JSON (from a fixed sample of one message
    /// in 64; contract-net policies).
    pub bytes_per_task: Option<f64>,
    /// Awards made, provisional ones included (contract-net policies).
    pub awards: Option<u64>,
    /// Provisional awards moved to a higher premium: the auction's rounds (iterated).
    pub moved_awards: Option<u64>,
}

/// Wall-clock figures: the only part of a report that changes between identical runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Perf {
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
    /// Events handled by the event loop (all contract-net runs together).
    pub events: u64,
    /// Events per wall-clock second.
    pub events_per_s: f64,
    /// Peak resident memory of the process (`VmHWM`), MiB, where the OS tells it.
    pub peak_rss_mb: Option<f64>,
}

/// The report of one `xchange sim` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The preset's name.
    pub preset: &'static str,
    /// The seed.
    pub seed: u64,
    /// Agents.
    pub agents: usize,
    /// Tasks.
    pub tasks: usize,
    /// One result per policy.
    pub results: Vec<PolicyResult>,
    /// Wall-clock figures.
    pub perf: Perf,
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// Message delay of the simulated network, µs.
pub const DELAY: u64 = 1_000;

/// Runs `policies` on the instance of `preset` drawn from `seed`.
pub fn run(preset: Preset, seed: u64, policies: &[Policy]) -> Result<Report, SimError> {
    let started = Instant::now();
    let Preset::Batch { agents, tasks } = preset;
    let batch = Batch::generate(agents, tasks, seed)?;
    let optimum = batch.cost_of(&baseline::hungarian(&batch)).max(1);
    let mut events = 0;
    let mut results = Vec::with_capacity(policies.len());
    let result = |policy: Policy, cost: u64, completed: usize, messages: u64| PolicyResult {
        policy: policy.name(),
        cost,
        ratio_to_optimum: round(cost as f64 / optimum as f64, 4),
        completed,
        messages_per_task: round(messages as f64 / tasks as f64, 2),
        d: None,
        late_binding: false,
        bytes_per_task: None,
        awards: None,
        moved_awards: None,
    };
    let with_run = |r: PolicyResult, run: &cnp::CnpRun| PolicyResult {
        bytes_per_task: Some(round(run.bytes / tasks as f64, 0)),
        awards: Some(run.awards),
        moved_awards: Some(run.moved_awards),
        ..r
    };
    for &policy in policies {
        let r = match policy {
            Policy::Hungarian => result(policy, optimum, tasks, 0),
            Policy::Greedy => result(policy, batch.cost_of(&baseline::greedy(&batch)), tasks, 0),
            Policy::Random => {
                let assignment = baseline::random(&batch, seed ^ 0x5eed_0000_0000_0001);
                result(policy, batch.cost_of(&assignment), tasks, 0)
            }
            Policy::CnpOneshot => {
                let run = cnp::oneshot(&batch, seed, DELAY);
                events += run.events;
                with_run(result(policy, run.cost, run.completed, run.delivered), &run)
            }
            Policy::CnpIterated => {
                let run = cnp::iterated(&batch, seed, DELAY);
                events += run.events;
                with_run(result(policy, run.cost, run.completed, run.delivered), &run)
            }
        };
        results.push(r);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let perf = Perf {
        wall_s: round(wall_s, 3),
        events,
        events_per_s: round(events as f64 / wall_s.max(1e-9), 0),
        peak_rss_mb: peak_rss_mb(),
    };
    Ok(Report { preset: preset.name(), seed, agents, tasks, results, perf })
}

/// Peak resident memory from `/proc/self/status` (`VmHWM`), MiB; `None` off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0, 1))
}

impl Report {
    /// One CSV line per policy, with the run's settings repeated on each (no `perf`).
    pub fn to_csv(&self) -> String {
        crate::metrics::report_csv(self)
    }

    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report serializes")
    }

    /// The report as a table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "preset {} seed {}: {} agents, {} tasks",
            self.preset, self.seed, self.agents, self.tasks
        );
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>8} {:>10} {:>10} {:>5} {:>12} {:>8} {:>8}",
            "policy", "cost", "ratio", "completed", "msgs/task", "d", "late_binding", "awards", "moved"
        );
        for r in &self.results {
            let na = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
            let d = na(r.d.map(u64::from));
            let _ = writeln!(
                out,
                "{:<14} {:>10} {:>8.4} {:>10} {:>10.2} {:>5} {:>12} {:>8} {:>8}",
                r.policy,
                r.cost,
                r.ratio_to_optimum,
                r.completed,
                r.messages_per_task,
                d,
                r.late_binding,
                na(r.awards),
                na(r.moved_awards)
            );
        }
        let p = &self.perf;
        let rss = p.peak_rss_mb.map_or_else(|| "n/a".to_owned(), |m| format!("{m} MiB"));
        let _ = writeln!(
            out,
            "perf: {:.3} s wall, {} events, {:.0} events/s, peak RSS {rss}",
            p.wall_s, p.events, p.events_per_s
        );
        out
    }
}
