//! A service restarting under load: NATS or Redis as the bus, PostgreSQL as the store. The
//! node and the agent reconnect, and every job the node acknowledged completes. Each test
//! starts its own nats-server, redis-server or postgres on a free port and restarts that
//! one, never the shared servers.

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
pub(crate) struct Broker {
    program: String,
    args: Vec<String>,
    /// How an operator stops it: SIGTERM, or SIGINT for PostgreSQL (its SIGTERM waits for
    /// every client to leave, which a connection pool never does).
    stop_signal: &'static str,
    child: Child,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Broker {
    fn nats() -> Option<Self> {
        Self::nats_with_config("")
    }

    /// NATS with JetStream and `config` (an `authorization` block, say) in its file.
    pub(crate) fn nats_with_config(config: &str) -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xchange-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = write_nats_conf(&dir, port, config);
        Self::start(installed("nats-server")?, vec!["-c".into(), file.to_str()?.to_owned()], port, dir)
    }

    /// Rewrites a NATS server's `config` and has it reload it (SIGHUP), as an operator
    /// does when an agent is added; connected clients stay connected.
    pub(crate) fn reload_nats(&self, config: &str) {
        write_nats_conf(&self.dir, self.port, config);
        crate::procs::signal(self.child.id(), "HUP");
    }

    fn redis() -> Option<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xchange-redis-{}-{port}", std::process::id()));
        let args = ["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"];
        Self::start(installed("redis-server")?, args.iter().map(|s| s.to_string()).collect(), port, dir)
    }

    /// A fresh cluster (`initdb`) in a temporary folder, run as the `postgres` user when the
    /// tests run as root (PostgreSQL refuses to run as root).
    fn postgres() -> Option<Self> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
        let Some(bin) = versions.map(|e| e.path().join("bin")).max() else {
            eprintln!("PostgreSQL is not installed under /usr/lib/postgresql: skipped");
            return None;
        };
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("xchange-pg-{}-{port}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if as_root {
            let status = Command::new("chown").args(["postgres:postgres", dir.to_str()?]).status().unwrap();
            assert!(status.success(), "chown {}", dir.display());
        }
        let as_owner = |program: PathBuf, args: Vec<String>| -> (String, Vec<String>) {
            let program = program.to_str().unwrap().to_owned();
            if !as_root {
                return (program, args);
            }
            let setpriv = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"];
            (
                "/usr/bin/setpriv".into(),
                setpriv.iter().map(|s| s.to_string()).chain([program]).chain(args).collect(),
            )
        };
        let init = ["-D", data.to_str()?, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"];
        let (program, args) = as_owner(bin.join("initdb"), init.iter().map(|s| s.to_string()).collect());
        let out = Command::new(&program).args(&args).output().unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let run = [
            "-D",
            data.to_str()?,
            "-p",
            &port.to_string(),
            "-k",
            dir.to_str()?,
            "-c",
            "listen_addresses=127.0.0.1",
        ];
        let (program, args) = as_owner(bin.join("postgres"), run.iter().map(|s| s.to_string()).collect());
        let child = spawn(&program, &args);
        let broker = Self { program, args, stop_signal: "-INT", child, port, dir };
        broker.wait_up();
        Some(broker)
    }

    fn start(program: String, args: Vec<String>, port: u16, dir: PathBuf) -> Option<Self> {
        let child = spawn(&program, &args);
        let broker = Self { program, args, stop_signal: "-TERM", child, port, dir };
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

    /// Stops the server as an operator would and starts it again.
    fn restart(&mut self) {
        let _ = Command::new("kill").args([self.stop_signal, &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.child = spawn(&self.program, &self.args);
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

fn write_nats_conf(dir: &std::path::Path, port: u16, config: &str) -> PathBuf {
    let file = dir.join("nats.conf");
    let store = dir.join("js");
    let text =
        format!("listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n{config}", store.display());
    std::fs::write(&file, text).unwrap();
    file
}

/// The program's path, or `None` (the test is skipped, saying so) when not installed.
fn installed(program: &str) -> Option<String> {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("{program} is not installed: skipped");
    }
    Some(found?.to_str()?.to_owned())
}

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"))
}

/// Submits 60 jobs over 3 s while `broker` restarts after 1.2 s; every job the node
/// acknowledged must complete, and every submission refused meanwhile must be refused with
/// a 503 and its code, not lost or answered with a bare error. Returns the refusals' count.
async fn jobs_survive_a_restart(broker: &mut Broker, node: &Served) -> usize {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let submitter = {
        let (base, answers) = (node.base.clone(), answers.clone());
        tokio::spawn(async move {
            let http = crate::procs::client(Duration::from_secs(10));
            for i in 0..60 {
                let id = format!("r{i}");
                let body = job(&id, "upper", json!({"n": i}));
                if let Ok(r) = http.post(format!("{base}/v1/jobs")).json(&body).send().await {
                    let status = r.status().as_u16();
                    let answer: serde_json::Value = r.json().await.unwrap_or_default();
                    answers.lock().push((id, status, answer));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    tokio::task::block_in_place(|| broker.restart());
    submitter.await.unwrap();
    let answers = answers.lock().clone();
    let acked: Vec<&String> =
        answers.iter().filter(|(_, status, _)| *status == 201).map(|(id, ..)| id).collect();
    assert!(acked.len() >= 40, "the node acknowledged only {} of 60 jobs: {answers:?}", acked.len());
    let refused: Vec<_> = answers.iter().filter(|(_, status, _)| *status != 201).collect();
    for (id, status, answer) in &refused {
        assert!(*status == 503 && answer["code"].is_u64(), "{id}: {status} {answer}");
    }
    for id in acked {
        let done = node.wait_done(id).await;
        assert_eq!(done["state"], "completed", "{done}");
    }
    refused.len()
}

async fn bus_restart(mut broker: Broker, scheme: &str) {
    let url = format!("{scheme}://127.0.0.1:{}", broker.port);
    let prefix = format!("restart{scheme}");
    let node = Served::start_with(&prefix, &["--bus", &url, "--bus-prefix", &prefix]).await;
    let _agent = Agent::on_bus(&url, &prefix, "upper", "tr a-z A-Z");
    jobs_survive_a_restart(&mut broker, &node).await;
    let metrics = reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap();
    assert!(
        !metrics.contains("xchange_bus_disconnects_total 0"),
        "the node never saw the restart:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_job() {
    let Some(mut broker) = Broker::postgres() else { return };
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", broker.port);
    let node = Served::start_with("restartpg", &["--store", &url]).await;
    let _agent = Agent::start(&node.base, "upper", "tr a-z A-Z");
    let refused = jobs_survive_a_restart(&mut broker, &node).await;
    eprintln!("postgres restarted: {refused} submissions refused with 503 meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_under_load_loses_no_acknowledged_job() {
    let Some(broker) = Broker::nats() else { return };
    bus_restart(broker, "nats").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_no_acknowledged_job() {
    let Some(broker) = Broker::redis() else { return };
    bus_restart(broker, "redis").await;
}
