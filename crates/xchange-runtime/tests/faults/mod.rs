//! Contractors that crash, restart or leave while holding contracts.

use std::collections::HashMap;

use serde_json::json;
use xchange_core::{EngineConfig, EventKind, Submit};
use xchange_protocol::{Code, TaskId, TaskSpec};
use xchange_runtime::{AgentHandle, AgentSpec, RuntimeError};

use crate::common::{agent, awarded_to, by, config, profile, slow, start_with, wait_event, within};

#[tokio::test]
async fn a_killed_contractors_task_is_reassigned_after_its_lease_lapses() {
    let rt = start_with(EngineConfig { lease: 80_000, heartbeat_interval: 20_000, ..config() });
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let contractors: HashMap<_, AgentHandle> = (1..=2)
        .map(|i| rt.spawn_agent(AgentSpec::contractor(agent(i), profile("work"), slow(300))).unwrap())
        .map(|h| (h.id(), h))
        .collect();

    let task = TaskId::new_v7(1_800_000_000_000, [5; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("work", json!(1))) };
    let waiting = tokio::spawn({
        let m = m.clone();
        async move { m.submit_with(submit).await }
    });
    let first = awarded_to(&mut tap, task).await;
    wait_event(&mut tap, Some(task), |e| matches!(e.kind, EventKind::Started { .. }).then_some(())).await;
    contractors[&first].kill().await.unwrap();
    assert!(matches!(contractors[&first].kill().await, Err(RuntimeError::AgentNotRunning(_))));

    let (code, from) = wait_event(&mut tap, Some(task), |e| match e.kind {
        EventKind::Reassigned { code, from } => Some((code, from)),
        _ => None,
    })
    .await;
    assert_eq!((code, from), (Code::LeaseExpired, first));
    let out = within("reassigned task", waiting).await.unwrap().unwrap();
    assert_ne!(by(&out), first, "the result comes from the surviving contractor");
    let c = m.counters().await;
    assert_eq!((c.lease_expiries, c.completed), (1, 1), "{c:?}");
    assert!(c.reassignments >= 1);

    // The killed agent keeps nothing; a restart brings it back with the next incarnation.
    let status = contractors[&first].status().await.unwrap();
    assert!(!status.alive);
    assert_eq!(status.counters, Default::default());
    contractors[&first].restart().await.unwrap();
    let status = contractors[&first].status().await.unwrap();
    assert!(status.alive);
    assert_eq!(status.incarnation, 2);
    let submit = Submit { contractor: Some(first), ..Submit::new(TaskSpec::new("work", json!(2))) };
    let out = within("task for the restarted agent", m.submit_with(submit)).await.unwrap();
    assert_eq!(by(&out), first);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_contractor_that_stops_is_replaced_without_waiting_for_its_lease() {
    // A long lease: only the departure notice (5003) can explain a quick reassignment.
    let rt = start_with(EngineConfig { lease: 30_000_000, heartbeat_interval: 10_000_000, ..config() });
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let contractors: HashMap<_, AgentHandle> = (1..=2)
        .map(|i| rt.spawn_agent(AgentSpec::contractor(agent(i), profile("work"), slow(200))).unwrap())
        .map(|h| (h.id(), h))
        .collect();
    let task = TaskId::new_v7(1_800_000_000_000, [6; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("work", json!(1))) };
    let waiting = tokio::spawn({
        let m = m.clone();
        async move { m.submit_with(submit).await }
    });
    let first = awarded_to(&mut tap, task).await;
    contractors[&first].stop().await.unwrap();
    let code = wait_event(&mut tap, Some(task), |e| match e.kind {
        EventKind::Reassigned { code, .. } => Some(code),
        _ => None,
    })
    .await;
    assert_eq!(code, Code::AgentDisconnected);
    let out = within("task after departure", waiting).await.unwrap().unwrap();
    assert_ne!(by(&out), first);
    assert_eq!(m.counters().await.lease_expiries, 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_panicking_behaviour_fails_its_execution_not_the_shard() {
    // The panic hook may print a backtrace, blocking the shard for longer than a short lease.
    let rt = start_with(EngineConfig { lease: 30_000_000, ..config() });
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let boom = xchange_runtime::contractor_fn(|_, _| panic!("boom"));
    let cheap = xchange_core::ContractorProfile { price_per_unit: 1, ..profile("work") };
    rt.spawn_agent(AgentSpec::contractor(agent(1), cheap, boom)).unwrap();
    let ok = rt.spawn_agent(AgentSpec::contractor(agent(2), profile("work"), slow(1))).unwrap();
    let out = within("task", m.submit(TaskSpec::new("work", json!(1)))).await.unwrap();
    assert_eq!(by(&out), ok.id());
    assert_eq!(m.counters().await.retries, 1);
    rt.shutdown().await;
}
