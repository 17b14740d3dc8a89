use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{TestNode, job};

/// Reads server-sent events until `n` data lines arrived.
async fn read_events(r: reqwest::Response, n: usize) -> Vec<(String, Value)> {
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let mut last_id = String::new();
    while out.len() < n {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            if let Some(id) = line.strip_prefix("id:") {
                last_id = id.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                out.push((last_id.clone(), serde_json::from_str(data.trim()).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_stream_is_filtered_live_and_resumable() {
    let t = TestNode::start().await;
    t.host(1, "echo", Value::clone);
    let filter = urlencode(r#"{"payload.state": "completed"}"#);
    let live = t.http.get(t.url(&format!("/v1/events?filter={filter}"))).send().await.unwrap();
    assert_eq!(live.status(), 200);
    t.post("/v1/jobs", &job("ev1", "echo", json!(1))).await;
    t.post("/v1/jobs", &job("ev2", "echo", json!(2))).await;
    let got = read_events(live, 2).await;
    let mut ids: Vec<&str> = got.iter().map(|(_, e)| e["job_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ev1", "ev2"]);
    assert!(got.iter().all(|(_, e)| e["kind"] == "job_notification"));

    // Resume after the first completion: only what came later.
    let first: i64 = got[0].0.parse().unwrap();
    let r = t
        .http
        .get(t.url("/v1/events?after=0"))
        .header("last-event-id", first.to_string())
        .send()
        .await
        .unwrap();
    let later = read_events(r, 1).await;
    assert!(later[0].0.parse::<i64>().unwrap() > first);
    // Everything from the start: ev1's posting comes first.
    let r = t.http.get(t.url("/v1/events?after=0")).send().await.unwrap();
    let all = read_events(r, 1).await;
    assert_eq!((all[0].1["kind"].as_str(), all[0].1["job_id"].as_str()), (Some("job_posting"), Some("ev1")));
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
