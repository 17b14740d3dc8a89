//! The soak's samples (a row every window, from the load and /proc) and its summary: the
//! table per minute and the least-squares slopes of memory and p99.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Load, Window};
use crate::stats::Latencies;

const HEADER: &str = "t_s,submitted,refused,completed,failed,unfinished,p50_ms,p99_ms,submit_p99_ms,rss_mib,\
                      threads,fds,cpu_pct,node_completed";

/// One window of the soak: what the summary needs of it.
pub(super) struct Sample {
    t_s: f64,
    window: Window,
    rss_mib: f64,
}

/// Takes a sample every window, printing it as a row and appending it to the CSV file.
pub(super) struct Sampler {
    pub(super) load: Arc<Load>,
    pub(super) pid: u32,
    pub(super) base: String,
    pub(super) csv: Option<std::fs::File>,
}

impl Sampler {
    pub(super) async fn run(mut self, every: u64, secs: u64) -> anyhow::Result<Vec<Sample>> {
        self.row(HEADER)?;
        let start = Instant::now();
        let mut tick =
            tokio::time::interval_at((start + Duration::from_secs(every)).into(), Duration::from_secs(every));
        let (mut cpu, mut last) = (Proc::read(self.pid).cpu_ticks, start);
        let mut samples = Vec::new();
        while samples.len() < secs.div_ceil(every) as usize {
            tick.tick().await;
            let window = std::mem::replace(&mut *self.load.window.lock().expect("window"), Window::new());
            let serve = Proc::read(self.pid);
            // Ticks of 10 ms (USER_HZ is 100 on Linux): ticks per second are percent of a core.
            let cpu_pct = (serve.cpu_ticks - cpu) as f64 / last.elapsed().as_secs_f64();
            (cpu, last) = (serve.cpu_ticks, Instant::now());
            let metrics = self.load.http.get(format!("{}/metrics", self.base)).send().await;
            let text = match metrics {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let completed =
                text.lines().find_map(|l| l.strip_prefix("xchange_jobs_total{outcome=\"completed\"} "));
            let unfinished = self.load.pending.lock().expect("pending").len();
            let node_completed = completed.and_then(|n| n.parse().ok()).unwrap_or(0);
            // The scheduled time, so that a late tick does not move a sample into the next minute.
            let (t_s, w) = (((samples.len() + 1) as u64 * every) as f64, &window);
            let [p50, p99, sp99] =
                [w.ended.quantile(0.5), w.ended.quantile(0.99), w.accepted.quantile(0.99)].map(ms);
            let rss_mib = serve.rss_kib as f64 / 1024.0;
            let counts =
                [w.submitted, w.refused, w.completed, w.failed, unfinished as u64].map(|n| n.to_string());
            let row = format!(
                "{t_s:.0},{},{p50:.2},{p99:.2},{sp99:.2},{rss_mib:.1},{},{},{cpu_pct:.0},{node_completed}",
                counts.join(","),
                serve.threads,
                serve.fds
            );
            self.row(&row)?;
            samples.push(Sample { t_s, window, rss_mib });
        }
        Ok(samples)
    }

    fn row(&mut self, csv_line: &str) -> anyhow::Result<()> {
        println!("{}", csv_line.split(',').map(|f| format!("{f:>9}")).collect::<Vec<_>>().join(" "));
        if let Some(csv) = &mut self.csv {
            writeln!(csv, "{csv_line}")?;
        }
        Ok(())
    }
}

/// What /proc says about a process: resident memory, threads, open files, CPU time.
struct Proc {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    cpu_ticks: u64,
}

impl Proc {
    fn read(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            let line = status.lines().find_map(|l| l.strip_prefix(name));
            line.and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After the command name in parentheses: utime and stime are the 12th and 13th fields.
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        let ticks: u64 = after.split(' ').skip(11).take(2).filter_map(|n| n.parse::<u64>().ok()).sum();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        Self { rss_kib: field("VmRSS:"), threads: field("Threads:"), fds, cpu_ticks: ticks }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Prints the table per minute and returns the summary: the first and the last minute, and
/// the least-squares slopes of RSS and p99 per minute after the first (warm-up) minute.
pub(super) fn summarize(samples: &[Sample], load: &Load, max: Option<f64>, rate: f64) -> Value {
    let mut minutes: Vec<(u64, u64, Latencies, f64)> = Vec::new();
    println!("\n{:>6} {:>9} {:>9} {:>9} {:>9}", "minute", "completed", "p50_ms", "p99_ms", "rss_mib");
    for s in samples {
        let minute = (s.t_s / 60.0).ceil() as u64;
        if minutes.last().is_none_or(|m| m.0 != minute) {
            minutes.push((minute, 0, Latencies::new(), 0.0));
        }
        let m = minutes.last_mut().expect("pushed");
        m.1 += s.window.completed;
        m.2.merge(&s.window.ended);
        m.3 = s.rss_mib;
    }
    let row = |(minute, completed, lat, rss): &(u64, u64, Latencies, f64)| {
        println!(
            "{minute:>6} {completed:>9} {:>9.2} {:>9.2} {rss:>9.1}",
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99))
        );
        json!({"minute": minute, "completed": completed, "p50_ms": ms(lat.quantile(0.5)),
            "p99_ms": ms(lat.quantile(0.99)), "rss_mib": rss})
    };
    let table: Vec<Value> = minutes.iter().map(row).collect();
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.t_s > 60.0).collect();
    let slope =
        |y: &dyn Fn(&Sample) -> f64| fit(&warm.iter().map(|s| (s.t_s / 60.0, y(s))).collect::<Vec<_>>());
    let sum = |f: fn(&Window) -> u64| samples.iter().map(|s| f(&s.window)).sum::<u64>();
    json!({
        "bench": "soak",
        "max_per_s": max,
        "rate_per_s": rate,
        "submitted": sum(|w| w.submitted),
        "refused": sum(|w| w.refused),
        "completed": sum(|w| w.completed),
        "failed": sum(|w| w.failed),
        "unfinished": load.pending.lock().expect("pending").len(),
        "first_minute": table.first(),
        "last_minute": table.last(),
        "rss_slope_mib_per_min": slope(&|s| s.rss_mib),
        "p99_slope_ms_per_min": slope(&|s| ms(s.window.ended.quantile(0.99))),
        "minutes": table,
        "machine": crate::bench::machine(),
    })
}

/// The least-squares slope of `points` (none for fewer than two).
fn fit(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(x, y), p| (x + p.0 / n, y + p.1 / n));
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}
