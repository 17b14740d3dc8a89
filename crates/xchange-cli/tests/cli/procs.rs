//! The `xchange` binary's long-running commands as child processes: `serve` and `agent run`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `xchange serve` on `port` with data in `data` (and the store at `store` if given).
pub(crate) fn serve(port: u16, data: &Path, store: Option<&str>) -> Child {
    let store: Vec<&str> = store.map(|url| vec!["--store", url]).unwrap_or_default();
    serve_with(port, data, &store)
}

/// The admin API key every node these tests start is given (`XCHANGE_ADMIN_KEY`), so that
/// the clients of several nodes on one store share it.
pub(crate) const ADMIN_KEY: &str = "xck_testadmin_0123456789abcdefghijklmnopqrstuvwxyz";

/// A client that sends [`ADMIN_KEY`], with a timeout per request.
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    client_builder().timeout(timeout).build().unwrap()
}

/// A client builder whose requests send [`ADMIN_KEY`].
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers)
}

/// `xchange serve` on `port` with data in `data` and more flags.
pub(crate) fn serve_with(port: u16, data: &Path, flags: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xchange"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"]).arg(data).args(flags);
    cmd.env("RUST_LOG", "warn")
        .env("XCHANGE_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xchange serve starts")
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until the server at `base` answers `/healthz`.
pub(crate) async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server did not come up at {base}");
}

/// `xchange agent run`, killed when dropped.
pub(crate) struct Agent {
    child: Child,
}

impl Agent {
    pub(crate) fn start(base: &str, capability: &str, exec: &str) -> Self {
        Self::start_with(&["--server", base], capability, exec)
    }

    /// An agent that joins the bus at `url` under `prefix` instead of a node.
    pub(crate) fn on_bus(url: &str, prefix: &str, capability: &str, exec: &str) -> Self {
        Self::start_with(&["--bus", url, "--bus-prefix", prefix], capability, exec)
    }

    /// [`Agent::on_bus`] with more flags (`--capacity`, ...).
    pub(crate) fn on_bus_with(url: &str, prefix: &str, capability: &str, exec: &str, more: &[&str]) -> Self {
        let join: Vec<&str> =
            ["--bus", url, "--bus-prefix", prefix].into_iter().chain(more.iter().copied()).collect();
        Self::start_with(&join, capability, exec)
    }

    fn start_with(join: &[&str], capability: &str, exec: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_xchange"))
            .args(["agent", "run"])
            .args(join)
            .args(["--capability", capability, "--exec", exec])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xchange agent run starts");
        Self { child }
    }
}

/// Sends signal `name` (`STOP`, `CONT`, ...) to process `pid`.
pub(crate) fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().expect("kill runs");
    assert!(ok.success(), "kill -{name} {pid}");
}

impl Agent {
    /// Sends signal `name` to the agent's process.
    pub(crate) fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// SIGKILL: the agent says no goodbye and its connection just breaks.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a script of the repository (`path` from the workspace root) with bash, with the
/// built `xchange` as `XCHANGE_BIN` and `envs`; asserts that it succeeded and returns its
/// standard output (both outputs are printed, for a failing run's log).
pub(crate) fn run_script(path: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .env("XCHANGE_BIN", env!("CARGO_BIN_EXE_xchange"))
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "{} failed ({}):\n{stdout}{stderr}", script.display(), out.status);
    stdout
}

/// Every acknowledged job completes, within `within`, with its input as result (the test
/// agents echo); a lost or failed one fails the test.
pub(crate) async fn all_complete(
    http: &reqwest::Client,
    base: &str,
    acked: &std::collections::BTreeMap<String, serde_json::Value>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let mut pending: Vec<&String> = acked.keys().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} acknowledged jobs did not complete, e.g. {}",
            pending.len(),
            pending[0]
        );
        let mut still = Vec::new();
        for id in pending {
            let r = http.get(format!("{base}/v1/jobs/{id}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "acknowledged job {id} is lost");
            let job: serde_json::Value = r.json().await.unwrap();
            match job["state"].as_str() {
                Some("completed") => assert_eq!(job["result"], acked[id], "job {id} has another result"),
                Some("failed" | "cancelled" | "expired") => panic!("job {id} ended {job}"),
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
