//! A node on a fresh SQLite file, served on port 0, with agents hosted next to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::Value;
use tokio::sync::oneshot;
use xchange_core::ContractorProfile;
use xchange_node::{Node, NodeConfig};
use xchange_protocol::AgentId;
use xchange_runtime::{AgentSpec, Execution, contractor_fn};
use xchange_store::AnyStore;

pub(crate) struct TestNode {
    pub(crate) base: String,
    pub(crate) node: Arc<Node<AnyStore>>,
    pub(crate) http: reqwest::Client,
    pub(crate) dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

pub(crate) fn unique_dir(what: &str) -> std::path::PathBuf {
    let n = NEXT.fetch_add(1, Relaxed);
    let dir = std::env::temp_dir().join(format!("xchange-node-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestNode {
    pub(crate) async fn start() -> Self {
        Self::start_with(NodeConfig::default()).await
    }

    pub(crate) async fn start_with(mut config: NodeConfig) -> Self {
        let dir = unique_dir("http");
        config.data = dir.clone();
        let store = xchange_store::open(&config.store_url()).await.unwrap();
        Self::serve(config, store, dir).await
    }

    pub(crate) async fn serve(config: NodeConfig, store: AnyStore, dir: std::path::PathBuf) -> Self {
        let node = Node::start(config, store).await.unwrap();
        let http = admin_client(&node.config().data);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(xchange_node::run(listener, node.clone(), async move {
            let _ = stopped.await;
        }));
        Self { base, node, http, dir, stop: Some(stop), served: Some(served) }
    }

    /// Hosts a contractor for `capability` that answers with `f(input)`.
    pub(crate) fn host(&self, index: u64, capability: &str, f: fn(&Value) -> Value) {
        let behavior = contractor_fn(move |_ctx, spec| Execution::done(f(&spec.input)));
        let spec = AgentSpec::contractor(
            AgentId::from_index(9, index),
            ContractorProfile::new([capability]),
            behavior,
        );
        self.node.runtime().spawn_agent(spec).unwrap();
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).json(body).send().await.unwrap();
        answer(r).await
    }

    pub(crate) async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let r = self.http.post(self.url(path)).body(body).send().await.unwrap();
        answer(r).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    /// A job's events, its stream read to the end (it ends after the terminal event).
    pub(crate) async fn job_events(&self, job_id: &str) -> Vec<Value> {
        let r = self.http.get(self.url(&format!("/v1/jobs/{job_id}/events"))).send().await.unwrap();
        let text = r.text().await.unwrap();
        let data = text.lines().filter_map(|l| l.strip_prefix("data:"));
        data.map(|d| serde_json::from_str(d.trim()).unwrap()).collect()
    }

    /// Polls a job until it is in a terminal state.
    pub(crate) async fn wait_terminal(&self, job_id: &str) -> Value {
        for _ in 0..400 {
            let (status, job) = self.get(&format!("/v1/jobs/{job_id}")).await;
            assert_eq!(status, 200, "{job}");
            if matches!(job["state"].as_str(), Some("completed" | "failed" | "cancelled" | "expired")) {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("job {job_id} did not end");
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        self.node.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client that sends the admin key the node created in `data` (none without one: a
/// node with authentication off), unless a request sets its own.
pub(crate) fn admin_client(data: &std::path::Path) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::fs::read_to_string(data.join(xchange_node::ADMIN_KEY_FILE)) {
        let value = format!("Bearer {}", key.trim()).parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

pub(crate) async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A minimal valid job for `capability`.
pub(crate) fn job(id: &str, capability: &str, input: Value) -> Value {
    serde_json::json!({
        "job_id": id,
        "job_goal": "test",
        "submitted_by": "tester",
        "capability": capability,
        "job_init_data": input,
    })
}

/// Asserts an error answer's status and code, and returns its field.
pub(crate) fn refused(answer: &(u16, Value), status: u16, code: u16) -> Option<String> {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(answer.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.1);
    answer.1["error"]["field"].as_str().map(str::to_owned)
}
