//! The simulator on small batch instances: reproducibility, the optimum bounds every
//! policy, and the one-shot contract net completes every task exactly once.

use xchange_sim::{Batch, DELAY, Policy, Preset, Report, hungarian, iterated, oneshot, run};

const N: usize = 30;

fn small(seed: u64) -> Report {
    run(Preset::BATCH.sized(N, N), seed, &Policy::AVAILABLE).expect("runs")
}

fn without_perf(report: &Report) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    v.as_object_mut().expect("object").remove("perf");
    v
}

#[test]
fn same_seed_same_json_outside_perf() {
    let (a, b) = (small(7), small(7));
    assert_eq!(without_perf(&a), without_perf(&b));
    assert_ne!(without_perf(&a), without_perf(&small(8)), "another seed, another instance");
    assert!(a.to_json().lines().count() == 1, "one line");
    // CSV: a header, then one line per policy with the run's settings; no wall-clock figure.
    let csv = a.to_csv();
    assert_eq!(csv, b.to_csv());
    assert_eq!(csv.lines().count(), 1 + a.results.len());
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    assert!(
        header.contains(&"seed") && header.contains(&"policy") && !header.iter().any(|h| h.contains("wall"))
    );
}

#[test]
fn the_optimum_is_no_worse_than_any_policy() {
    for seed in [1, 2, 3] {
        let report = small(seed);
        let optimum = report.results.iter().find(|r| r.policy == "hungarian").expect("hungarian").cost;
        for r in &report.results {
            assert!(optimum <= r.cost, "seed {seed}: {} cost {} < optimum {optimum}", r.policy, r.cost);
            assert!(r.ratio_to_optimum >= 1.0, "{r:?}");
            assert_eq!(r.completed, N, "{r:?}");
        }
    }
}

#[test]
fn oneshot_completes_every_task_exactly_once_one_task_per_agent() {
    let batch = Batch::generate(N, N, 3).expect("feasible");
    let run = oneshot(&batch, 3, DELAY);
    assert_eq!(run.completed, N);
    assert!(run.executions_per_task.iter().all(|&e| e == 1), "{:?}", run.executions_per_task);
    assert!(run.tasks_per_agent.iter().all(|&e| e == 1), "{:?}", run.tasks_per_agent);
    assert!(run.assignment.iter().all(Option::is_some));
    let optimum = batch.cost_of(&hungarian(&batch));
    assert!(run.cost >= optimum);
    eprintln!(
        "oneshot {N}x{N}: cost {} optimum {optimum}, delivered {} ({:.1}/task), sent {}, \
         declined awards {}, announcements {}",
        run.cost,
        run.delivered,
        run.delivered as f64 / N as f64,
        run.sent,
        run.declined_awards,
        run.announcements
    );
}

#[test]
fn oneshot_messages_per_task_grow_with_the_number_of_agents() {
    // Broadcast: each call for proposals reaches every agent and each answers, so a task
    // costs at least 2n deliveries (cfp + answer per agent) plus rejects to the losers.
    for n in [10, 20, 40] {
        let batch = Batch::generate(n, n, 11).expect("feasible");
        let run = oneshot(&batch, 11, DELAY);
        let per_task = run.delivered as f64 / n as f64;
        eprintln!("n {n}: {per_task:.1} messages per task, {} declined awards", run.declined_awards);
        assert!(per_task >= 2.0 * n as f64, "n {n}: {per_task}");
        assert!(per_task <= 4.0 * n as f64 + 20.0, "n {n}: {per_task}");
    }
}

#[test]
fn iterated_reaches_the_optimum_through_moved_provisional_awards() {
    for seed in [1, 2, 3] {
        let batch = Batch::generate(N, N, seed).expect("feasible");
        let run = iterated(&batch, seed, DELAY);
        let optimum = batch.cost_of(&hungarian(&batch));
        assert_eq!((run.completed, run.unfinished), (N, 0), "{:?}", run.not_completed);
        assert_eq!(run.cost, optimum, "seed {seed}");
        // Only final awards execute: a moved award never started.
        assert!(run.executions_per_task.iter().all(|&e| e == 1), "{:?}", run.executions_per_task);
        assert!(run.tasks_per_agent.iter().all(|&e| e <= 1), "{:?}", run.tasks_per_agent);
        assert!(run.moved_awards > 0, "the auction moved awards (seed {seed})");
        assert_eq!(run.declined_awards, 0);
    }
}

#[test]
fn iterated_beats_oneshot_on_the_standard_batch() {
    let batch = Batch::generate(200, 200, 3).expect("feasible");
    let optimum = batch.cost_of(&hungarian(&batch)) as f64;
    let (once, iter) = (oneshot(&batch, 3, DELAY), iterated(&batch, 3, DELAY));
    assert!(iter.cost as f64 <= 1.02 * optimum, "{} vs {optimum}", iter.cost);
    assert!(once.cost > iter.cost);
    assert_eq!(iter.completed, 200);
}

#[test]
fn oneshot_places_all_200_tasks_of_the_standard_batch() {
    // Regression: with the default retry budget (100), awards declined as `busy` used to
    // exhaust the budget of the last tasks placed.
    let batch = Batch::generate(200, 200, 3).expect("feasible");
    let run = oneshot(&batch, 3, DELAY);
    assert_eq!((run.completed, run.unfinished), (200, 0), "{:?} {:?}", run.not_completed, run.refused);
    assert!(run.executions_per_task.iter().all(|&e| e == 1));
    assert!(run.tasks_per_agent.iter().all(|&e| e == 1));
    assert!(run.settled_before_first_completion, "every agent still held its task while others were placed");
    assert_eq!(run.decommits, 0);
    eprintln!(
        "oneshot 200x200 seed 3: {:.1} messages per task, {} declined awards, refused {:?}",
        run.delivered as f64 / 200.0,
        run.declined_awards,
        run.refused
    );
}

