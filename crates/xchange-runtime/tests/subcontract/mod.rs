//! A contractor that splits its task and manages the parts.

use std::sync::Arc;

use serde_json::{Value, json};
use xchange_core::ExecOutcome;
use xchange_protocol::{Code, TaskSpec};
use xchange_runtime::{AgentSpec, Contractor, Execution, contractor_fn};

use crate::common::{agent, by, echo, profile, start, within};

/// Splits `input.parts` into one `echo` subtask each and returns their inputs in order.
fn splitter() -> Arc<dyn Contractor> {
    contractor_fn(|ctx, spec| {
        let parts = spec.input["parts"].as_array().cloned().unwrap_or_default();
        Execution::pending(async move {
            ctx.progress(0.1);
            let specs = parts.into_iter().map(|p| TaskSpec::new("echo", p)).collect();
            let mut out = Vec::new();
            for result in ctx.subcontract_all(specs).await {
                match result {
                    Ok(r) => out.push(json!({ "input": r["input"], "by": r["by"] })),
                    Err(e) => {
                        return ExecOutcome::Failed { code: e.code, reason: e.reason, retryable: false };
                    }
                }
            }
            ExecOutcome::Done(Arc::new(Value::Array(out)))
        })
    })
}

#[tokio::test]
async fn a_contractor_subcontracts_the_parts_of_its_task() {
    let rt = start();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let split =
        rt.spawn_agent(AgentSpec::contractor(agent(1), profile("split"), splitter()).managing(true)).unwrap();
    let worker = rt.spawn_agent(AgentSpec::contractor(agent(2), profile("echo"), echo())).unwrap();

    let spec = TaskSpec::new("split", json!({ "parts": ["a", "b", "c"] }));
    let out = within("split task", m.submit(spec)).await.unwrap();
    let parts = out.as_array().unwrap();
    let inputs: Vec<&Value> = parts.iter().map(|p| &p["input"]).collect();
    assert_eq!(inputs, [&json!("a"), &json!("b"), &json!("c")]);
    assert!(parts.iter().all(|p| by(p) == worker.id()));

    let sc = split.counters().await;
    assert_eq!((sc.subcontracts, sc.completed), (3, 3), "{sc:?}");
    assert_eq!(m.counters().await.completed, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_single_subcontract_and_its_failure_reach_the_execution() {
    let rt = start();
    let relay = contractor_fn(|ctx, spec| {
        Execution::pending(async move {
            let sub = TaskSpec::new(spec.input["via"].as_str().unwrap(), json!("inner"));
            match ctx.subcontract(sub).await {
                Ok(r) => ExecOutcome::Done(r),
                Err(e) => ExecOutcome::Done(Arc::new(json!({ "failed": e.code.number() }))),
            }
        })
    });
    let cfg = xchange_core::EngineConfig { no_contractor_timeout: 200_000, ..crate::common::config() };
    let rt2 = crate::common::start_with(cfg);
    for rt in [&rt, &rt2] {
        rt.spawn_agent(AgentSpec::contractor(agent(1), profile("relay"), relay.clone()).managing(true))
            .unwrap();
        rt.spawn_agent(AgentSpec::contractor(agent(2), profile("echo"), echo())).unwrap();
    }
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let out = within("relay", m.submit(TaskSpec::new("relay", json!({ "via": "echo" })))).await.unwrap();
    assert_eq!(out["input"], json!("inner"));
    assert_eq!(by(&out), agent(2));

    // Nobody offers the subtask's capability: the execution sees the failure and its code.
    let m2 = rt2.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let out = within("relay to nobody", m2.submit(TaskSpec::new("relay", json!({ "via": "nobody" }))))
        .await
        .unwrap();
    assert_eq!(out["failed"], json!(Code::NoEligibleContractor.number()));
    rt.shutdown().await;
    rt2.shutdown().await;
}
