//! The whole exchange on a NATS server that knows only the users `xchange bus-access`
//! wrote: the node (`serve --bus-nkey`) and two agent processes (`agent run --nkey`), each
//! a member of its own organisation's private task database. The server starts knowing
//! the node only; the agents are added as an operator would, by putting them in
//! organisations, generating the users again from the node (`--from-server`) and reloading
//! the server. The outsider asks the lower price and wins the public job, runs its own
//! organisation's private job, and never receives, bids on or runs the other
//! organisation's private jobs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use xchange_node::keyfile::load_or_create_key;

use crate::procs::Agent;
use crate::restart::Broker;
use crate::serve::{Served, job};

const PREFIX: &str = "natsacl";

/// `xchange bus-access --bus-prefix PREFIX` with `more` flags.
fn bus_access(more: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xchange"))
        .args(["bus-access", "--bus-prefix", PREFIX])
        .args(more)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// An agent process with its key file and price; it logs each input it runs to `log`.
fn agent(url: &str, key: &Path, price: &str, log: &Path, name: &str) -> Agent {
    let exec = format!(
        r#"input=$(cat); echo "$input" >> {}; printf '{{"by": "{name}", "input": %s}}' "$input""#,
        log.display()
    );
    let flags = ["--key-file", key.to_str().unwrap(), "--nkey", "--price", price];
    Agent::on_bus_with(url, PREFIX, "secret", &exec, &flags)
}

async fn private_db(node: &Served, org: &str, member: &str, db: &str) {
    let entry = json!({"task_listing_db_id": db, "accessibility_data": {"visibility": "private"}});
    assert_eq!(node.post("/v1/taskdbs", entry).await.0, 201);
    assert_eq!(node.post("/v1/orgs", json!({"org_id": org, "members": [member]})).await.0, 201);
    let r = crate::procs::client(Duration::from_secs(10))
        .put(format!("{}/v1/taskdbs/{db}/subscribers/{org}", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn wait_connected(node: &Served, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let entry: Value = node.get(&format!("/v1/agents/{id}")).await.json().await.unwrap();
        if entry["connected"] == true {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "agent {id} never joined: {entry}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(node: &Served, id: &str, db: Option<&str>) -> Value {
    let mut body = job(id, "secret", json!({"job": id}));
    if let Some(db) = db {
        body["task_db_id"] = json!(db);
    }
    let (status, answer) = node.post("/v1/jobs", body).await;
    assert_eq!(status, 201, "{answer}");
    let done = node.wait_done(id).await;
    assert_eq!(done["state"], "completed", "{done}");
    done["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_permissioned_nats_an_outsider_never_gets_another_organisations_private_jobs() {
    let dir = std::env::temp_dir().join(format!("xchange-natsacl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (member_key, outsider_key) = (dir.join("member.key"), dir.join("outsider.key"));
    let member = load_or_create_key(&member_key).unwrap().0.id().to_string();
    let outsider = load_or_create_key(&outsider_key).unwrap().0.id().to_string();
    let node_data = dir.join("node");
    let only_the_node = bus_access(&["--node-data", node_data.to_str().unwrap()]);
    let Some(broker) = Broker::nats_with_config(&only_the_node) else { return };
    let url = format!("nats://127.0.0.1:{}", broker.port);
    let node = Served::start_in(node_data, &["--bus", &url, "--bus-prefix", PREFIX, "--bus-nkey"]).await;
    private_db(&node, "acme", &member, "acme-private").await;
    private_db(&node, "other", &outsider, "other-private").await;
    let everyone =
        bus_access(&["--from-server", "--server", &node.base, "--api-key", crate::procs::ADMIN_KEY]);
    assert!(everyone.contains(&format!("{PREFIX}.agent.*.{member}")), "{everyone}");
    broker.reload_nats(&everyone);
    let (member_log, outsider_log) = (dir.join("member.log"), dir.join("outsider.log"));
    let _member = agent(&url, &member_key, "100", &member_log, "member");
    let _outsider = agent(&url, &outsider_key, "1", &outsider_log, "outsider");
    for id in [&member, &outsider] {
        wait_connected(&node, id).await;
    }

    // Both may take a public job: the outsider's lower price wins it.
    assert_eq!(run(&node, "public-1", None).await["by"], "outsider");
    // Its own organisation's private job runs on it over the same bus.
    assert_eq!(run(&node, "other-1", Some("other-private")).await["by"], "outsider");
    // The other organisation's private jobs run on their member only.
    for i in 0..3 {
        let id = format!("acme-{i}");
        assert_eq!(run(&node, &id, Some("acme-private")).await["by"], "member", "{id}");
    }
    let ran = std::fs::read_to_string(&outsider_log).unwrap();
    assert!(ran.contains("public-1") && ran.contains("other-1"), "{ran}");
    assert!(!ran.contains("acme-"), "the outsider ran a private job of another organisation: {ran}");
    let _ = std::fs::remove_dir_all(&dir);
}