mod online {
    use xchange_sim::{online_preset, run_online};

    fn small() -> xchange_sim::OnlineReport {
        let w = online_preset("online", Some(200), Some(4_000)).expect("known preset");
        run_online("online", w, 5).expect("runs")
    }

    #[test]
    fn engines_sampling_d_agents_behave_like_power_of_d_and_cost_3d_plus_2_messages() {
        let report = small();
        let row = |name: &str| report.results.iter().find(|r| r.policy == name).expect(name).clone();
        let (reference, random) = (row("jsq-omniscient"), row("random"));
        let (cnp2, cnp5) = (row("cnp-oneshot-sample:2"), row("cnp-oneshot-sample:5"));
        assert_eq!(reference.ratio_to_reference, 1.0);
        for r in &report.results {
            assert_eq!(r.completed, 4_000, "{} lost tasks", r.policy);
            assert_eq!((r.tasks_lost, r.duplicate_executions), (0, 0), "{r:?}");
            assert!(r.jain_fairness > 0.5 && r.jain_fairness <= 1.0, "{r:?}");
            assert!(r.utilisation > 0.3 && r.utilisation <= 1.0, "{r:?}");
        }
        assert!(cnp5.mean_s < cnp2.mean_s && cnp2.mean_s < random.mean_s, "{cnp5:?} {cnp2:?} {random:?}");
        assert_eq!(cnp2.messages_per_task, 8.0);
        assert_eq!(cnp5.messages_per_task, 17.0);
        // Late binding (the first sampled agent to be free takes the task) beats bidding
        // on queue estimates with the same or a larger d.
        let late4 = row("cnp-late-sample:4");
        assert!(late4.late_binding && late4.mean_s < cnp5.mean_s, "{late4:?} vs {cnp5:?}");
        // The engines' choice tracks the message-free power of d within a few percent.
        let p2 = row("power-of-2");
        assert!((cnp2.mean_s / p2.mean_s - 1.0).abs() < 0.1, "{cnp2:?} vs {p2:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        let (a, b) = (small(), small());
        assert_eq!(a.results, b.results);
    }
}

mod churn {
    use xchange_sim::{online_preset, run_online};

    #[test]
    fn crashes_lose_no_task_and_the_work_they_hit_is_placed_again() {
        let preset = online_preset("churn", Some(300), Some(6_000)).expect("known preset");
        let report = run_online("churn", preset, 9).expect("runs");
        assert_eq!(report.churn, Some(0.3));
        let mut cnp_rows = 0;
        for r in &report.results {
            assert_eq!((r.completed, r.tasks_lost), (6_000, 0), "{r:?}");
            let Some(c) = &r.crashes else { continue };
            cnp_rows += 1;
            assert_eq!(c.crashes, 90, "{r:?}");
            assert!(2 * c.holding_contracts >= c.crashes, "half the crashes hit agents with work: {c:?}");
            assert!(c.contracts_lost > 0 && c.reassigned as u64 <= c.contracts_lost, "{c:?}");
            // Found when the lease (2 s) lapses, placed again at once.
            assert!(c.reassignment_p50_s > 0.0 && c.reassignment_p99_s <= 3.0, "{c:?}");
        }
        assert_eq!(cnp_rows, 3);
        let again = run_online("churn", preset, 9).expect("runs");
        assert_eq!(report.results, again.results, "crashes are part of the seeded workload");
    }
}

mod hetero {
    use xchange_sim::{online_preset, run_online};

    #[test]
    fn heterogeneous_agents_only_take_tasks_they_have_the_skill_for_and_lose_none() {
        let preset = online_preset("online-hetero", Some(300), Some(5_000)).expect("known preset");
        assert!(preset.heterogeneous);
        let report = run_online("online-hetero", preset, 4).expect("runs");
        let row = |name: &str| report.results.iter().find(|r| r.policy == name).expect(name).clone();
        for r in &report.results {
            // An award to an agent without the skill would be refused and never complete.
            assert_eq!((r.completed, r.tasks_lost, r.duplicate_executions), (5_000, 0, 0), "{r:?}");
        }
        let (reference, random) = (row("jsq-omniscient"), row("random"));
        assert!(random.mean_s > 2.0 * reference.mean_s, "{random:?} vs {reference:?}");
        assert!(row("cnp-late-sample:5").mean_s < row("cnp-oneshot-sample:2").mean_s);
    }
}

mod faults {
    use xchange_sim::{WorkloadChanges, run_online};

    #[test]
    fn lost_messages_and_bursts_delay_tasks_but_lose_none() {
        let file = "preset = \"online\"\nagents = 200\ntasks = 4000\nloss = 0.02\narrivals = \"bursty\"";
        let preset = WorkloadChanges::from_toml(file).and_then(|w| w.apply()).expect("valid workload");
        let report = run_online("online", preset, 6).expect("runs");
        for r in &report.results {
            assert_eq!((r.completed, r.tasks_lost, r.duplicate_executions), (4_000, 0, 0), "{r:?}");
            if r.messages_per_task > 0.0 {
                // Each lost message is recovered by a timeout, never silently dropped.
                assert!(r.messages_lost > 0 && r.bytes_per_task > 100.0 * r.messages_per_task, "{r:?}");
            }
        }
    }
}

#[test]
fn the_workload_files_in_the_docs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/workloads");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/workloads exists") {
        let path = entry.expect("readable").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("readable");
            let changes = xchange_sim::WorkloadChanges::from_toml(&text);
            assert!(changes.and_then(|c| c.apply()).is_ok(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 0, "no workload file found in {}", dir.display());
}
