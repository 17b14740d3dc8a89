//! Group commit: writes that share a transaction answer as if they had run one after the
//! other, a refused write leaves the rest of its batch alone, and a failed commit
//! acknowledges nothing.
//!
//! To put writes in one batch for certain, [`Gate`] stalls the store's writer on a lock
//! held by the test (SQLite's write lock, or the PostgreSQL outbox lock) while a first
//! write is in flight, and [`queue`] enqueues the batch's writes in order before the
//! gate opens: they are all waiting when the writer takes its next batch.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use xchange_store::{AnyStore, Job, JobState, Store, StoreError, Submitted};

use crate::fixtures::{T0, all_events, created, hash, new_job, to};
use crate::harness::{Ctx, Raw};

/// An answer of either hot write.
#[derive(Debug)]
enum Answer {
    Submit(Result<Submitted, StoreError>),
    Move(Result<Job, StoreError>),
}

type Pending<'s> = Pin<Box<dyn Future<Output = Answer> + Send + 's>>;

fn submit<'s>(store: &'s AnyStore, id: &str, n: u64) -> Pending<'s> {
    let job = new_job(id, "db", n);
    Box::pin(async move { Answer::Submit(store.submit_job(job).await) })
}

fn move_to<'s>(store: &'s AnyStore, id: &str, version: i64, state: JobState) -> Pending<'s> {
    let mut t = to(&Job { job_id: id.to_owned(), version, ..placeholder() }, state, T0 + 100 + version);
    t.event.payload = serde_json::json!({"to": state.as_str(), "from_version": version});
    Box::pin(async move { Answer::Move(store.transition(t).await) })
}

/// A job value that only carries an id and a version into [`to`].
fn placeholder() -> Job {
    Job {
        job_id: String::new(),
        taskdb: String::new(),
        state: JobState::Submitted,
        document: serde_json::Value::Null,
        body_hash: String::new(),
        result: None,
        reason_code: None,
        created_ms: 0,
        updated_ms: 0,
        version: 0,
        partition: 0,
    }
}

/// Polls each write once, in order, so that each is in the writer's queue (a submission
/// queues itself on its first poll, and then waits for its answer), then waits for all.
async fn queue(writes: Vec<Pending<'_>>, gate: Gate) -> Vec<Answer> {
    let mut writes = writes;
    // Unconstrained: tokio's cooperative budget must not make a send wait for a later poll.
    tokio::task::unconstrained(async {
        let mut cx = Context::from_waker(Waker::noop());
        for write in &mut writes {
            assert!(matches!(write.as_mut().poll(&mut cx), Poll::Pending), "answered before its commit");
        }
    })
    .await;
    gate.open().await;
    let mut answers = Vec::new();
    for write in writes {
        answers.push(write.await);
    }
    answers
}

/// Holds the lock that the writer needs, with a first write stuck behind it.
struct Gate {
    raw: Raw,
    plug: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn close(ctx: &Ctx, store: &Arc<AnyStore>) -> Self {
        let mut raw = ctx.raw().await;
        raw.execute(
            "BEGIN IMMEDIATE",
            "SELECT pg_advisory_lock(1480803670, hashtext(COALESCE(current_schema(), '')))",
        )
        .await;
        let plug = tokio::spawn({
            let store = Arc::clone(store);
            async move {
                created(&store, new_job("plug", "db", 999)).await;
            }
        });
        // Long enough for the writer to take the plug alone and stall on the lock; were it
        // slower, the plug would join the batch, which the tests do not assert about.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!plug.is_finished(), "the writer did not wait for the gate");
        Self { raw, plug }
    }

    async fn open(mut self) {
        self.raw.execute("ROLLBACK", "SELECT pg_advisory_unlock_all()").await;
        self.plug.await.expect("the plug was committed");
        self.raw.close().await;
    }
}

fn created_job(answer: &Answer) -> &Job {
    match answer {
        Answer::Submit(Ok(Submitted::Created(job))) => job,
        other => panic!("expected a created job, got {other:?}"),
    }
}

