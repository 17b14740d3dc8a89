//! Assessing results: output schemas and named verifiers.

use std::sync::Arc;

use serde_json::{Value, json};
use xchange_core::{ContractorProfile, EngineConfig};
use xchange_protocol::{TaskSpec, TaskState};
use xchange_runtime::{AgentSpec, Contractor, Execution, contractor_fn};

use crate::common::{agent, by, config, start, start_with, within};

/// Answers `n` and who it is.
fn answers(n: Value) -> Arc<dyn Contractor> {
    contractor_fn(move |ctx, _| Execution::done(json!({ "n": n, "by": ctx.agent().to_string() })))
}

/// A cheap contractor wins the first award.
fn priced(capability: &str, price_per_unit: u64) -> ContractorProfile {
    ContractorProfile { price_per_unit, ..ContractorProfile::new([capability]) }
}

#[tokio::test]
async fn a_result_that_breaks_the_output_schema_is_rejected_and_the_task_goes_elsewhere() {
    let rt = start();
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let _bad =
        rt.spawn_agent(AgentSpec::contractor(agent(1), priced("count", 1), answers(json!("oops")))).unwrap();
    let good =
        rt.spawn_agent(AgentSpec::contractor(agent(2), priced("count", 100), answers(json!(7)))).unwrap();

    let mut spec = TaskSpec::new("count", json!(null));
    spec.output_schema = Some(json!({
        "type": "object", "required": ["n"], "properties": { "n": { "type": "integer" } }
    }));
    let out = within("verified task", m.submit(spec)).await.unwrap();
    assert_eq!(out["n"], json!(7));
    assert_eq!(by(&out), good.id());
    let c = m.counters().await;
    assert_eq!((c.verifications, c.rejected_results, c.contracts, c.completed), (2, 1, 2, 1), "{c:?}");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_registered_verifier_judges_results() {
    let rt = start();
    rt.register_verifier("even", |_, result| {
        if result["n"].as_i64().is_some_and(|n| n % 2 == 0) { Ok(()) } else { Err("n is odd".into()) }
    });
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    let _odd =
        rt.spawn_agent(AgentSpec::contractor(agent(1), priced("count", 1), answers(json!(3)))).unwrap();
    let even =
        rt.spawn_agent(AgentSpec::contractor(agent(2), priced("count", 100), answers(json!(4)))).unwrap();
    let mut spec = TaskSpec::new("count", json!(null));
    spec.verifier = Some("even".into());
    let out = within("verified task", m.submit(spec)).await.unwrap();
    assert_eq!((out["n"].clone(), by(&out)), (json!(4), even.id()));
    assert_eq!(m.counters().await.rejected_results, 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn an_unknown_verifier_rejects_every_result() {
    let rt = start_with(EngineConfig { no_contractor_timeout: 300_000, ..config() });
    let m = rt.spawn_agent(AgentSpec::manager(agent(0))).unwrap();
    rt.spawn_agent(AgentSpec::contractor(agent(1), priced("count", 1), answers(json!(1)))).unwrap();
    let mut spec = TaskSpec::new("count", json!(null));
    spec.verifier = Some("nobody-registered-this".into());
    let err = within("rejected task", m.submit(spec)).await.unwrap_err();
    assert_eq!(err.state, TaskState::Failed, "{err}");
    assert!(m.counters().await.rejected_results >= 1);
    rt.shutdown().await;
}
