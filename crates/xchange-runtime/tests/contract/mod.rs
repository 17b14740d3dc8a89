//! The plain contract net: announce, bid, award, execute, report.

use serde_json::json;
use xchange_core::{EventKind, Submit};
use xchange_protocol::{Code, Kind, TaskId, TaskSpec, TaskState};
use xchange_runtime::AgentSpec;

use crate::common::{agent, by, config, echo, profile, start, start_with, wait_event, within};

#[tokio::test]
async fn a_manager_and_two_contractors_complete_tasks() {
    let rt = start();
    let c1 = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo())).unwrap();
    let c2 = rt.spawn_agent(AgentSpec::contractor(agent(2), profile("echo"), echo())).unwrap();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();

    let out = within("one task", m.submit(TaskSpec::new("echo", json!({ "x": 1 })))).await.unwrap();
    assert!([c1.id(), c2.id()].contains(&by(&out)));
    assert_eq!(out["input"], json!({ "x": 1 }));
    let counters = m.counters().await;
    assert_eq!((counters.completed, counters.contracts, counters.announcements), (1, 1, 1));
    assert_eq!(rt.bus().counters().delivered_of(Kind::Cfp), 2, "one broadcast, two subscribers");

    // Many at once, from tasks other than the test's.
    let mut all = tokio::task::JoinSet::new();
    for i in 0..40 {
        let m = m.clone();
        all.spawn(async move { m.submit(TaskSpec::new("echo", json!(i))).await });
    }
    let mut inputs: Vec<i64> = within("40 tasks", all.join_all())
        .await
        .into_iter()
        .map(|r| r.unwrap()["input"].as_i64().unwrap())
        .collect();
    inputs.sort_unstable();
    assert_eq!(inputs, (0..40).collect::<Vec<_>>());
    assert_eq!(m.counters().await.completed, 41);
    assert!(rt.stats().executions_inline >= 41);
    assert_eq!(rt.stats().executions_spawned, 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn contractors_spawned_after_the_manager_are_found() {
    let rt = start();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let c = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo())).unwrap();
    let out = within("task", m.submit(TaskSpec::new("echo", json!(null)))).await.unwrap();
    assert_eq!(by(&out), c.id());
    rt.shutdown().await;
}

#[tokio::test]
async fn a_directed_award_goes_to_the_named_contractor_without_a_call() {
    let rt = start();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let _c1 = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo())).unwrap();
    let c2 = rt.spawn_agent(AgentSpec::contractor(agent(2), profile("echo"), echo())).unwrap();
    for _ in 0..3 {
        let submit = Submit { contractor: Some(c2.id()), ..Submit::new(TaskSpec::new("echo", json!(2))) };
        let out = within("directed task", m.submit_with(submit)).await.unwrap();
        assert_eq!(by(&out), c2.id());
    }
    assert_eq!(m.counters().await.announcements, 0);
    assert_eq!(rt.bus().counters().delivered_of(Kind::Cfp), 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn the_events_tap_follows_a_task_to_its_end() {
    let rt = start();
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let c = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo())).unwrap();
    let task = TaskId::new_v7(1_800_000_000_000, [3; 10]);
    let submitted =
        m.submit_detached(Submit { task: Some(task), ..Submit::new(TaskSpec::new("echo", json!(1))) });
    assert_eq!(submitted, task);
    let mut seen = Vec::new();
    wait_event(&mut tap, Some(task), |e| {
        seen.push(e.kind.clone());
        matches!(e.kind, EventKind::Finished { .. }).then_some(())
    })
    .await;
    assert!(matches!(seen[0], EventKind::Submitted { parent: None }), "{seen:?}");
    assert!(seen.iter().any(|k| matches!(k, EventKind::Awarded { contractor, .. } if *contractor == c.id())));
    assert!(matches!(
        seen.last(),
        Some(EventKind::Finished { state: TaskState::Completed, result: Some(_), .. })
    ));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_task_nobody_can_do_fails_with_a_code() {
    let rt = start_with(xchange_core::EngineConfig { no_contractor_timeout: 200_000, ..config() });
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let _c = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo())).unwrap();
    let err = within("failure", m.submit(TaskSpec::new("juggle", json!(null)))).await.unwrap_err();
    assert_eq!((err.state, err.code), (TaskState::Failed, Code::NoEligibleContractor), "{err}");
    // A submission the engine refuses answers at once, with the engine's code.
    let err = m.submit(TaskSpec::new("not a name", json!(null))).await.unwrap_err();
    assert_eq!(err.code, Code::SchemaInvalid, "{err}");
    assert!(rt.stats().refused >= 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_task_aborts_its_execution() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = start();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let _c = rt.spawn_agent(AgentSpec::contractor(
        agent(1),
        profile("wait"),
        crate::common::forever(dropped.clone()),
    ));
    let task = TaskId::new_v7(1_800_000_000_000, [4; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("wait", json!(null))) };
    let waiting = tokio::spawn({
        let m = m.clone();
        async move { m.submit_with(submit).await }
    });
    wait_event(&mut tap, Some(task), |e| matches!(e.kind, EventKind::Started { .. }).then_some(())).await;
    m.cancel(task, "changed my mind");
    let err = within("cancelled", waiting).await.unwrap().unwrap_err();
    assert_eq!((err.state, err.code), (TaskState::Cancelled, Code::Cancelled), "{err}");
    within("abort", async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(rt.stats().aborted, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn contractors_with_external_bidding_price_their_own_bids() {
    use std::sync::Arc;
    use xchange_core::{BidTerms, ContractorProfile};
    use xchange_runtime::{Contractor, ExecContext, Execution};

    /// Bids `price`, or declines tasks larger than 5 units.
    struct Pricer(u64);
    impl Contractor for Pricer {
        fn execute(&self, ctx: ExecContext, _: Arc<TaskSpec>) -> Execution {
            Execution::done(json!({ "by": ctx.agent().to_string() }))
        }
        fn bid(&self, spec: &TaskSpec) -> Result<BidTerms, (Code, String)> {
            if spec.size > 5.0 {
                return Err((Code::Declined, "too big".into()));
            }
            Ok(BidTerms { price: self.0, eta_ms: 10 })
        }
    }
    let rt = start_with(xchange_core::EngineConfig { no_contractor_timeout: 200_000, ..config() });
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let external = ContractorProfile { external_bidding: true, ..profile("price") };
    let _dear =
        rt.spawn_agent(AgentSpec::contractor(agent(1), external.clone(), Arc::new(Pricer(900)))).unwrap();
    let cheap = rt.spawn_agent(AgentSpec::contractor(agent(2), external, Arc::new(Pricer(3)))).unwrap();

    let task = TaskId::new_v7(1_800_000_000_000, [9; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("price", json!(null))) };
    let out = within("priced task", m.submit_with(submit)).await.unwrap();
    assert_eq!(by(&out), cheap.id());
    let price = wait_event(&mut tap, Some(task), |e| match e.kind {
        EventKind::Awarded { price, .. } => Some(price),
        _ => None,
    })
    .await;
    assert_eq!(price, 3, "the price the behaviour asked");

    // Every contractor declines: nobody can take the task.
    let mut big = TaskSpec::new("price", json!(null));
    big.size = 9.0;
    let err = within("declined by all", m.submit(big)).await.unwrap_err();
    assert_eq!(err.state, TaskState::Failed, "{err}");
    assert!(m.counters().await.refusals >= 2);
    rt.shutdown().await;
}
