//! A 201 is sent only after the job's commit: a store that delays or fails its commits
//! shows it.

use std::time::{Duration, Instant};

use serde_json::json;
use xchange_node::{Node, NodeConfig};
use xchange_store::FaultyStore;

use crate::common::{admin_client, answer, job, refused, unique_dir};

#[tokio::test]
async fn no_201_before_the_commit_and_none_when_it_fails() {
    let dir = unique_dir("faulty");
    let config = NodeConfig { data: dir.clone(), ..NodeConfig::default() };
    let store = FaultyStore::new(xchange_store::open(&config.store_url()).await.unwrap());
    let node = Node::start(config, store.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(xchange_node::run(listener, node.clone(), std::future::pending()));
    let http = admin_client(&dir);
    let get = |id: &str| http.get(format!("{base}/v1/jobs/{id}")).send();

    store.set_commit_delay(Duration::from_millis(600));
    let started = Instant::now();
    let submit =
        tokio::spawn(http.post(format!("{base}/v1/jobs")).json(&job("slow", "none", json!(1))).send());
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!submit.is_finished(), "answered before the commit");
        assert_eq!(get("slow").await.unwrap().status(), 404, "readable before the commit");
    }
    let (status, body) = answer(submit.await.unwrap().unwrap()).await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(get("slow").await.unwrap().status(), 200);

    store.set_commit_delay(Duration::ZERO);
    store.fail_commits(true);
    let r = http.post(format!("{base}/v1/jobs")).json(&job("lost", "none", json!(2))).send().await.unwrap();
    refused(&answer(r).await, 503, 5039);
    store.fail_commits(false);
    assert_eq!(get("lost").await.unwrap().status(), 404, "a failed commit left a job behind");
    // The client retries the same job and it goes through.
    let r = http.post(format!("{base}/v1/jobs")).json(&job("lost", "none", json!(2))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(store.failed_writes() >= 1);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
