//! Contractor processes killed with SIGKILL while they hold contracts. Every job completes;
//! the executions the agents write in their own side logs are exactly the executions the
//! exchange recorded (one `running` event per contract started), so the exchange's count of
//! duplicate executions is the true one; and every result comes from the job's last
//! contract, so no report under an older epoch was accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::procs::{Agent, client};
use crate::serve::Served;

const AGENTS: usize = 10;
/// 30 % of the contractors.
const KILLED: usize = 3;
const JOBS: usize = 40;
/// The contracts' lease (the node's `lease_ms`): a contractor silent for longer loses them.
const LEASE_MS: u64 = 1500;

/// The contractor program: logs the start and the end of each execution to its own side log
/// (`$2`), with the contract it works under, and answers with that contract and its input.
const CONTRACTOR: &str = r#"input=$(cat)
echo "start $XCHANGE_TASK_ID $XCHANGE_EPOCH $input" >> "$2"
sleep 0.8
echo "end $XCHANGE_TASK_ID $XCHANGE_EPOCH" >> "$2"
printf '{"agent": "%s", "epoch": %s, "input": %s}' "$XCHANGE_AGENT_ID" "$XCHANGE_EPOCH" "$input"
"#;

/// One execution as a side log tells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Execution {
    job: String,
    epoch: u64,
    ended: bool,
}

fn side_log(path: &Path) -> Vec<Execution> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut runs: Vec<Execution> = Vec::new();
    // A line cut off by the kill has no newline yet: only whole lines count.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut words = line.trim_end().splitn(4, ' ');
        let (kind, task, epoch) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        let epoch: u64 = epoch.parse().unwrap();
        match kind {
            "start" => {
                let input: Value = serde_json::from_str(words.next().unwrap()).unwrap();
                let job = input["job"].as_str().unwrap().to_owned();
                runs.push(Execution { job, epoch, ended: false });
            }
            "end" => {
                let last = runs.last_mut().expect("an end follows its start");
                assert_eq!(last.epoch, epoch, "{task}: capacity 1 runs one execution at a time");
                last.ended = true;
            }
            other => panic!("side log line {other:?}"),
        }
    }
    runs
}

struct Contractor {
    agent: Option<Agent>,
    log: PathBuf,
}

async fn job_state(http: &reqwest::Client, base: &str, job: &str) -> Value {
    http.get(format!("{base}/v1/jobs/{job}")).send().await.unwrap().json().await.unwrap()
}

