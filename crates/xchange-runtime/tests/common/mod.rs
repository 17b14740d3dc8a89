//! Shared helpers: short protocol timings, ids, behaviours, and waiting with a timeout.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use xchange_bus::InProcBus;
use xchange_core::{Announce, ContractorProfile, EngineConfig, Event, EventKind, ExecOutcome};
use xchange_protocol::{AgentId, TaskId};
use xchange_runtime::{Contractor, EventTap, Execution, Runtime, RuntimeBuilder, contractor_fn};

/// Protocol timings short enough for tests, long enough for a loaded CI machine.
pub(crate) fn config() -> EngineConfig {
    EngineConfig {
        announce: Announce::Broadcast,
        bid_window: 50_000,
        message_ttl: 10_000_000,
        lease: 150_000,
        heartbeat_interval: 30_000,
        report_resend: 100_000,
        reannounce_backoff: 20_000,
        no_contractor_timeout: 2_000_000,
        terminal_retention: 20_000_000,
        ..EngineConfig::default()
    }
}

pub(crate) fn start_with(config: EngineConfig) -> Runtime {
    RuntimeBuilder::new(Arc::new(InProcBus::new()), Arc::new(config)).seed(7).start()
}

pub(crate) fn start() -> Runtime {
    start_with(config())
}

pub(crate) fn agent(i: u64) -> AgentId {
    AgentId::from_index(42, i)
}

pub(crate) fn profile(capability: &str) -> ContractorProfile {
    ContractorProfile { capacity: 4, ..ContractorProfile::new([capability]) }
}

/// Answers at once with who did it and the input.
pub(crate) fn echo() -> Arc<dyn Contractor> {
    contractor_fn(|ctx, spec| Execution::done(json!({ "by": ctx.agent().to_string(), "input": spec.input })))
}

/// Answers like [`echo`] after `ms` milliseconds.
pub(crate) fn slow(ms: u64) -> Arc<dyn Contractor> {
    contractor_fn(move |ctx, spec| {
        let by = ctx.agent().to_string();
        Execution::pending(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ExecOutcome::Done(Arc::new(json!({ "by": by, "input": spec.input })))
        })
    })
}

/// Sets its flag when dropped: tells whether an execution's future was dropped.
pub(crate) struct DropFlag(pub(crate) Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Never finishes; sets `dropped` when its future is dropped (aborted).
pub(crate) fn forever(dropped: Arc<AtomicBool>) -> Arc<dyn Contractor> {
    contractor_fn(move |_, _| {
        let flag = DropFlag(dropped.clone());
        Execution::pending(async move {
            let _flag = flag;
            std::future::pending::<ExecOutcome>().await
        })
    })
}

/// The agent named in an [`echo`] result.
pub(crate) fn by(result: &Value) -> AgentId {
    result["by"].as_str().expect("result names its contractor").parse().expect("an agent id")
}

pub(crate) async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(15), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Waits for the first event of `task` that `pick` accepts.
pub(crate) async fn wait_event<T>(
    tap: &mut EventTap,
    task: Option<TaskId>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    within("an event", async {
        loop {
            let (_, event) = tap.recv().await.expect("the tap stays open");
            if task.is_none_or(|t| event.task() == t)
                && let Some(out) = pick(&event)
            {
                return out;
            }
        }
    })
    .await
}

/// The contractor of the first award of `task`.
pub(crate) async fn awarded_to(tap: &mut EventTap, task: TaskId) -> AgentId {
    wait_event(tap, Some(task), |e| match e.kind {
        EventKind::Awarded { contractor, .. } => Some(contractor),
        _ => None,
    })
    .await
}
