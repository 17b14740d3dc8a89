//! How many durable submissions per second a store takes from many concurrent submitters:
//! a program that prints figures, not a test.
//!
//! ```text
//! cargo run --release -p xchange-store --example submit_throughput -- [URL] [SUBMITTERS] [JOBS] [THREADS]
//! ```
//!
//! URL defaults to a SQLite file in a fresh temporary directory; `postgres://...` measures
//! PostgreSQL (in the schema the URL's `search_path` names, which must be empty of an
//! older store's jobs). Each submitter submits its share of JOBS new jobs one after the
//! other, so that SUBMITTERS submissions are in flight at any time; then every job is
//! moved once (`transition`) the same way. THREADS is the number of tokio worker threads
//! (default 2; 1 runs everything but SQLite's own worker thread on one thread).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use xchange_store::{AnyStore, JobState, NewEvent, NewJob, Store, Transition, open};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).filter(|a| !a.is_empty());
    let dir = std::env::temp_dir().join(format!("xchange-throughput-{}", std::process::id()));
    let url = match arg(0) {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&dir)?;
            format!("sqlite://{}", dir.join("store.db").display())
        }
    };
    let submitters: u64 = arg(1).map_or(Ok(64), |a| a.parse())?;
    let jobs: u64 = arg(2).map_or(Ok(20_000), |a| a.parse())?;
    let threads: usize = arg(3).map_or(Ok(2), |a| a.parse())?;
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    println!("store {url}, {submitters} concurrent submitters, {jobs} jobs, {threads} worker threads");
    let outcome = runtime.block_on(measure(&url, submitters, jobs));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(url: &str, submitters: u64, jobs: u64) -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(open(url).await?);
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();

    let elapsed = drive(&store, submitters, jobs, move |store, n| async move {
        let job = NewJob {
            job_id: format!("run{run}-job{n:08}"),
            taskdb: format!("db{}", n % 4),
            document: json!({"job_goal": {"text": format!("summarise report {n}")}, "submitted_by": "bench",
                             "job_priority_value": n % 10, "job_init_data": {"max_words": 200}}),
            body_hash: format!("{n:064x}"),
            now_ms: 1,
            fence: None,
        };
        assert!(store.submit_job(job).await.expect("submit").is_created());
    })
    .await;
    report("submit_job", jobs, elapsed);

    let elapsed = drive(&store, submitters, jobs, move |store, n| async move {
        let t = Transition {
            job_id: format!("run{run}-job{n:08}"),
            expected_version: 1,
            state: JobState::Announced,
            result: None,
            reason_code: None,
            event: NewEvent { kind: "announced".to_owned(), payload: json!({"n": n}) },
            now_ms: 2,
            fence: None,
        };
        store.transition(t).await.expect("transition");
    })
    .await;
    report("transition", jobs, elapsed);
    store.close().await;
    Ok(())
}

/// Runs `op(store, n)` for every `n < jobs`, from `submitters` tasks at once.
async fn drive<F, Fut>(store: &Arc<AnyStore>, submitters: u64, jobs: u64, op: F) -> Duration
where
    F: Fn(Arc<AnyStore>, u64) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..submitters)
        .map(|task| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for n in (task..jobs).step_by(submitters as usize) {
                    op(Arc::clone(&store), n).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    start.elapsed()
}

fn report(what: &str, n: u64, elapsed: Duration) {
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("{what:<12} {n} in {:.2} s: {rate:.0}/s", elapsed.as_secs_f64());
}
