//! Partition leases and fenced writes: what keeps two replicas from managing one job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use xchange_protocol::Code;
use xchange_store::{Fence, JobState, Store, StoreError, Submitted};

use crate::fixtures::{T0, all_events, created, new_job, to};
use crate::harness::Ctx;

const MINUTE: i64 = 60_000;

pub(crate) async fn leases_are_taken_renewed_and_released_with_growing_epochs(ctx: Ctx) {
    let store = ctx.open().await;
    store.ensure_partitions(4).await.expect("ensure");
    store.ensure_partitions(2).await.expect("fewer is a no-op");
    let leases = store.partition_leases().await.expect("leases");
    assert_eq!(leases.len(), 4);
    assert!(
        leases.iter().enumerate().all(|(i, l)| l.partition == i as i32 && l.owner.is_none() && l.epoch == 0)
    );
    let err = store.ensure_partitions(0).await.expect_err("no partitions");
    assert_eq!(err.code(), Code::InvalidRequest);

    let a = store.acquire_partition(0, "node-a", MINUTE).await.expect("acquire").expect("free");
    assert_eq!((a.owner.as_deref(), a.epoch), (Some("node-a"), 1));
    assert!(store.acquire_partition(0, "node-b", MINUTE).await.expect("acquire").is_none(), "held by a");
    assert!(
        store.acquire_partition(9, "node-b", MINUTE).await.expect("acquire").is_none(),
        "no such partition"
    );

    let renewed = store.renew_partition(a.fence(), "node-a", 2 * MINUTE).await.expect("renew");
    assert!(renewed.is_some_and(|expiry| expiry > a.expires_ms), "{renewed:?} after {}", a.expires_ms);
    assert_eq!(store.renew_partition(a.fence(), "node-b", MINUTE).await.expect("renew"), None, "not b's");
    let wrong_epoch = Fence { partition: 0, epoch: 7 };
    assert_eq!(store.renew_partition(wrong_epoch, "node-a", MINUTE).await.expect("renew"), None);

    assert!(store.release_partition(a.fence(), "node-a").await.expect("release"));
    assert!(!store.release_partition(a.fence(), "node-a").await.expect("twice"), "already released");
    let b = store.acquire_partition(0, "node-b", MINUTE).await.expect("acquire").expect("released");
    assert_eq!((b.owner.as_deref(), b.epoch), (Some("node-b"), 2));
    assert_eq!(store.renew_partition(a.fence(), "node-a", MINUTE).await.expect("renew"), None, "a lost it");

    // A node that restarts under the same id takes its partition back at once, with a
    // new epoch that fences off what its previous incarnation might still write.
    let b_again = store.acquire_partition(0, "node-b", MINUTE).await.expect("acquire").expect("own id");
    assert_eq!(b_again.epoch, 3);
    assert_eq!(store.renew_partition(b.fence(), "node-b", MINUTE).await.expect("renew"), None);

    // An expired lease is free for anyone.
    let short = store.acquire_partition(1, "node-a", 1).await.expect("acquire").expect("free");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = store.acquire_partition(1, "node-b", MINUTE).await.expect("acquire").expect("expired");
    assert_eq!((taken.epoch, taken.owner.as_deref()), (short.epoch + 1, Some("node-b")));

    let err = store.acquire_partition(2, "", MINUTE).await.expect_err("empty id");
    assert_eq!(err.code(), Code::InvalidRequest);
    let owners: Vec<Option<String>> =
        store.partition_leases().await.expect("leases").into_iter().map(|l| l.owner).collect();
    assert_eq!(owners, [Some("node-b".to_owned()), Some("node-b".to_owned()), None, None]);
    store.close().await;
}

pub(crate) async fn fenced_writes_apply_only_under_the_current_epoch(ctx: Ctx) {
    let store = ctx.open().await;
    store.ensure_partitions(2).await.expect("ensure");
    let old = store.acquire_partition(1, "node-a", 1).await.expect("acquire").expect("free").fence();
    let mut job = new_job("j1", "db", 1);
    job.fence = Some(old);
    let first = created(&store, job.clone()).await;
    assert_eq!(first.partition, 1);
    let mut announce = to(&first, JobState::Announced, T0 + 10);
    announce.fence = Some(old);
    let announced = store.transition(announce).await.expect("under the current epoch");

    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = store.acquire_partition(1, "node-b", MINUTE).await.expect("acquire").expect("expired").fence();
    let events_before = all_events(&store).await.len();

    // The old holder can neither change the job nor create one in the partition.
    let mut stale = to(&announced, JobState::Completed, T0 + 20);
    stale.fence = Some(old);
    let err = store.transition(stale.clone()).await.expect_err("stale epoch");
    assert!(matches!(err, StoreError::Fenced { partition: 1, epoch: 1, current: 2 }), "{err:?}");
    assert_eq!(err.code(), Code::Fenced);
    let mut second = new_job("j2", "db", 2);
    second.fence = Some(old);
    assert!(matches!(store.submit_job(second).await, Err(StoreError::Fenced { .. })));
    assert_eq!(store.get_job("j2").await.expect_err("not created").code(), Code::NotFound);
    assert_eq!(store.get_job("j1").await.expect("j1"), announced, "nothing written");
    assert_eq!(all_events(&store).await.len(), events_before, "no event either");

    // A replayed submission writes nothing, so it is answered whoever asks.
    assert!(matches!(store.submit_job(job).await, Ok(Submitted::Existing(_))));

    // The job is in partition 1: a fence on partition 0 does not cover it.
    let other = store.acquire_partition(0, "node-b", MINUTE).await.expect("acquire").expect("free").fence();
    let mut elsewhere = to(&announced, JobState::Completed, T0 + 30);
    elsewhere.fence = Some(other);
    let err = store.transition(elsewhere).await.expect_err("wrong partition");
    assert!(matches!(err, StoreError::Fenced { partition: 0, current: -1, .. }), "{err:?}");

    stale.fence = Some(new);
    let done = store.transition(stale).await.expect("under the new epoch");
    assert_eq!(done.state, JobState::Completed);
    let ids = |jobs: Vec<xchange_store::Job>| -> Vec<String> { jobs.into_iter().map(|j| j.job_id).collect() };
    assert!(store.list_unfinished_jobs_in(1, None, 10).await.expect("list").is_empty());
    let mut third = new_job("j3", "db", 3);
    third.fence = Some(new);
    created(&store, third).await;
    assert_eq!(ids(store.list_unfinished_jobs_in(1, None, 10).await.expect("list")), ["j3"]);
    assert!(store.list_unfinished_jobs_in(0, None, 10).await.expect("list").is_empty());
    store.close().await;
}

