//! Property tests: random interleavings of messages (delayed, lost, duplicated, late),
//! execution failures, rejected results, contractor crashes and manager crash-and-restore.

use proptest::prelude::*;
use xchange_core::{Announce, EngineConfig, Submit};
use xchange_protocol::TaskState;

use crate::world::{Behaviour, World, fast_config, profile};

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    contractors: u64,
    tasks: usize,
    broadcast: bool,
    loss: f64,
    duplicate: f64,
    fail_rate: f64,
    reject_rate: f64,
    crashes: Vec<(u64, u64, u64)>,
    manager_crash: Option<(u64, u64)>,
    tamper: f64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        1u64..6,
        1usize..8,
        any::<bool>(),
        prop_oneof![Just(0.0), 0.0..0.2],
        prop_oneof![Just(0.0), 0.0..0.3],
        prop_oneof![Just(0.0), 0.0..0.5],
        prop_oneof![Just(0.0), 0.0..0.5],
        proptest::collection::vec((0u64..6, 0u64..400_000, 10_000u64..500_000), 0..4),
        proptest::option::of((0u64..300_000, 1_000u64..200_000)),
        prop_oneof![Just(0.0), 0.0..0.15],
    )
        .prop_map(
            |(
                seed,
                contractors,
                tasks,
                broadcast,
                loss,
                duplicate,
                fail_rate,
                reject_rate,
                crashes,
                manager_crash,
                tamper,
            )| {
                Scenario {
                    seed,
                    contractors,
                    tasks,
                    broadcast,
                    loss,
                    duplicate,
                    fail_rate,
                    reject_rate,
                    crashes,
                    manager_crash,
                    tamper,
                }
            },
        )
}

fn run(s: &Scenario) -> Result<(), TestCaseError> {
    let cfg = EngineConfig {
        announce: if s.broadcast { Announce::Broadcast } else { Announce::Sample(2) },
        // Half of the sampled runs bind late (contractors bid when free).
        late_binding: !s.broadcast && s.seed.is_multiple_of(2),
        ..fast_config()
    };
    let mut w = World::new(cfg, s.seed);
    w.loss = s.loss;
    w.duplicate = s.duplicate;
    w.reject_rate = s.reject_rate;
    w.through_edge = true;
    w.tamper = s.tamper;
    let behaviour = Behaviour { exec_time: 20_000, fail_rate: s.fail_rate };
    let mut contractors = Vec::new();
    for i in 0..s.contractors {
        contractors.push(w.add_contractor(i, profile("echo", 1 + (i % 2) as u32), behaviour));
    }
    let m = w.add_manager(0);
    let start = w.now;
    let mut tasks = Vec::new();
    for i in 0..s.tasks {
        let mut spec = World::spec("echo");
        spec.priority = i as i64;
        if s.reject_rate > 0.0 && i % 2 == 0 {
            spec.output_schema = Some(serde_json::json!({"type": "object"}));
        }
        tasks.push(w.submit(m, Submit::new(spec)).expect("valid submission"));
    }
    // Crashes and recoveries at scripted times, checking invariants between steps.
    let mut script: Vec<(u64, u8, u64)> = Vec::new();
    for &(who, at, down) in &s.crashes {
        script.push((at, 0, who % s.contractors));
        script.push((at + down, 1, who % s.contractors));
    }
    if let Some((at, down)) = s.manager_crash {
        script.push((at, 2, 0));
        script.push((at + down, 3, 0));
    }
    script.sort();
    for (at, what, who) in script {
        w.run_until(start + at);
        w.check().map_err(TestCaseError::fail)?;
        match what {
            0 => w.kill(contractors[who as usize]),
            1 if w.dead.contains(&contractors[who as usize]) => w.revive(contractors[who as usize]),
            2 => w.kill(m),
            3 if w.dead.contains(&m) => w.revive(m),
            _ => {}
        }
    }
    for a in contractors.iter().chain([&m]) {
        if w.dead.contains(a) {
            w.revive(*a);
        }
    }
    w.run_until(start + 120_000_000);
    w.check().map_err(TestCaseError::fail)?;

    if std::env::var("XCHANGE_DEBUG").is_ok() {
        eprintln!(
            "stats lease={} reassign={} retries={} stale={} delivered={} completed={} failed={}",
            w.counter(|c| c.lease_expiries),
            w.counter(|c| c.reassignments),
            w.counter(|c| c.retries),
            w.counter(|c| c.stale_epoch),
            w.delivered,
            w.counter(|c| c.completed),
            w.counter(|c| c.failed)
        );
    }
    for (expected, actual) in &w.tampered {
        prop_assert_eq!(Some(*expected), *actual, "a tampered message must be refused with its own code");
    }
    let finished = w.finished();
    for t in &tasks {
        let ends = finished.get(t).cloned().unwrap_or_default();
        prop_assert_eq!(ends.len(), 1, "task {} must end exactly once: {:?}", t, ends);
        prop_assert!(w.engines[&m].task(t).is_none(), "an ended task is no longer live");
        if let Some(done) = w.engines[&m].finished_task(t) {
            prop_assert_eq!(done.state, ends[0].0);
        }
        let (state, code) = ends[0];
        if state == TaskState::Completed {
            prop_assert_eq!(code, xchange_protocol::Code::Processed);
        }
        // Without failures, rejections or loss there is no reason to give up.
        if s.fail_rate == 0.0 && s.reject_rate == 0.0 {
            prop_assert_eq!(state, TaskState::Completed, "{}: ended {:?} {:?}", t, state, code);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_task_ends_once_and_invariants_hold(s in scenario()) {
        run(&s)?;
    }
}