fn existing_job(answer: &Answer) -> &Job {
    match answer {
        Answer::Submit(Ok(Submitted::Existing(job))) => job,
        other => panic!("expected an existing job, got {other:?}"),
    }
}

fn moved_job(answer: &Answer) -> &Job {
    match answer {
        Answer::Move(Ok(job)) => job,
        other => panic!("expected a changed job, got {other:?}"),
    }
}

fn error(answer: &Answer) -> &StoreError {
    match answer {
        Answer::Submit(Err(err)) | Answer::Move(Err(err)) => err,
        other => panic!("expected an error, got {other:?}"),
    }
}

pub(crate) async fn one_batch_answers_as_if_sequential(ctx: Ctx) {
    let store = Arc::new(ctx.open().await);
    created(&store, new_job("old", "db", 7)).await;
    let done = created(&store, new_job("done", "db", 8)).await;
    store.transition(to(&done, JobState::Completed, T0 + 50)).await.expect("complete");
    let before = store.last_event_id().await.expect("last id");

    let gate = Gate::close(&ctx, &store).await;
    let writes = vec![
        submit(&store, "a", 1),
        submit(&store, "a", 1),
        submit(&store, "a", 2),
        move_to(&store, "a", 1, JobState::Announced),
        move_to(&store, "a", 1, JobState::Awarded),
        move_to(&store, "ghost", 1, JobState::Announced),
        move_to(&store, "old", 1, JobState::Running),
        move_to(&store, "done", 2, JobState::Running),
        submit(&store, "a", 1),
        move_to(&store, "old", 2, JobState::Completed),
    ];
    let answers = queue(writes, gate).await;

    let a = created_job(&answers[0]);
    assert_eq!((a.version, a.state), (1, JobState::Submitted));
    assert_eq!(existing_job(&answers[1]), a, "a duplicate in the batch replays the first");
    assert!(matches!(error(&answers[2]), StoreError::Conflict { .. }), "{:?}", answers[2]);
    let announced = moved_job(&answers[3]);
    assert_eq!((announced.version, announced.state), (2, JobState::Announced));
    assert!(
        matches!(error(&answers[4]), StoreError::StaleVersion { expected: 1, actual: 2, .. }),
        "{:?}",
        answers[4]
    );
    assert!(matches!(error(&answers[5]), StoreError::NotFound { .. }), "{:?}", answers[5]);
    assert_eq!(moved_job(&answers[6]).version, 2);
    assert!(matches!(error(&answers[7]), StoreError::IllegalTransition { .. }), "{:?}", answers[7]);
    assert_eq!(existing_job(&answers[8]), announced, "a replay sees the batch's earlier change");
    let old = moved_job(&answers[9]);
    assert_eq!((old.version, old.state), (3, JobState::Completed));

    assert_eq!(&store.get_job("a").await.expect("a"), announced);
    assert_eq!(&store.get_job("old").await.expect("old"), old);
    assert_eq!(store.get_job("done").await.expect("done").version, 2);
    let events = store.events_after(before, 100).await.expect("events");
    let events: Vec<(&str, &str)> = events.iter().map(|e| (e.job_id.as_str(), e.kind.as_str())).collect();
    assert_eq!(
        events,
        [
            ("plug", "job_posting"),
            ("a", "job_posting"),
            ("a", "announced"),
            ("old", "running"),
            ("old", "completed")
        ]
    );
    store.close().await;
}

/// A trigger that refuses to insert the job `poison`, as a database would refuse a row
/// for a reason the store cannot foresee.
const REFUSE_SQLITE: &str = "CREATE TRIGGER refuse_poison BEFORE INSERT ON jobs WHEN NEW.job_id = 'poison' \
     BEGIN SELECT RAISE(ABORT, 'poisoned job'); END;";
const REFUSE_POSTGRES: &str = "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'poisoned job'; END $$; \
     CREATE TRIGGER refuse_poison BEFORE INSERT ON jobs FOR EACH ROW WHEN (NEW.job_id = 'poison') \
     EXECUTE FUNCTION refuse_poison();";

