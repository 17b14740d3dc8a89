//! Replicas: several `xchange serve` processes on one PostgreSQL schema and one NATS bus
//! split the jobs into leased partitions. One is SIGKILLed under load, or SIGSTOPped past
//! its lease and resumed: every acknowledged job completes once, through the others, and
//! the paused node's writes under its old epochs are refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

use crate::procs::Agent;

/// Short, so that the tests wait little for a takeover.
const LEASE_MS: u64 = 2_000;
const PARTITIONS: u32 = 12;

struct Replica {
    child: Option<Child>,
    base: String,
    data: PathBuf,
}

impl Replica {
    fn start(n: usize, tag: &str, store: &str, nats: &str, prefix: &str) -> Self {
        let port = crate::procs::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let data = std::env::temp_dir().join(format!("xchange-replica-{tag}-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let lease = LEASE_MS.to_string();
        let partitions = PARTITIONS.to_string();
        let flags = [
            "--store",
            store,
            "--bus",
            nats,
            "--bus-prefix",
            prefix,
            "--advertise-url",
            &base,
            "--partitions",
            &partitions,
            "--partition-lease-ms",
            &lease,
        ];
        Self { child: Some(crate::procs::serve_with(port, &data, &flags)), base, data }
    }

    fn signal(&self, name: &str) {
        crate::procs::signal(self.child.as_ref().expect("running").id(), name);
    }

    fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.sigkill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn status(http: &reqwest::Client, base: &str) -> Value {
    let r = http.get(format!("{base}/v1/cluster")).send().await.expect("GET /v1/cluster");
    assert_eq!(r.status(), 200);
    r.json().await.expect("JSON")
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in the metrics:\n{text}"))
}

/// Waits until `check` holds for the cluster status as `base` reads it.
async fn wait_for_status(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(http, base).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never: {what}; last status {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node of `ids` alive and holding at least one partition, and every partition held.
fn balanced(s: &Value, alive: usize) -> bool {
    let nodes = s["nodes"].as_array().unwrap();
    let live: Vec<&Value> = nodes.iter().filter(|n| n["alive"] == true).collect();
    live.len() == alive
        && live.iter().all(|n| !n["partitions"].as_array().unwrap().is_empty())
        && s["partitions"].as_array().unwrap().iter().all(|p| p["live"] == true)
}

/// Submits jobs to `bases` in turn until `stop`; records those acknowledged.
fn submit_until(
    http: &reqwest::Client,
    bases: Vec<String>,
    tag: &str,
    acked: Arc<Mutex<BTreeMap<String, Value>>>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let next = Arc::new(AtomicU64::new(0));
    (0..6)
        .map(|_| {
            let (http, bases, acked, stop, next, tag) =
                (http.clone(), bases.clone(), acked.clone(), stop.clone(), next.clone(), tag.to_owned());
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let i = next.fetch_add(1, SeqCst);
                    let id = format!("{tag}-{i}");
                    let input = json!({"i": i});
                    let body = json!({"job_id": id, "job_goal": "replicate", "submitted_by": "replica-test",
                        "capability": "echo", "job_init_data": input});
                    let base = &bases[i as usize % bases.len()];
                    match http.post(format!("{base}/v1/jobs")).json(&body).send().await {
                        Ok(r) if r.status() == 201 || r.status() == 200 => {
                            acked.lock().insert(id, input);
                        }
                        // Refused (a node between partitions) or dead: not acknowledged,
                        // so not owed. Refusals must say why, with a code.
                        Ok(r) => {
                            let body: Value = r.json().await.unwrap_or_default();
                            assert!(body["error"]["code"].is_u64(), "a refusal without a code: {body}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect()
}

/// What the store holds, checked in SQL: no job completed twice, and no job has an event
/// written under an older lease after one written under a newer lease of its partition
/// (which is what a second manager writing would leave).
async fn check_store(store: &str) -> (usize, usize) {
    let mut pg = PgConnection::connect(store).await.expect("connect");
    let twice = sqlx::query(
        "SELECT job_id, COUNT(*) AS n FROM events WHERE payload->>'state' = 'completed' \
         GROUP BY job_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    assert!(twice.is_empty(), "{} jobs completed twice", twice.len());
    let rows = sqlx::query(
        "SELECT job_id, (payload->'manager'->>'epoch')::BIGINT AS epoch, payload->'manager'->>'node' AS node \
         FROM events WHERE kind = 'job_notification' ORDER BY job_id, id",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    let (mut last, mut managed_by_two) = (None::<(String, i64)>, 0);
    let mut nodes_per_job: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        let (job, epoch, node): (String, i64, String) =
            (row.get("job_id"), row.get("epoch"), row.get("node"));
        if let Some((prev_job, prev_epoch)) = &last
            && *prev_job == job
        {
            assert!(
                epoch >= *prev_epoch,
                "job {job}: an event under epoch {epoch} after one under {prev_epoch}"
            );
        }
        nodes_per_job.entry(job.clone()).or_default().insert(node);
        last = Some((job, epoch));
    }
    managed_by_two += nodes_per_job.values().filter(|n| n.len() > 1).count();
    let _ = pg.close().await;
    (rows.len(), managed_by_two)
}

async fn setup(tag: &str) -> Option<(crate::pg::Schema, String, String)> {
    let Ok(nats) = std::env::var("XCHANGE_TEST_NATS") else {
        eprintln!("XCHANGE_TEST_NATS is not set: skipped");
        return None;
    };
    let schema = crate::pg::fresh_schema(tag).await?;
    let prefix = crate::bus::unique_prefix(tag);
    Some((schema, nats, prefix))
}

fn agents(nats: &str, prefix: &str, n: usize) -> Vec<Agent> {
    (0..n).map(|_| Agent::on_bus_with(nats, prefix, "echo", "sleep 0.2; cat", &["--capacity", "8"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_no_job_when_the_busiest_is_killed() {
    let Some((schema, nats, prefix)) = setup("rkill").await else { return };
    let http = crate::procs::client(Duration::from_secs(15));
    let mut nodes: Vec<Replica> =
        (0..3).map(|n| Replica::start(n, "kill", &schema.url, &nats, &prefix)).collect();
    for node in &nodes {
        crate::procs::wait_ready(&http, &node.base).await;
    }
    let _agents = agents(&nats, &prefix, 3);
    wait_for_status(&http, &nodes[0].base, "three nodes share the partitions", |s| balanced(s, 3)).await;

    // `xchange cluster status` lists each node with its partitions.
    let out = Command::new(env!("CARGO_BIN_EXE_xchange"))
        .args(["cluster", "status", "--server", &nodes[1].base, "--api-key", crate::procs::ADMIN_KEY])
        .output()
        .expect("xchange cluster status runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.starts_with("cluster: 3 nodes (3 alive), 12 partitions"),
        "{table}"
    );
    let node_lines = table.lines().filter(|l| l.contains(" yes ") && l.contains("http://127.0.0.1:")).count();
    assert_eq!(node_lines, 3, "{table}");

    let acked: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let submitters = submit_until(&http, bases, "rkill", acked.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The victim: the node with the most jobs in flight.
    let mut running = Vec::new();
    for node in &nodes {
        running.push(status(&http, &node.base).await["running_jobs"].as_u64().unwrap());
    }
    let victim = (0..3).max_by_key(|&i| running[i]).unwrap();
    assert!(running[victim] > 0, "no job in flight: {running:?}");
    let victim_id = status(&http, &nodes[victim].base).await["node_id"].as_str().unwrap().to_owned();
    let killed_at = Instant::now();
    nodes[victim].sigkill();
    eprintln!("killed node {victim} ({victim_id}) with {running:?} jobs in flight");
    let survivor = nodes[(victim + 1) % 3].base.clone();

    // Its partitions go to the two others once its lease lapses.
    let s = wait_for_status(&http, &survivor, "the survivors take the dead node's partitions", |s| {
        balanced(s, 2) && s["partitions"].as_array().unwrap().iter().all(|p| p["owner"] != victim_id.as_str())
    })
    .await;
    eprintln!("partitions taken over {} ms after the kill", killed_at.elapsed().as_millis());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, SeqCst);
    for s in submitters {
        s.await.unwrap();
    }
    let acked = acked.lock().clone();
    crate::procs::all_complete(&http, &survivor, &acked, Duration::from_secs(180)).await;
    let takeovers: u64 = {
        let mut n = 0;
        for (i, node) in nodes.iter().enumerate() {
            if i != victim {
                n += metric(&http, &node.base, "xchange_partition_takeovers_total").await;
            }
        }
        n
    };
    let victim_partitions =
        s["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == victim_id.as_str());
    assert_eq!(victim_partitions.map(|n| n["alive"].clone()), Some(json!(false)));
    assert!(takeovers >= 1, "no takeover counted");
    let (events, _) = check_store(&schema.url).await;
    eprintln!(
        "{} acknowledged jobs completed once each; {events} notifications; {takeovers} takeovers",
        acked.len()
    );
    drop(nodes);
    crate::bus::clean_nats(&nats, &prefix).await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_cannot_write_after_its_lease_was_taken() {
    let Some((schema, nats, prefix)) = setup("rstop").await else { return };
    let http = crate::procs::client(Duration::from_secs(20));
    let nodes: Vec<Replica> =
        (0..2).map(|n| Replica::start(n, "stop", &schema.url, &nats, &prefix)).collect();
    for node in &nodes {
        crate::procs::wait_ready(&http, &node.base).await;
    }
    let _agents = agents(&nats, &prefix, 2);
    wait_for_status(&http, &nodes[0].base, "two nodes share the partitions", |s| balanced(s, 2)).await;
    let (paused, other) = (&nodes[0], &nodes[1]);
    let paused_id = status(&http, &paused.base).await["node_id"].as_str().unwrap().to_owned();

    // Jobs in flight on the node about to be paused.
    let acked: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let submitters = submit_until(&http, vec![paused.base.clone()], "rstop", acked.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, SeqCst);
    for s in submitters {
        s.await.unwrap();
    }
    assert!(status(&http, &paused.base).await["running_jobs"].as_u64().unwrap() > 0, "nothing in flight");

    paused.signal("STOP");
    wait_for_status(&http, &other.base, "the other node takes every partition", |s| {
        s["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["live"] == true && p["owner"] != paused_id.as_str())
    })
    .await;
    // Submissions queued at the paused node meet its stale leases the moment it resumes.
    let late: Vec<_> = (0..8)
        .map(|i| {
            let (http, base) = (http.clone(), paused.base.clone());
            tokio::spawn(async move {
                let body = json!({"job_id": format!("rstop-late-{i}"), "job_goal": "replicate",
                    "submitted_by": "replica-test", "capability": "echo", "job_init_data": {"late": i}});
                let r = http.post(format!("{base}/v1/jobs")).json(&body).send().await.unwrap();
                (format!("rstop-late-{i}"), r.status().as_u16(), json!({"late": i}))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    paused.signal("CONT");
    for handle in late {
        let (id, status, input) = handle.await.unwrap();
        if status == 201 || status == 200 {
            acked.lock().insert(id, input);
        }
    }

    let acked = acked.lock().clone();
    crate::procs::all_complete(&http, &other.base, &acked, Duration::from_secs(180)).await;
    let fenced = metric(&http, &paused.base, "xchange_fenced_writes_total").await;
    let lost = metric(&http, &paused.base, "xchange_partitions_lost_total").await;
    assert!(fenced >= 1, "the resumed node wrote nothing under its old epochs?");
    assert!(lost >= 1, "the resumed node did not notice it lost its partitions");
    let (events, managed_by_two) = check_store(&schema.url).await;
    eprintln!(
        "{} jobs completed once each; the resumed node had {fenced} writes refused and lost {lost} \
         partitions; {managed_by_two} jobs moved between managers, never back ({events} notifications)",
        acked.len()
    );
    drop(nodes);
    crate::bus::clean_nats(&nats, &prefix).await;
    schema.drop_schema().await;
}
