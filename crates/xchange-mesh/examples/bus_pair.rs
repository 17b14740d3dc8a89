//! Two agent processes contracting over NATS with no node running, written with the Rust
//! SDK. Start a contractor, then a manager, in two terminals:
//!
//! ```sh
//! cargo run -p xchange-mesh --example bus_pair -- contractor   # offers `reverse`
//! cargo run -p xchange-mesh --example bus_pair -- manager      # asks for it 5 times
//! ```
//!
//! The manager knows nothing about the contractor: it watches the bus's directory, where
//! the contractor announced its card, and its engine calls for proposals, awards and takes
//! the report over NATS. `XCHANGE_BUS` picks another server (`redis://...` works too).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use xchange_bus::NetOptions;
use xchange_core::{ContractorProfile, EngineConfig, ExecOutcome};
use xchange_mesh::Mesh;
use xchange_protocol::{AgentKey, TaskSpec};
use xchange_runtime::{AgentSpec, Execution, RuntimeBuilder, contractor_fn};
use xchange_ws::RemoteCard;

const PREFIX: &str = "example";

fn fresh_key() -> AgentKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("os randomness");
    AgentKey::from_seed(seed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let role = std::env::args().nth(1).unwrap_or_default();
    let url = std::env::var("XCHANGE_BUS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let mesh = Mesh::connect(&url, NetOptions::new(PREFIX), Duration::from_secs(10)).await?;
    let runtime = RuntimeBuilder::new(mesh.bus(), Arc::new(EngineConfig::default())).start();
    let key = fresh_key();
    match role.as_str() {
        "contractor" => {
            let profile = ContractorProfile::new(["reverse"]);
            // The work: reverse the input text, done on the spot.
            let reverse = contractor_fn(|_ctx, spec: Arc<TaskSpec>| {
                let text = spec.input["text"].as_str().unwrap_or_default();
                let done = json!({"text": text.chars().rev().collect::<String>()});
                Execution::Ready(ExecOutcome::Done(Arc::new(done)))
            });
            let id = key.id();
            runtime.spawn_agent(AgentSpec::contractor(id, profile.clone(), reverse).with_key(key))?;
            mesh.flush().await?;
            let lease = mesh.announce(RemoteCard::new(id, &profile)).expect("a network bus has a directory");
            println!("contractor {id} is in the directory; Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            lease.withdraw().await?;
        }
        "manager" => {
            let manager = runtime.spawn_agent(AgentSpec::manager(key.id()).with_key(key))?;
            let watch = mesh.watch(runtime.clone(), None).expect("a network bus has a directory");
            while mesh.lookup("reverse").await?.is_empty() {
                println!("waiting for a contractor offering `reverse` in the directory...");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // the watcher attaches it
            for word in ["stressed", "drawer", "repaid", "diaper", "reward"] {
                let result: Arc<Value> =
                    manager.submit(TaskSpec::new("reverse", json!({"text": word}))).await?;
                println!("{word} -> {}", result["text"]);
            }
            drop(watch);
        }
        _ => return Err("usage: bus_pair contractor|manager".into()),
    }
    runtime.shutdown().await;
    Ok(())
}
