//! Counters of the node, rendered in Prometheus' text format at `/metrics`.
//!
//! A handful of atomics written by hand: the `metrics` facade and its exporter would add a
//! global recorder and a dependency tree for what fits in this file.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use xchange_bus::BusCounters;
use xchange_core::Counters;
use xchange_protocol::Kind;
use xchange_runtime::RuntimeStats;

/// What the node counts itself.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) jobs_submitted: AtomicU64,
    pub(crate) jobs_replayed: AtomicU64,
    pub(crate) jobs_refused: AtomicU64,
    pub(crate) jobs_recovered: AtomicU64,
    pub(crate) jobs_completed: AtomicU64,
    pub(crate) jobs_failed: AtomicU64,
    pub(crate) jobs_cancelled: AtomicU64,
    pub(crate) jobs_expired: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) http_4xx: AtomicU64,
    pub(crate) http_5xx: AtomicU64,
    pub(crate) event_streams: AtomicU64,
}

impl Metrics {
    /// The text exposition of every counter.
    pub fn render(&self, runtime: &RuntimeStats, bus: &BusCounters) -> String {
        let mut out = String::new();
        let jobs = [
            ("submitted", &self.jobs_submitted),
            ("replayed", &self.jobs_replayed),
            ("refused", &self.jobs_refused),
            ("recovered", &self.jobs_recovered),
            ("completed", &self.jobs_completed),
            ("failed", &self.jobs_failed),
            ("cancelled", &self.jobs_cancelled),
            ("expired", &self.jobs_expired),
        ];
        header(&mut out, "xchange_jobs_total", "Jobs by what happened to them.");
        for (outcome, n) in jobs {
            let _ = writeln!(out, "xchange_jobs_total{{outcome=\"{outcome}\"}} {}", n.load(Relaxed));
        }
        header(&mut out, "xchange_http_errors_total", "Refused or failed HTTP requests by class.");
        let _ = writeln!(out, "xchange_http_errors_total{{class=\"4xx\"}} {}", self.http_4xx.load(Relaxed));
        let _ = writeln!(out, "xchange_http_errors_total{{class=\"5xx\"}} {}", self.http_5xx.load(Relaxed));
        header(&mut out, "xchange_store_errors_total", "Store writes that failed.");
        let _ = writeln!(out, "xchange_store_errors_total {}", self.store_errors.load(Relaxed));
        header(&mut out, "xchange_event_streams_total", "Event streams opened.");
        let _ = writeln!(out, "xchange_event_streams_total {}", self.event_streams.load(Relaxed));
        header(&mut out, "xchange_bus_delivered_total", "Protocol messages delivered by kind.");
        for kind in Kind::ALL {
            let n = bus.delivered_of(kind);
            let _ = writeln!(out, "xchange_bus_delivered_total{{kind=\"{}\"}} {n}", kind.as_str());
        }
        header(&mut out, "xchange_bus_refused_total", "Messages refused at the edge by code.");
        for (code, n) in &bus.refused {
            let _ = writeln!(out, "xchange_bus_refused_total{{code=\"{}\"}} {n}", code.name());
        }
        header(&mut out, "xchange_bus_dropped_total", "Messages that reached no subscriber.");
        let _ = writeln!(out, "xchange_bus_dropped_total {}", bus.dropped);
        header(
            &mut out,
            "xchange_bus_overflow_total",
            "Times the transport discarded messages this node was too slow to take (slow consumer).",
        );
        let _ = writeln!(out, "xchange_bus_overflow_total {}", bus.overflowed);
        header(&mut out, "xchange_bus_disconnects_total", "Times the bus connection was lost.");
        let _ = writeln!(out, "xchange_bus_disconnects_total {}", bus.disconnects);
        header(&mut out, "xchange_runtime_refused_total", "Inputs the engines refused.");
        let _ = writeln!(out, "xchange_runtime_refused_total {}", runtime.refused);
        header(&mut out, "xchange_runtime_executions_total", "Executions started by where they ran.");
        let _ = writeln!(
            out,
            "xchange_runtime_executions_total{{mode=\"inline\"}} {}",
            runtime.executions_inline
        );
        let _ = writeln!(
            out,
            "xchange_runtime_executions_total{{mode=\"spawned\"}} {}",
            runtime.executions_spawned
        );
        out
    }
}

/// The node's manager engine's own counters (contracts made, reassignments, lapsed leases,
/// reports refused for an older epoch, duplicate reports answered again, ...), one sample
/// per field of [`Counters`], so that a contract's history can be checked against them.
pub(crate) fn render_contracts(out: &mut String, counters: &Counters) {
    let name = "xchange_manager_counters_total";
    header(out, name, "What the node's manager engine has done since it started, by counter.");
    for (counter, n) in counters.fields() {
        let _ = writeln!(out, "{name}{{counter=\"{counter}\"}} {n}");
    }
}

/// The `HELP` and `TYPE` lines of a counter.
pub(crate) fn header(out: &mut String, name: &str, help: &str) {
    family(out, name, "counter", help);
}

/// The `HELP` and `TYPE` lines of a metric family of `kind` (counter, gauge).
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_a_comment_or_a_sample() {
        let m = Metrics::default();
        m.jobs_completed.fetch_add(3, Relaxed);
        let mut text = m.render(&RuntimeStats::default(), &BusCounters::default());
        render_contracts(&mut text, &Counters { stale_epoch: 2, ..Counters::default() });
        assert!(text.contains("xchange_manager_counters_total{counter=\"stale_epoch\"} 2"), "{text}");
        assert!(text.contains("xchange_jobs_total{outcome=\"completed\"} 3"), "{text}");
        for line in text.lines() {
            let sample = line.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<u64>().is_ok());
            assert!(line.starts_with("# ") || sample, "bad line {line:?}");
        }
    }
}
