use serde_json::{Value, json};
use xchange_node::NodeConfig;

use crate::common::{TestNode, job, refused, unique_dir};

const RULES: &str = r#"
version = 1

[[rule]]
name = "urgent-gets-priority"
expr = "job.job_priority_value >= 5"
then = { priority = 100, add_tags = ["urgent"], continue = true }

[[rule]]
name = "alice-to-nlp"
when = { submitted_by = "alice" }
then = { route = { taskdb = "nlp-eu" } }

[[rule]]
name = "images-by-search"
when = { capability = "vision" }
then = { route = { search = { "search_metadata.tags" = "images" } } }
"#;

async fn node_with_rules() -> TestNode {
    let dir = unique_dir("rules");
    let path = dir.join("rules.toml");
    std::fs::write(&path, RULES).unwrap();
    let t = TestNode::start_with(NodeConfig { rules: Some(path), ..NodeConfig::default() }).await;
    for (id, tag) in [("nlp-eu", "text"), ("vision-us", "images")] {
        let entry = json!({"task_listing_db_id": id, "search_metadata": {"tags": [tag]}});
        assert_eq!(t.post("/v1/taskdbs", &entry).await.0, 201);
    }
    t
}

#[tokio::test]
async fn rules_route_set_priority_and_explain_themselves() {
    let t = node_with_rules().await;
    t.host(1, "echo", Value::clone);
    let mut alice = job("r1", "echo", json!("a"));
    alice["submitted_by"] = json!("alice");
    alice["job_priority_value"] = json!(7);
    let (status, routed) = t.post("/v1/jobs/explain", &alice).await;
    assert_eq!(status, 200, "{routed}");
    assert_eq!(routed["taskdb"], "nlp-eu");
    assert_eq!(routed["decided_by"], "rule:alice-to-nlp");
    assert_eq!(
        (routed["job_priority_value"].clone(), routed["tags"].clone()),
        (json!(100), json!(["urgent"]))
    );
    let trace = routed["trace"].as_array().unwrap();
    assert_eq!(trace[0]["rule"], "urgent-gets-priority");
    assert_eq!(trace[0]["matched"], true);
    assert!(trace[1]["why"].as_str().unwrap().contains("when"), "{routed}");

    let (status, created) = t.post("/v1/jobs", &alice).await;
    assert_eq!((status, created["taskdb"].clone()), (201, json!("nlp-eu")), "{created}");
    assert_eq!(created["document"]["job_priority_value"], 100);
    assert_eq!(t.wait_terminal("r1").await["state"], "completed");

    // A rule's registry search, and a job's own search constraints.
    let (_, routed) = t.post("/v1/jobs/explain", &job("r2", "vision", json!(null))).await;
    assert_eq!(
        (routed["taskdb"].as_str(), routed["decided_by"].as_str()),
        (Some("vision-us"), Some("rule:images-by-search"))
    );
    let mut searching = job("r3", "echo", json!(null));
    searching["search"] = json!({"search_metadata.tags": {"$in": ["text"]}});
    let (_, routed) = t.post("/v1/jobs/explain", &searching).await;
    assert_eq!((routed["taskdb"].as_str(), routed["decided_by"].as_str()), (Some("nlp-eu"), Some("search")));
    searching["search"] = json!({"search_metadata.tags": "nothing-has-this"});
    assert_eq!(refused(&t.post("/v1/jobs", &searching).await, 404, 5020).as_deref(), Some("search"));
    // Nobody's rule: the global database.
    let (_, routed) = t.post("/v1/jobs/explain", &job("r4", "echo", json!(null))).await;
    assert_eq!((routed["taskdb"].as_str(), routed["decided_by"].as_str()), (Some("global"), Some("default")));
    t.stop().await;
}

#[tokio::test]
async fn a_broken_rules_file_stops_the_node_from_starting() {
    let dir = unique_dir("bad-rules");
    let path = dir.join("rules.toml");
    std::fs::write(&path, "version = 1\n[[rule]]\nname = \"x\"\nexpr = \"job.a +\"\nthen = {}\n").unwrap();
    let config = NodeConfig { rules: Some(path), data: dir.clone(), ..NodeConfig::default() };
    let store = xchange_store::open(&config.store_url()).await.unwrap();
    let err = xchange_node::Node::start(config, store).await.err().expect("refused");
    assert!(err.message.contains("invalid rules"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
