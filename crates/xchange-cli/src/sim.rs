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
    /// 10,000,000 tasks), `online-hetero` (agents of three speeds and four skills).
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
    /// Online presets: a TOML workload file (a preset and its changes; see
    /// docs/simulation.md). The flags below override it.
    #[arg(long, value_name = "FILE")]
    workload: Option<std::path::PathBuf>,
    /// Online presets: offered load (of the agents' total speed).
    #[arg(long)]
    load: Option<f64>,
    /// Online presets: probability that a message is lost.
    #[arg(long)]
    loss: Option<f64>,
    /// Online presets: `poisson` or `bursty` arrivals.
    #[arg(long, value_parser = ["poisson", "bursty"])]
    arrivals: Option<String>,
    /// Online presets: fraction of agents that crash once (and recover 2-10 s later).
    #[arg(long, value_name = "FRACTION")]
    churn: Option<f64>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Also write the results as CSV (one line per policy) to this file.
    #[arg(long, value_name = "PATH")]
    csv: Option<std::path::PathBuf>,
    /// Online presets: also run the preset at loads 0.5 to 0.9 and draw, in this folder (SVG
    /// and PNG), mean completion time against load per policy, and the load balance.
    #[arg(long, value_name = "DIR")]
    plot: Option<std::path::PathBuf>,
}

/// Loads of the sweep behind `--plot`, besides the preset's own.
const SWEEP: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

fn run_with_bar(
    name: &str,
    preset: xchange_sim::OnlinePreset,
    seed: u64,
) -> anyhow::Result<xchange_sim::OnlineReport> {
    let bar = indicatif::ProgressBar::new(preset.workload.tasks as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} tasks {elapsed}")
            .expect("valid progress template"),
    );
    let load = preset.workload.load;
    let report = xchange_sim::run_online_observed(name, preset, seed, &mut |p| {
        bar.set_prefix(format!("load {load} {}/{} {:<22}", p.step + 1, p.steps, p.policy));
        bar.set_position(p.submitted as u64);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Runs the other loads of the sweep and draws the two charts.
fn plot(
    dir: &std::path::Path,
    name: &str,
    seed: u64,
    preset: xchange_sim::OnlinePreset,
    main: &xchange_sim::OnlineReport,
) -> anyhow::Result<()> {
    use xchange_sim::plot::{Balance, LoadCurve, completion_vs_load, load_balance};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut reports = vec![main.clone()];
    for load in SWEEP.into_iter().filter(|l| (l - preset.workload.load).abs() > 1e-9) {
        let mut at = preset;
        at.workload.load = load;
        reports.push(run_with_bar(name, at, seed)?);
    }
    reports.sort_by(|a, b| a.load.total_cmp(&b.load));
    let curves: Vec<LoadCurve> = main
        .results
        .iter()
        .map(|r| LoadCurve {
            policy: r.policy.clone(),
            points: reports
                .iter()
                .filter_map(|rep| {
                    rep.results.iter().find(|x| x.policy == r.policy).map(|x| (rep.load, x.mean_s))
                })
                .collect(),
        })
        .collect();
    let balance: Vec<Balance> = main
        .results
        .iter()
        .map(|r| Balance { policy: r.policy.clone(), jain: r.jain_fairness, cov: r.work_cov })
        .collect();
    let what = format!("{name}, {} agents, seed {seed}", main.agents);
    let mut written = completion_vs_load(
        &format!("Mean completion time against load ({what})"),
        &curves,
        &dir.join(format!("{name}-completion-vs-load")),
    )?;
    written.extend(load_balance(
        &format!("Load balance at load {} ({what})", main.load),
        &balance,
        &dir.join(format!("{name}-load-balance")),
    )?);
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn write_csv(path: Option<&std::path::Path>, csv: &str) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The online preset with the workload file and the flags applied, if this is an online run.
fn online_workload(args: &SimArgs) -> anyhow::Result<Option<(String, xchange_sim::OnlinePreset)>> {
    use xchange_sim::{ArrivalsSpec, ChurnSpec, WorkloadChanges};
    let mut changes = match &args.workload {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            WorkloadChanges::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None if xchange_sim::ONLINE_PRESETS.contains(&args.preset.as_str()) => {
            WorkloadChanges { preset: args.preset.clone(), ..WorkloadChanges::default() }
        }
        None => {
            let online_only =
                [args.load.is_some(), args.loss.is_some(), args.arrivals.is_some(), args.churn.is_some()];
            anyhow::ensure!(
                !online_only.contains(&true),
                "--load, --loss, --arrivals and --churn change online presets; {} is not one",
                args.preset
            );
            return Ok(None);
        }
    };
    changes.agents = args.agents.or(changes.agents);
    changes.tasks = args.tasks.or(changes.tasks);
    changes.load = args.load.or(changes.load);
    changes.loss = args.loss.or(changes.loss);
    if let Some(a) = &args.arrivals {
        changes.arrivals = Some(if a == "bursty" { ArrivalsSpec::Bursty } else { ArrivalsSpec::Poisson });
    }
    if let Some(fraction) = args.churn {
        let recover_after_s = changes.churn.map_or([2.0, 10.0], |c| c.recover_after_s);
        changes.churn = Some(ChurnSpec { fraction, recover_after_s });
    }
    let preset = changes.apply()?;
    Ok(Some((changes.preset, preset)))
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    if let Some((name, online)) = online_workload(&args)? {
        anyhow::ensure!(
            args.policies.is_empty() || args.policies.iter().all(|p| p == "all"),
            "the online presets run their own policies; --policy is for batch"
        );
        let report = run_with_bar(&name, online, args.seed)?;
        write_csv(args.csv.as_deref(), &report.to_csv())?;
        if let Some(dir) = &args.plot {
            plot(dir, &name, args.seed, online, &report)?;
        }
        print!("{}", report.table());
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        return Ok(());
    }
    anyhow::ensure!(args.plot.is_none(), "--plot draws the online presets (completion time against load)");
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
