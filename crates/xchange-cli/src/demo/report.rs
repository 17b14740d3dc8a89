//! The demo's summary: a table for people, one JSON object for scripts.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use xchange_core::Counters;

use super::{DemoArgs, WorkerInfo};
use crate::stats::Latencies;

/// What a demo run did.
pub(crate) struct Summary {
    fields: Vec<(&'static str, Value)>,
    workers: Vec<(String, f64, u64, f64, u64, u64)>,
    failures: Vec<String>,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        args: &DemoArgs,
        completed: u64,
        failures: Vec<String>,
        engines: Counters,
        messages: u64,
        latencies: &Latencies,
        wall: Duration,
        workers: Vec<WorkerInfo>,
        reassigned_by: std::collections::BTreeMap<&'static str, u64>,
    ) -> Self {
        let crashes: u64 = workers
            .iter()
            .filter_map(|w| w.worker.crashes.as_ref())
            .map(|c| c.count.load(Ordering::Relaxed))
            .sum();
        let wall_s = wall.as_secs_f64();
        let fields = vec![
            ("seed", json!(args.seed)),
            ("jobs_submitted", json!(args.jobs)),
            ("jobs_completed", json!(completed)),
            ("jobs_failed", json!(failures.len())),
            ("contracts", json!(engines.contracts)),
            ("reassignments", json!(engines.reassignments)),
            ("declined_awards", json!(engines.declined_awards)),
            ("reassigned_by", json!(reassigned_by)),
            ("lease_expiries", json!(engines.lease_expiries)),
            ("subcontracts", json!(engines.subcontracts)),
            ("retries", json!(engines.retries)),
            ("verifications", json!(engines.verifications)),
            ("rejected_results", json!(engines.rejected_results)),
            ("crashes", json!(crashes)),
            ("crash_rate", json!(args.crash_rate)),
            ("messages", json!(messages)),
            ("p50_ms", json!(latencies.quantile(0.5) as f64 / 1000.0)),
            ("p99_ms", json!(latencies.quantile(0.99) as f64 / 1000.0)),
            ("wall_s", json!((wall_s * 1000.0).round() / 1000.0)),
            ("jobs_per_s", json!(((completed as f64 / wall_s) * 10.0).round() / 10.0)),
        ];
        let workers = workers
            .iter()
            .map(|w| {
                let rate = w.worker.crashes.as_ref().map_or(0.0, |c| c.rate);
                let crashes = w.worker.crashes.as_ref().map_or(0, |c| c.count.load(Ordering::Relaxed));
                (
                    w.name.clone(),
                    w.worker.speed,
                    w.price,
                    rate,
                    w.worker.executions.load(Ordering::Relaxed),
                    crashes,
                )
            })
            .collect();
        Self { fields, workers, failures }
    }

    /// One JSON object on one line.
    pub(crate) fn json(&self) -> String {
        let mut obj = serde_json::Map::new();
        for (k, v) in &self.fields {
            obj.insert((*k).to_owned(), v.clone());
        }
        obj.insert("failure_reasons".into(), json!(self.failures.iter().take(5).collect::<Vec<_>>()));
        Value::Object(obj).to_string()
    }

    /// A table for the terminal.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Xchange demo: document analysis by a society of agents\n");
        for (k, v) in &self.fields {
            let _ = writeln!(out, "  {k:<18} {v}");
        }
        let _ = writeln!(
            out,
            "\n  {:<26} {:>7} {:>7} {:>7} {:>10} {:>8}",
            "worker", "speed", "price", "crash%", "executions", "crashes"
        );
        for (name, speed, price, rate, executions, crashes) in &self.workers {
            let _ = writeln!(
                out,
                "  {name:<26} {speed:>7.0} {price:>7} {:>7.1} {executions:>10} {crashes:>8}",
                rate * 100.0
            );
        }
        for reason in self.failures.iter().take(5) {
            let _ = writeln!(out, "  failed: {reason}");
        }
        out
    }
}