pub(crate) async fn a_refused_write_leaves_the_rest_of_its_batch(ctx: Ctx) {
    let store = Arc::new(ctx.open().await);
    ctx.raw().await.execute(REFUSE_SQLITE, REFUSE_POSTGRES).await;
    let before = store.last_event_id().await.expect("last id");

    let gate = Gate::close(&ctx, &store).await;
    let writes = vec![
        submit(&store, "x", 1),
        submit(&store, "poison", 2),
        submit(&store, "x", 1),
        submit(&store, "y", 3),
        move_to(&store, "x", 1, JobState::Announced),
        move_to(&store, "poison", 1, JobState::Announced),
    ];
    let answers = queue(writes, gate).await;

    let x = created_job(&answers[0]);
    let refused = error(&answers[1]);
    assert!(matches!(refused, StoreError::Database(_)), "{refused:?}");
    assert!(refused.to_string().contains("poisoned job"), "{refused}");
    assert_eq!(existing_job(&answers[2]), x);
    created_job(&answers[3]);
    assert_eq!(moved_job(&answers[4]).version, 2);
    assert!(matches!(error(&answers[5]), StoreError::NotFound { .. }), "{:?}", answers[5]);

    assert!(matches!(store.get_job("poison").await, Err(StoreError::NotFound { .. })));
    assert_eq!(store.get_job("x").await.expect("x").state, JobState::Announced);
    let events = store.events_after(before, 100).await.expect("events");
    let events: Vec<(&str, &str)> = events.iter().map(|e| (e.job_id.as_str(), e.kind.as_str())).collect();
    assert_eq!(
        events,
        [("plug", "job_posting"), ("x", "job_posting"), ("y", "job_posting"), ("x", "announced")]
    );
    store.close().await;
}

/// A trap that fails the commit of a transaction that inserted the job `poison`: a
/// deferred foreign key in SQLite, a deferred constraint trigger in PostgreSQL.
const FAIL_COMMIT_SQLITE: &str = "CREATE TABLE trap_parent (id INTEGER PRIMARY KEY); \
     CREATE TABLE trap_child (parent INTEGER REFERENCES trap_parent (id) DEFERRABLE INITIALLY DEFERRED); \
     CREATE TRIGGER fail_commit AFTER INSERT ON jobs WHEN NEW.job_id = 'poison' \
     BEGIN INSERT INTO trap_child VALUES (1); END;";
const FAIL_COMMIT_POSTGRES: &str = "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN RAISE EXCEPTION 'poisoned commit'; END $$; \
     CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON jobs DEFERRABLE INITIALLY DEFERRED \
     FOR EACH ROW WHEN (NEW.job_id = 'poison') EXECUTE FUNCTION fail_commit();";

pub(crate) async fn a_failed_commit_fails_its_whole_batch(ctx: Ctx) {
    let store = Arc::new(ctx.open().await);
    ctx.raw().await.execute(FAIL_COMMIT_SQLITE, FAIL_COMMIT_POSTGRES).await;
    let old = created(&store, new_job("old", "db", 7)).await;
    let before = store.last_event_id().await.expect("last id");

    let gate = Gate::close(&ctx, &store).await;
    let writes = vec![
        submit(&store, "x", 1),
        submit(&store, "poison", 2),
        move_to(&store, "old", 1, JobState::Running),
        submit(&store, "x", 1),
    ];
    let answers = queue(writes, gate).await;

    for answer in &answers {
        assert!(matches!(error(answer), StoreError::Database(_)), "{answer:?}");
    }
    for id in ["x", "poison"] {
        assert!(matches!(store.get_job(id).await, Err(StoreError::NotFound { .. })), "{id}");
    }
    assert_eq!(store.get_job("old").await.expect("old"), old);
    let events = store.events_after(before, 100).await.expect("events");
    assert_eq!(events.len(), 1, "only the plug's batch committed: {events:?}");

    // The writer carries on with the next batch.
    assert_eq!(created(&store, new_job("x", "db", 1)).await.version, 1);
    assert_eq!(store.transition(to(&old, JobState::Running, T0 + 9)).await.expect("run").version, 2);
    store.close().await;
}

