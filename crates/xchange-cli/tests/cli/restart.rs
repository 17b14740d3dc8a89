//! A bus server restarting under load: the node and the agent reconnect, and every job the
//! node acknowledged completes. Each test starts its own nats-server or redis-server on a
//! free port and restarts that one, never the shared servers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use crate::procs::{Agent, free_port};
use crate::serve::{Served, job};

/// A private broker process, restartable on the same port (and, for NATS, the same
/// JetStream folder, so streams and the directory survive as they would in production).
struct Broker {
    program: &'static str,
    args: Vec<String>,
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn nats() -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xchange-nats-{}-{port}", std::process::id()));
        let args = ["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", dir.to_str()?];
        Self::start("nats-server", args.iter().map(|s| s.to_string()).collect(), port, dir)
    }

    fn redis() -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xchange-redis-{}-{port}", std::process::id()));
        let args = ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"];
        Self::start("redis-server", args.iter().map(|s| s.to_string()).collect(), port, dir)
    }

    fn start(program: &'static str, args: Vec<String>, port: u16, dir: PathBuf) -> Option<Self> {
        let child = spawn(program, &args)?;
        let broker = Self { program, args, child, port, dir };
        broker.wait_up();
        Some(broker)
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "{} did not come up on {}", self.program, self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGTERM, as an operator would) and starts it again.
    fn restart(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.child = spawn(self.program, &self.args).expect("the broker starts again");
        self.wait_up();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(program: &str, args: &[String]) -> Option<Child> {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.exists());
    let Some(path) = found else {
        eprintln!("{program} is not installed: skipped");
        return None;
    };
    Some(
        Command::new(path)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("broker starts"),
    )
}

/// Submits jobs steadily for `total` while `broker` restarts halfway; every acknowledged
/// job must complete.
async fn jobs_survive_a_restart(mut broker: Broker, scheme: &str) {
    let url = format!("{scheme}://127.0.0.1:{}", broker.port);
    let prefix = format!("restart{scheme}");
    let node = Served::start_with(&prefix, &["--bus", &url, "--bus-prefix", &prefix]).await;
    let _agent = Agent::on_bus(&url, &prefix, "upper", "tr a-z A-Z");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let submitter = {
        let (base, acked) = (node.base.clone(), acked.clone());
        tokio::spawn(async move {
            let http = crate::procs::client(Duration::from_secs(10));
            for i in 0..60 {
                let id = format!("r{i}");
                let body = job(&id, "upper", json!({"n": i}));
                if let Ok(r) = http.post(format!("{base}/v1/jobs")).json(&body).send().await
                    && r.status() == 201
                {
                    acked.lock().push(id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    tokio::task::block_in_place(|| broker.restart());
    submitter.await.unwrap();
    let acked = acked.lock().clone();
    assert!(acked.len() >= 50, "the node acknowledged only {} of 60 jobs", acked.len());
    for id in &acked {
        let done = node.wait_done(id).await;
        assert_eq!(done["state"], "completed", "{done}");
    }
    let metrics = reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap();
    assert!(
        !metrics.contains("xchange_bus_disconnects_total 0"),
        "the node never saw the restart:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_under_load_loses_no_acknowledged_job() {
    let Some(broker) = Broker::nats() else { return };
    jobs_survive_a_restart(broker, "nats").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_no_acknowledged_job() {
    let Some(broker) = Broker::redis() else { return };
    jobs_survive_a_restart(broker, "redis").await;
}
