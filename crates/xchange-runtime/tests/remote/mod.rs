//! Agents hosted elsewhere (`Runtime::attach_remote`): the "remote" agent here is an engine
//! hosted by a second runtime on the same bus, whose directory the first runtime does not
//! share, which is what a WebSocket session looks like from the managers' side.

use std::sync::Arc;

use serde_json::json;
use xchange_bus::InProcBus;
use xchange_core::{Announce, ContractorProfile, EngineConfig, EventKind, Submit};
use xchange_protocol::{Code, TaskId, TaskSpec};
use xchange_runtime::{AgentSpec, RuntimeBuilder, RuntimeError};

use crate::common::{agent, awarded_to, by, config, profile, slow, wait_event, within};

/// How the remote agent goes away.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Detach(Code),
    Drop,
}

/// A manager and a dear local contractor; a cheap remote contractor that wins the award and
/// then leaves. The manager must reassign at once with the code it was told.
async fn remote_contractor_leaves(how: Leave, manager_first: bool) -> Code {
    let bus = Arc::new(InProcBus::new());
    // A long lease: only the departure notice can explain a quick reassignment. Sampled
    // announcements reach only agents the manager knows, so a departed agent gets no call.
    let cfg = EngineConfig {
        announce: Announce::Sample(2),
        lease: 30_000_000,
        heartbeat_interval: 10_000_000,
        ..config()
    };
    let here = RuntimeBuilder::new(bus.clone(), Arc::new(cfg.clone())).seed(1).start();
    let elsewhere = RuntimeBuilder::new(bus, Arc::new(cfg)).seed(2).start();
    let cheap = ContractorProfile { price_per_unit: 1, ..profile("work") };
    let remote = elsewhere.spawn_agent(AgentSpec::contractor(agent(1), cheap.clone(), slow(3_000))).unwrap();
    let local = here.spawn_agent(AgentSpec::contractor(agent(2), profile("work"), slow(1))).unwrap();
    let mut tap = here.subscribe_events();
    let (m, attachment) = if manager_first {
        let m = here.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
        (m, here.attach_remote(remote.id(), cheap).unwrap())
    } else {
        let attachment = here.attach_remote(remote.id(), cheap).unwrap();
        (here.spawn_agent(AgentSpec::manager(agent(0))).unwrap(), attachment)
    };
    assert_eq!(attachment.id(), remote.id());

    let task = TaskId::new_v7(1_800_000_000_000, [9; 10]);
    let submit = Submit { task: Some(task), ..Submit::new(TaskSpec::new("work", json!(1))) };
    let waiting = tokio::spawn({
        let m = m.clone();
        async move { m.submit_with(submit).await }
    });
    assert_eq!(awarded_to(&mut tap, task).await, remote.id(), "the manager knew the remote agent");
    match how {
        Leave::Detach(code) => attachment.detach(code),
        Leave::Drop => drop(attachment),
    }
    let (code, from) = wait_event(&mut tap, Some(task), |e| match e.kind {
        EventKind::Reassigned { code, from } => Some((code, from)),
        _ => None,
    })
    .await;
    assert_eq!(from, remote.id());
    let out = within("reassigned task", waiting).await.unwrap().unwrap();
    assert_eq!(by(&out), local.id(), "the result comes from the agent that stayed");
    assert_eq!(m.counters().await.lease_expiries, 0);
    // Once gone, the agent may attach again (a new connection).
    here.attach_remote(remote.id(), profile("work")).unwrap().detach(Code::AgentDisconnected);
    here.shutdown().await;
    elsewhere.shutdown().await;
    code
}

#[tokio::test]
async fn an_orderly_detach_is_reported_as_5003() {
    assert_eq!(
        remote_contractor_leaves(Leave::Detach(Code::AgentDisconnected), true).await,
        Code::AgentDisconnected
    );
}

#[tokio::test]
async fn an_unexpected_detach_is_reported_as_5009() {
    let code = remote_contractor_leaves(Leave::Detach(Code::UnexpectedDisconnect), false).await;
    assert_eq!(code, Code::UnexpectedDisconnect);
}

#[tokio::test]
async fn other_codes_and_a_dropped_attachment_are_reported_as_5009() {
    let code = remote_contractor_leaves(Leave::Detach(Code::Busy), true).await;
    assert_eq!(code, Code::UnexpectedDisconnect);
    assert_eq!(remote_contractor_leaves(Leave::Drop, false).await, Code::UnexpectedDisconnect);
}

#[tokio::test]
async fn an_id_can_be_present_only_once() {
    let rt = crate::common::start();
    let hosted = rt.spawn_agent(AgentSpec::contractor(agent(1), profile("work"), slow(1))).unwrap();
    let present = |r: Result<(), RuntimeError>| matches!(r, Err(RuntimeError::AgentPresent(_)));
    assert!(present(rt.attach_remote(hosted.id(), profile("work")).map(drop)));
    let attached = rt.attach_remote(agent(2), profile("work")).unwrap();
    assert!(present(rt.attach_remote(agent(2), profile("work")).map(drop)));
    assert!(present(rt.spawn_agent(AgentSpec::contractor(agent(2), profile("work"), slow(1))).map(drop)));
    let bad = rt.attach_remote(agent(3), profile("no spaces"));
    assert!(matches!(bad, Err(RuntimeError::InvalidSpec(_))), "{bad:?}");
    assert!(format!("{attached:?}").contains("attached: true"));
    rt.shutdown().await;
    assert!(matches!(rt.attach_remote(agent(4), profile("work")), Err(RuntimeError::ShutDown)));
    // Detaching after shutdown tells nobody and does not panic.
    attached.detach(Code::AgentDisconnected);
}