/// A job's events, read to the end of its stream (it ends after the terminal event).
async fn job_events(http: &reqwest::Client, base: &str, job: &str) -> Vec<Value> {
    let text = http.get(format!("{base}/v1/jobs/{job}/events")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect()
}

/// A contractor whose side log shows an execution under way that the exchange already
/// records as running (so the exchange knows of the start a kill interrupts): its index and
/// that execution.
async fn busy_contractor(
    http: &reqwest::Client,
    base: &str,
    contractors: &[Contractor],
) -> (usize, Execution) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no contractor was seen busy");
        for (i, c) in contractors.iter().enumerate().filter(|(_, c)| c.agent.is_some()) {
            let Some(run) = side_log(&c.log).pop().filter(|r| !r.ended) else { continue };
            let running = job_state(http, base, &run.job).await["state"] == "running";
            // Still the same execution, not ended meanwhile.
            if running && side_log(&c.log).pop().is_some_and(|r| r == run) {
                return (i, run);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn manager_counter(http: &reqwest::Client, base: &str, counter: &str) -> u64 {
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let sample = format!("xchange_manager_counters_total{{counter=\"{counter}\"}} ");
    let line =
        text.lines().find_map(|l| l.strip_prefix(&sample)).unwrap_or_else(|| panic!("{sample}: {text}"));
    line.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_contractors_cost_exactly_the_executions_the_exchange_counts() {
    let dir = std::env::temp_dir().join(format!("xchange-contractors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("contractor.sh");
    std::fs::write(&script, CONTRACTOR).unwrap();
    let http = client(Duration::from_secs(30));
    let config = dir.join("node.toml");
    std::fs::write(&config, format!("lease_ms = {LEASE_MS}\n")).unwrap();
    // Stopped when dropped, also when an assertion fails.
    let node = Served::start_in(dir.join("node"), &["--config", config.to_str().unwrap()]).await;
    let base = node.base.clone();
    let mut contractors: Vec<Contractor> = (0..AGENTS)
        .map(|n| {
            let log = dir.join(format!("side-{n}.log"));
            let exec = format!("sh {} {n} {}", script.display(), log.display());
            Contractor { agent: Some(Agent::start(&base, "work", &exec)), log }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents: Value = http.get(format!("{base}/v1/agents")).send().await.unwrap().json().await.unwrap();
        if agents["items"].as_array().is_some_and(|a| a.len() >= AGENTS) {
            break;
        }
        assert!(Instant::now() < deadline, "the contractors did not connect: {agents}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let jobs: Vec<String> = (0..JOBS).map(|i| format!("k{i}")).collect();
    for id in &jobs {
        let body = json!({"job_id": id, "job_goal": "survive", "submitted_by": "fault-test",
            "capability": "work", "job_init_data": {"job": id}});
        let r = http.post(format!("{base}/v1/jobs")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let mut interrupted = BTreeSet::new();
    for _ in 0..KILLED {
        let (i, run) = busy_contractor(&http, &base, &contractors).await;
        contractors[i].agent.take().unwrap().kill();
        interrupted.insert(run.job);
    }
    // One more is frozen past its contract's lease and then let go on: its execution ends,
    // but the contract was placed again meanwhile and its result must not be taken.
    let (i, paused_run) = busy_contractor(&http, &base, &contractors).await;
    let paused = contractors[i].agent.as_ref().unwrap();
    paused.signal("STOP");
    tokio::time::sleep(Duration::from_millis(3 * LEASE_MS)).await;
    paused.signal("CONT");

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut done = BTreeMap::new();
    while done.len() < JOBS {
        assert!(Instant::now() < deadline, "only {} of {JOBS} jobs ended", done.len());
        let waiting: Vec<&String> = jobs.iter().filter(|j| !done.contains_key(*j)).collect();
        for id in waiting {
            let job = job_state(&http, &base, id).await;
            match job["state"].as_str() {
                Some("completed") => _ = done.insert(id.clone(), job),
                Some("failed" | "cancelled" | "expired") => panic!("job {id} ended {job}"),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The agents' own account: every execution started, by job.
    let mut logged: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in &contractors {
        for run in side_log(&c.log) {
            logged.entry(run.job).or_default().push(run.epoch);
        }
    }
    let mut logged_duplicates = 0;
    let mut counted_duplicates = 0;
    for id in &jobs {
        let events = job_events(&http, &base, id).await;
        let of = |state: &str| -> Vec<&Value> {
            events
                .iter()
                .filter(|e| e["payload"]["state"] == state)
                .map(|e| &e["payload"]["detail"])
                .collect()
        };
        let mut running: Vec<u64> = of("running").iter().map(|p| p["epoch"].as_u64().unwrap()).collect();
        let mut started = logged.get(id).cloned().unwrap_or_default();
        running.sort_unstable();
        started.sort_unstable();
        assert_eq!(
            started, running,
            "{id}: executions logged by the agents against those the exchange recorded: {events:?}"
        );
        logged_duplicates += started.len().saturating_sub(1);
        counted_duplicates += running.len().saturating_sub(1);
        // The accepted result is the last contract's: nothing reported under an older epoch
        // (the killed contractors' executions never ended) was taken.
        let last_award = of("awarded").last().map(|p| (*p).clone()).expect("awarded");
        let result = &done[id]["result"];
        assert_eq!(result["epoch"], last_award["epoch"], "{id}: {result} against {last_award}");
        assert_eq!(result["agent"], last_award["contractor"], "{id}: {result} against {last_award}");
        assert_eq!(result["input"], json!({"job": id}));
        if interrupted.contains(id) {
            let lost = events.iter().any(|e| e["payload"]["detail"]["code_name"] == "unexpected_disconnect");
            assert!(lost, "{id}: the interrupted contract is not recorded as lost: {events:?}");
        }
    }
    assert_eq!(logged_duplicates, counted_duplicates);
    assert!(counted_duplicates > KILLED, "{counted_duplicates} re-executions for {} interrupted", KILLED + 1);
    let final_epoch = done[&paused_run.job]["result"]["epoch"].as_u64().unwrap();
    assert!(final_epoch > paused_run.epoch, "the frozen contract was not taken away: {paused_run:?}");
    // The frozen contractor did finish that execution, and its result was not taken.
    let finished = side_log(&contractors[i].log).contains(&Execution { ended: true, ..paused_run.clone() });
    assert!(finished, "the frozen contractor never finished {paused_run:?}");
    let lapsed = manager_counter(&http, &base, "lease_expiries").await;
    assert!(lapsed >= 1, "the frozen contract did not lapse");
    eprintln!("{JOBS} jobs, {KILLED} contractors killed, {counted_duplicates} executions repeated");
    drop(contractors);
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