/// Many submitters at once, three per job id, one of them with another body: whoever
/// comes first creates the job, the others get it back or a conflict, whatever batches
/// they share; then three transitions per job from version 1, of which one wins.
pub(crate) async fn concurrent_duplicates_and_conflicts(ctx: Ctx) {
    const IDS: u64 = 40;
    let store = Arc::new(ctx.open().await);
    let tasks: Vec<_> = (0..IDS * 3)
        .map(|t| {
            let store = Arc::clone(&store);
            // Bodies 0 and 1 for the same id differ: submitters 0 and 1 of an id agree.
            let (id, body) = (t % IDS, u64::from(t >= IDS * 2));
            tokio::spawn(async move {
                let answer = store.submit_job(new_job(&format!("job-{id:03}"), "db", body)).await;
                (id, body, answer)
            })
        })
        .collect();
    // Per job id: each submitter's body and answer.
    type Answers = Vec<(u64, Result<Submitted, StoreError>)>;
    let mut by_id: BTreeMap<u64, Answers> = BTreeMap::new();
    for task in tasks {
        let (id, body, answer) = task.await.expect("task");
        by_id.entry(id).or_default().push((body, answer));
    }
    for (id, answers) in &by_id {
        let creators: Vec<u64> = answers
            .iter()
            .filter_map(|(body, answer)| matches!(answer, Ok(Submitted::Created(_))).then_some(*body))
            .collect();
        assert_eq!(creators.len(), 1, "job {id}: {answers:?}");
        let winner = creators[0];
        for (body, answer) in answers {
            match answer {
                Ok(Submitted::Created(_)) => {}
                Ok(Submitted::Existing(job)) => {
                    assert_eq!(*body, winner);
                    assert_eq!(job.body_hash, hash(winner));
                }
                Err(StoreError::Conflict { .. }) => assert_ne!(*body, winner, "job {id}"),
                Err(other) => panic!("job {id}: {other:?}"),
            }
        }
        let stored = store.get_job(&format!("job-{id:03}")).await.expect("stored");
        assert_eq!(stored.body_hash, hash(winner));
    }
    assert_eq!(all_events(&store).await.len() as u64, IDS);

    let moves: Vec<_> = (0..IDS * 3)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let job = Job { job_id: format!("job-{:03}", t % IDS), version: 1, ..placeholder() };
                (t % IDS, store.transition(to(&job, JobState::Announced, T0 + 1)).await)
            })
        })
        .collect();
    let mut wins: BTreeMap<u64, u32> = BTreeMap::new();
    for task in moves {
        match task.await.expect("task") {
            (id, Ok(job)) => {
                assert_eq!(job.version, 2);
                *wins.entry(id).or_default() += 1;
            }
            (_, Err(StoreError::StaleVersion { expected: 1, actual: 2, .. })) => {}
            (id, Err(other)) => panic!("job {id}: {other:?}"),
        }
    }
    assert!(wins.values().all(|n| *n == 1) && wins.len() as u64 == IDS, "{wins:?}");
    assert_eq!(all_events(&store).await.len() as u64, IDS * 2);
    store.close().await;
}

/// `close` while writes are queued: they are committed and answered, then the store
/// refuses new writes.
pub(crate) async fn close_commits_what_is_queued(ctx: Ctx) {
    let store = Arc::new(ctx.open().await);
    let gate = Gate::close(&ctx, &store).await;
    let writes = (0..20).map(|n| submit(&store, &format!("queued-{n:02}"), n)).collect();
    let closing = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.close().await }
    });
    let answers = queue(writes, gate).await;
    closing.await.expect("close");
    for answer in &answers {
        created_job(answer);
    }
    let err = store.submit_job(new_job("late", "db", 1)).await.expect_err("closed");
    assert_eq!(err.code(), xchange_protocol::Code::Unavailable, "{err:?}");

    let store = ctx.open().await;
    let stored = store.list_jobs(None, None, 100).await.expect("list");
    assert_eq!(stored.len(), 21, "the plug and the 20 queued writes");
    store.close().await;
}