/// The property fencing rests on: a write acknowledged under epoch `e` is visible to the
/// node that acquires epoch `e + 1` as soon as its acquisition returns. Were the lease
/// check not locked against the takeover, a batch could commit after it, unseen.
pub(crate) async fn a_takeover_sees_every_write_acknowledged_under_the_old_epoch(ctx: Ctx) {
    let store = ctx.open().await;
    store.ensure_partitions(1).await.expect("ensure");
    let old = store.acquire_partition(0, "node-a", 150).await.expect("acquire").expect("free").fence();
    let mut jobs = Vec::new();
    for n in 0..40 {
        let mut job = new_job(&format!("job-{n:02}"), "db", n);
        job.fence = Some(old);
        jobs.push(created(&store, job).await);
    }
    // Node a keeps moving its jobs while node b waits for the lease to lapse. Node b starts
    // trying once a's first round is acknowledged: on a loaded machine the 150 ms lease
    // could otherwise lapse and be taken before a wrote anything, and the test would prove
    // nothing.
    let (first_round, first_round_done) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            let mut first_round = Some(first_round);
            let mut acknowledged = Vec::new();
            for round in 0..200 {
                // Concurrent, so that they share batches as a node's drivers do.
                let moves: Vec<_> = jobs
                    .iter()
                    .map(|job| {
                        let mut t = to(job, JobState::Running, T0 + round);
                        t.fence = Some(old);
                        let store = store.clone();
                        tokio::spawn(async move { store.transition(t).await })
                    })
                    .collect();
                for (job, handle) in jobs.iter_mut().zip(moves) {
                    match handle.await.expect("transition task") {
                        Ok(moved) => {
                            acknowledged.push((moved.job_id.clone(), moved.version));
                            *job = moved;
                        }
                        Err(StoreError::Fenced { .. }) => return acknowledged,
                        Err(other) => panic!("{other:?}"),
                    }
                }
                if let Some(done) = first_round.take() {
                    let _ = done.send(());
                }
            }
            panic!("the lease never moved on");
        }
    });
    first_round_done.await.expect("the writer's first round");
    let taker = loop {
        if let Some(lease) = store.acquire_partition(0, "node-b", MINUTE).await.expect("acquire") {
            break lease;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let seen = store.list_jobs(None, None, 100).await.expect("read after the takeover");
    let acknowledged = writer.await.expect("writer");
    assert_eq!(taker.epoch, 2);
    assert!(!acknowledged.is_empty());
    for (job_id, version) in acknowledged {
        let job = seen.iter().find(|j| j.job_id == job_id).expect("listed");
        assert!(
            job.version >= version,
            "{job_id} v{version} was acknowledged but the new owner read v{}",
            job.version
        );
    }
    store.close().await;
}

pub(crate) async fn nodes_say_they_are_alive_on_the_database_clock(ctx: Ctx) {
    let store = ctx.open().await;
    let local = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let first = store.node_alive("node-a", "http://a:1", true).await.expect("alive");
    assert!((first - local).abs() < MINUTE, "database clock {first} vs local {local}");
    let clock = store.clock_ms().await.expect("clock");
    assert!(clock >= first && clock - first < MINUTE, "the clock {clock} reads after {first}");
    assert_eq!(
        store.cluster_nodes().await.expect("nodes")[0].seen_ms,
        first,
        "reading the clock writes nothing"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let later = store.node_alive("node-a", "http://a:2", false).await.expect("alive");
    store.node_alive("node-b", "http://b:1", true).await.expect("alive");
    assert!(later > first);
    let nodes = store.cluster_nodes().await.expect("nodes");
    let ids: Vec<(&str, &str)> = nodes.iter().map(|n| (n.node_id.as_str(), n.url.as_str())).collect();
    assert_eq!(ids, [("node-a", "http://a:2"), ("node-b", "http://b:1")]);
    assert_eq!((nodes[0].started_ms, nodes[0].seen_ms), (first, later), "started stays, seen moves");
    let restarted = store.node_alive("node-a", "http://a:2", true).await.expect("alive");
    assert_eq!(store.cluster_nodes().await.expect("nodes")[0].started_ms, restarted);
    assert_eq!(store.node_alive("", "x", true).await.expect_err("empty").code(), Code::InvalidRequest);
    store.close().await;
}
