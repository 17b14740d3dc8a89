//! `xchange sim`: the simulator on virtual time (no tokio). Prints a table, or with
//! `--json` the table then one JSON object on the last line.

use anyhow::Context as _;
use clap::Args;
use xchange_sim::{Policy, Preset};

/// Compare allocation policies on identical seeded instances, against the optimum.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Workload preset: `batch` (200 agents, 200 tasks, random costs, one task per agent),
    /// `online` (10,000 agents, 100,000 Poisson arrivals at 80 % load, exponential sizes),
    /// `online-pareto` (the same with Pareto sizes), `churn` (`online` with 30 % of the
    /// agents crashing and recovering), `ci` (the size CI runs), `million` (1,000,000 agents,
    /// 10,000,000 tasks).
    #[arg(long, default_value = "batch")]
    preset: String,
    /// Policy to run: hungarian, greedy, random, cnp-oneshot, cnp-iterated, or all
    /// (repeatable; default all).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Seed of the instance and of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override the preset's number of agents.
    #[arg(long)]
    agents: Option<usize>,
    /// Override the preset's number of tasks.
    #[arg(long)]
    tasks: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Also write the results as CSV (one line per policy) to this file.
    #[arg(long, value_name = "PATH")]
    csv: Option<std::path::PathBuf>,
}

fn write_csv(path: Option<&std::path::Path>, csv: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    if let Some(online) = xchange_sim::online_preset(&args.preset, args.agents, args.tasks) {
        anyhow::ensure!(
            args.policies.is_empty() || args.policies.iter().all(|p| p == "all"),
            "the online presets run their own policies; --policy is for batch"
        );
        let bar = indicatif::ProgressBar::new(online.workload.tasks as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} tasks {elapsed}")
                .expect("valid progress template"),
        );
        let report = xchange_sim::run_online_observed(&args.preset, online, args.seed, &mut |p| {
            bar.set_prefix(format!("{}/{} {:<22}", p.step + 1, p.steps, p.policy));
            bar.set_position(p.submitted as u64);
        })?;
        bar.finish_and_clear();
        write_csv(args.csv.as_deref(), &report.to_csv())?;
        print!("{}", report.table());
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        return Ok(());
    }
    let mut preset: Preset = args.preset.parse()?;
    let Preset::Batch { agents, tasks } = preset;
    preset = preset.sized(args.agents.unwrap_or(agents), args.tasks.unwrap_or(tasks));
    let policies = Policy::parse_list(&args.policies)?;
    let report = xchange_sim::run(preset, args.seed, &policies)?;
    write_csv(args.csv.as_deref(), &report.to_csv())?;
    print!("{}", report.table());
    if args.json {
        println!("{}", report.to_json());
    }
    Ok(())
}
