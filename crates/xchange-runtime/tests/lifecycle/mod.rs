//! Starting, stopping and restoring: shutdown, shards on threads, restore from records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use xchange_bus::InProcBus;
use xchange_core::{EngineConfig, EventKind, Submit};
use xchange_protocol::{Code, TaskId, TaskSpec, TaskState};
use xchange_runtime::{AgentSpec, MemoryPersister, Persister, RuntimeBuilder, RuntimeError};

use crate::common::{agent, by, config, echo, forever, profile, start, wait_event, within};

#[tokio::test]
async fn shutdown_aborts_executions_answers_waiters_and_joins_everything() {
    let rt = start();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    rt.spawn_agent(AgentSpec::contractor(agent(1), profile("wait"), forever(dropped.clone()))).unwrap();
    let task = TaskId::new_v7(1_800_000_000_000, [7; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("wait", json!(null))) };
    let waiting = tokio::spawn({
        let m = m.clone();
        async move { m.submit_with(submit).await }
    });
    wait_event(&mut tap, Some(task), |e| matches!(e.kind, EventKind::Started { .. }).then_some(())).await;

    within("shutdown", rt.shutdown()).await;
    // Shutdown returned only after every execution task dropped its guard.
    assert!(dropped.load(Ordering::SeqCst), "the running execution was dropped");
    let err = within("waiter", waiting).await.unwrap().unwrap_err();
    assert_eq!(err.code, Code::Unavailable, "{err}");
    // The tap ends: nothing can emit any more.
    within("tap closes", async { while tap.recv().await.is_some() {} }).await;
    assert!(matches!(rt.spawn_agent(AgentSpec::manager(agent(9))), Err(RuntimeError::ShutDown)));
    assert!(m.status().await.is_err());
    assert!(m.submit(TaskSpec::new("wait", json!(null))).await.is_err());
    within("second shutdown", rt.shutdown()).await;
}

#[tokio::test]
async fn shards_on_their_own_threads_complete_tasks() {
    let bus = Arc::new(InProcBus::new());
    let rt = RuntimeBuilder::new(bus, Arc::new(config())).shards(2).start_on_threads().unwrap();
    assert_eq!(rt.shard_count(), 2);
    let m = rt.spawn_agent(AgentSpec::manager(agent(0)).on_shard(0)).unwrap();
    let c = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("echo"), echo()).on_shard(1)).unwrap();
    let local = rt.spawn_agent(AgentSpec::contractor(agent(2), profile("echo"), echo()).on_shard(0)).unwrap();
    let mut all = tokio::task::JoinSet::new();
    for i in 0..20 {
        let m = m.clone();
        all.spawn(async move { m.submit(TaskSpec::new("echo", json!(i))).await });
    }
    for out in within("20 tasks", all.join_all()).await {
        assert!([c.id(), local.id()].contains(&by(&out.unwrap())));
    }
    within("shutdown", rt.shutdown()).await;
}

#[tokio::test]
async fn a_durable_manager_is_restored_from_its_records_and_finishes_the_task() {
    let durable = EngineConfig { durable: true, lease: 100_000, ..config() };
    let store = Arc::new(MemoryPersister::new());
    let rt = RuntimeBuilder::new(Arc::new(InProcBus::new()), Arc::new(durable.clone()))
        .persister(store.clone())
        .start();
    let dropped = Arc::new(AtomicBool::new(false));
    let mut tap = rt.subscribe_events();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    rt.spawn_agent(AgentSpec::contractor(agent(1), profile("work"), forever(dropped))).unwrap();
    let task = TaskId::new_v7(1_800_000_000_000, [8; 10]);
    m.submit_detached(Submit { task: Some(task), ..Submit::new(TaskSpec::new("work", json!("kept"))) });
    wait_event(&mut tap, Some(task), |e| matches!(e.kind, EventKind::Started { .. }).then_some(())).await;
    rt.shutdown().await;
    let records = store.records(agent(0));
    let record = records.iter().find(|r| r.id == task).expect("the task was persisted");
    assert!(!record.state.is_terminal(), "{:?}", record.state);

    // A new process: the manager comes back from its records, its old contractor does not.
    let rt =
        RuntimeBuilder::new(Arc::new(InProcBus::new()), Arc::new(durable)).persister(store.clone()).start();
    let mut tap = rt.subscribe_events();
    rt.spawn_agent(AgentSpec::contractor(agent(2), profile("work"), echo())).unwrap();
    rt.spawn_agent(AgentSpec::manager(agent(0)).restored(2, records)).unwrap();
    let (state, result) = wait_event(&mut tap, Some(task), |e| match &e.kind {
        EventKind::Finished { state, result, .. } => Some((*state, result.clone())),
        _ => None,
    })
    .await;
    assert_eq!(state, TaskState::Completed);
    let result = result.unwrap();
    assert_eq!((by(&result), result["input"].clone()), (agent(2), json!("kept")));
    assert!(store.records(agent(0)).iter().any(|r| r.id == task && r.state == TaskState::Completed));
    rt.shutdown().await;
}

#[tokio::test]
async fn over_an_encoding_bus_obligations_are_signed_and_checked() {
    use xchange_bus::{Bus, EdgeMode};
    use xchange_protocol::{AgentKey, Kind};
    let bus = Arc::new(InProcBus::builder().edge(EdgeMode::Encode { verify_signatures: true }).build());
    let rt = RuntimeBuilder::new(bus.clone(), Arc::new(config())).start();
    let key = |n: u8| AgentKey::from_seed([n; 32]);
    let unsigned = rt.spawn_agent(AgentSpec::manager(agent(0)));
    assert!(matches!(unsigned, Err(RuntimeError::InvalidSpec(_))), "a signing bus needs keys");
    let m = rt.spawn_agent(AgentSpec::manager(agent(0)).with_key(key(1))).unwrap();
    let c =
        rt.spawn_agent(AgentSpec::contractor(agent(0), profile("echo"), echo()).with_key(key(2))).unwrap();
    assert_eq!(c.id(), key(2).id());
    let out = within("signed task", m.submit(TaskSpec::new("echo", json!("signed")))).await.unwrap();
    assert_eq!((by(&out), out["input"].clone()), (c.id(), json!("signed")));
    let counters = bus.counters();
    assert_eq!(counters.refused_total(), 0, "{:?}", counters.refused);
    for kind in [Kind::Propose, Kind::Accept, Kind::Inform] {
        assert_eq!(counters.delivered_of(kind), 1, "{kind}");
    }
    assert!(counters.bytes_encoded > 0);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_agent_id_is_hosted_once_and_unknown_names_are_refused() {
    let rt = start();
    rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    assert!(matches!(rt.spawn_agent(AgentSpec::manager(agent(0))), Err(RuntimeError::InvalidSpec(_))));
    let bad = AgentSpec::contractor(agent(1), profile("no spaces"), echo());
    assert!(matches!(rt.spawn_agent(bad), Err(RuntimeError::InvalidSpec(_))));
    rt.shutdown().await;
}
