//! `xchange serve` with programs wrapped by `xchange agent run`, as the README shows.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::procs::{Agent, free_port, serve_with, wait_ready};

fn client() -> reqwest::Client {
    crate::procs::client(Duration::from_secs(30))
}

/// A node in a child process, stopped with SIGTERM when dropped.
pub(crate) struct Served {
    child: Child,
    pub(crate) base: String,
    data: std::path::PathBuf,
}

impl Served {
    pub(crate) async fn start(tag: &str) -> Self {
        Self::start_with(tag, &[]).await
    }

    pub(crate) async fn start_with(tag: &str, flags: &[&str]) -> Self {
        let data = std::env::temp_dir().join(format!("xchange-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        Self::start_in(data, flags).await
    }

    /// A node whose data folder is `data` (kept if it exists: its key, say).
    pub(crate) async fn start_in(data: std::path::PathBuf, flags: &[&str]) -> Self {
        let port = free_port();
        let child = serve_with(port, &data, flags);
        let served = Self { child, base: format!("http://127.0.0.1:{port}"), data };
        wait_ready(&reqwest::Client::new(), &served.base).await;
        served
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = client().post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// GET with the admin key.
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        client().get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    pub(crate) async fn wait_done(&self, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job: Value = self.get(&format!("/v1/jobs/{job_id}")).await.json().await.unwrap();
            if matches!(job["state"].as_str(), Some("completed" | "failed" | "cancelled" | "expired")) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} did not end: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM first: a graceful shutdown must end the process.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.data);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("xchange serve did not stop on SIGTERM");
    }
}

pub(crate) fn job(id: &str, capability: &str, input: Value) -> Value {
    json!({"job_id": id, "job_goal": "readme", "submitted_by": "curl", "capability": capability,
        "job_init_data": input, "job_priority_value": 3})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_programs_answer_jobs_and_queries_find_them() {
    let s = Served::start("readme").await;
    let _echo = Agent::start(&s.base, "echo", "cat");
    let _upper = Agent::start(&s.base, "upper", "tr a-z A-Z");

    let input = json!({"text": "hello, exchange", "n": [1, 2, 3]});
    let (status, _) = s.post("/v1/jobs", job("echo-1", "echo", input.clone())).await;
    assert_eq!(status, 201);
    let done = s.wait_done("echo-1").await;
    assert_eq!((done["state"].as_str(), &done["result"]), (Some("completed"), &input), "{done}");

    s.post("/v1/jobs", job("upper-1", "upper", json!({"text": "shout this"}))).await;
    let done = s.wait_done("upper-1").await;
    assert_eq!(done["result"], json!({"TEXT": "SHOUT THIS"}), "{done}");

    let (status, page) = s
        .post(
            "/v1/jobs/query",
            json!({"filter": {"capability": {"$in": ["echo", "upper"]}, "state": "completed"}}),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");

    let entry = json!({"task_listing_db_id": "text-eu", "association_ids": [], "collection_ids": [],
        "search_metadata": {"tags": ["text", "eu"]}, "task_db_cluster_id": "eu-1"});
    assert_eq!(s.post("/v1/taskdbs", entry).await.0, 201);
    let (_, found) = s
        .post("/v1/taskdbs/query", json!({"filter": {"search_metadata.tags": {"$all": ["text", "eu"]}}}))
        .await;
    assert_eq!(found["items"][0]["entry"]["task_listing_db_id"], "text-eu", "{found}");

    // An unknown filter operator and a schema violation, as a user would make them.
    let (status, err) =
        s.post("/v1/jobs/query", json!({"filter": {"state": {"$equals": "completed"}}})).await;
    assert_eq!((status, err["error"]["code"].as_u64()), (422, Some(5014)), "{err}");
    let (status, err) = s.post("/v1/jobs", json!({"job_goal": 1, "capability": "echo"})).await;
    assert_eq!((status, err["error"]["code"].as_u64()), (422, Some(5014)), "{err}");
}
