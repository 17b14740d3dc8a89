//! `xchange serve` killed with SIGKILL twenty times while clients submit: every job that
//! was acknowledged with a 201 is found after the restarts and carried to completion. API
//! keys are on, as by default: the clients authenticate, and a submission without a key
//! is refused.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

const KILLS: usize = 20;
const SUBMITTERS: usize = 8;

struct Server {
    child: Child,
}

impl Server {
    fn start(port: u16, data: &std::path::Path, store: Option<&str>) -> Self {
        Self { child: crate::procs::serve(port, data, store) }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Kills the server `KILLS` times under concurrent submissions, then checks every
/// acknowledged job.
pub(crate) async fn kill_and_recover(store: Option<&str>, tag: &str) {
    let data = std::env::temp_dir().join(format!("xchange-kill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = crate::procs::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = crate::procs::client(Duration::from_secs(10));
    let acked: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let in_flight = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut server = Server::start(port, &data, store);
    crate::procs::wait_ready(&http, &base).await;
    let anonymous = reqwest::Client::new().post(format!("{base}/v1/jobs")).json(&json!({})).send().await;
    assert_eq!(anonymous.unwrap().status(), 401, "the node under test must require API keys");
    let mut agent = crate::procs::Agent::start(&base, "echo", "cat");

    for round in 0..KILLS {
        let acked_before_round = acked.lock().len();
        let stop = Arc::new(AtomicBool::new(false));
        let mut submitters = Vec::new();
        for _ in 0..SUBMITTERS {
            let (http, base, acked, in_flight, next, stop) =
                (http.clone(), base.clone(), acked.clone(), in_flight.clone(), next.clone(), stop.clone());
            let tag = tag.to_owned();
            submitters.push(tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let i = next.fetch_add(1, SeqCst);
                    let id = format!("{tag}-{i}");
                    let input = json!({"i": i, "tag": tag});
                    let body = json!({"job_id": id, "job_goal": "survive", "submitted_by": "kill-test",
                        "capability": "echo", "job_init_data": input});
                    in_flight.fetch_add(1, SeqCst);
                    let answer = http.post(format!("{base}/v1/jobs")).json(&body).send().await;
                    in_flight.fetch_sub(1, SeqCst);
                    match answer {
                        Ok(r) if r.status() == 201 || r.status() == 200 => {
                            acked.lock().insert(id, input);
                        }
                        // Over the key's rate: not acknowledged; come back when told.
                        Ok(r) if r.status() == 429 => {
                            let wait = r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
                            tokio::time::sleep(Duration::from_secs(wait)).await;
                        }
                        Ok(r) => panic!(
                            "submission refused: {} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        ),
                        // The server died under this request: not acknowledged, so not owed.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        // Let submissions pile up for a varying time, then kill once this round has had
        // some acknowledged and while others are certainly in flight.
        tokio::time::sleep(Duration::from_millis(20 + (round as u64 * 37) % 200)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_flight.load(SeqCst) == 0 || acked.lock().len() < acked_before_round + 2 {
            assert!(Instant::now() < deadline, "round {round}: submissions do not go through");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let before = acked.lock().len();
        server.kill();
        stop.store(true, SeqCst);
        for s in submitters {
            s.await.unwrap();
        }
        assert!(before > acked_before_round, "round {round}: no job was acknowledged before the kill");
        server = Server::start(port, &data, store);
        crate::procs::wait_ready(&http, &base).await;
        // The agent's connection died with the server; a fresh one joins the new server.
        agent = crate::procs::Agent::start(&base, "echo", "cat");
    }

    let acked = acked.lock().clone();
    crate::procs::all_complete(&http, &base, &acked, Duration::from_secs(120)).await;
    eprintln!("{tag}: {KILLS} kills, {} acknowledged jobs, all completed", acked.len());
    drop(agent);
    server.kill();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_job_on_sqlite() {
    kill_and_recover(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_job_on_postgres() {
    let Some(url) = crate::pg::fresh_schema("kill").await else { return };
    kill_and_recover(Some(&url.url), "postgres").await;
    url.drop_schema().await;
}
