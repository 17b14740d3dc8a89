//! The event relay from a real SQLite store to JetStream and to Redis publish/subscribe:
//! every event once, in order, with its id; a restarted relay resumes without repeating.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use xchange_mesh::{JetStreamRelay, RedisRelay, RelayHandle};
use xchange_store::{Event, JobState, NewEvent, NewJob, SqliteStore, Store, Transition};

use crate::common::{delete_redis_keys, nats, prefix, redis, redis_client, until};

const T0: i64 = 1_700_000_000_000;

/// A fresh store in a directory of its own, removed by [`Scratch::remove`].
struct Scratch {
    dir: PathBuf,
    store: SqliteStore,
}

impl Scratch {
    async fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("xchange-mesh-{prefix}"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let store = SqliteStore::open_path(dir.join("xchange.db")).await.expect("open the store");
        Self { dir, store }
    }

    async fn remove(self) {
        self.store.close().await;
        std::fs::remove_dir_all(&self.dir).expect("remove the scratch directory");
    }

    /// Three jobs in two task databases, two of them announced (one event without a task
    /// database, which goes to `global`): five events.
    async fn write_jobs(&self) -> Vec<Event> {
        for n in 0..3_u32 {
            let taskdb = if n % 2 == 0 { "docs" } else { "code" };
            let job = NewJob {
                job_id: format!("job-{n}"),
                taskdb: taskdb.to_owned(),
                document: json!({"job_goal": {"text": format!("goal {n}")}}),
                body_hash: format!("{n:064x}"),
                now_ms: T0 + i64::from(n),
                fence: None,
            };
            self.store.submit_job(job).await.expect("submit");
        }
        self.announce("job-0", Some("docs")).await;
        self.announce("job-1", None).await;
        self.store.events_after(0, 100).await.expect("events")
    }

    /// Moves a job on, writing one `job_notification`; returns its event.
    async fn announce(&self, job_id: &str, taskdb: Option<&str>) -> Event {
        let job = self.store.get_job(job_id).await.expect("get");
        let mut payload = json!({"job_id": job_id, "state": "announced", "detail": null});
        if let Some(taskdb) = taskdb {
            payload["taskdb"] = json!(taskdb);
        }
        let t = Transition {
            job_id: job_id.to_owned(),
            expected_version: job.version,
            state: JobState::Announced,
            result: None,
            reason_code: None,
            event: NewEvent { kind: "job_notification".to_owned(), payload },
            now_ms: T0 + 100 + job.version,
            fence: None,
        };
        self.store.transition(t).await.expect("transition");
        let last = self.store.last_event_id().await.expect("last id");
        self.store.events_after(last - 1, 1).await.expect("event").remove(0)
    }
}

fn subject(prefix: &str, event: &Event) -> String {
    let taskdb = event.payload.get("taskdb").and_then(Value::as_str).unwrap_or("global");
    format!("{prefix}.events.{taskdb}.{}", event.kind)
}

fn body(event: &Event) -> Value {
    json!({"id": event.id, "job_id": event.job_id, "kind": event.kind, "payload": event.payload,
           "at_ms": event.at_ms})
}

async fn relayed_to(relay: &RelayHandle, id: i64) {
    until(&format!("event {id} is relayed"), || relay.stats().cursor.load(Relaxed) == id).await;
}

/// The next item of `stream`, failing the test if none comes.
async fn next<T>(stream: &mut (impl Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

#[tokio::test]
async fn jetstream_gets_every_event_once_in_order_across_restarts() {
    let Some(client) = nats().await else { return };
    let prefix = prefix();
    let scratch = Scratch::new(&prefix).await;
    let events = scratch.write_jobs().await;
    assert_eq!(events.len(), 5);
    let last = events[4].id;

    let relay = JetStreamRelay::start(client.clone(), &prefix, scratch.store.clone()).expect("start");
    relayed_to(&relay, last).await;
    assert_eq!(relay.stats().published.load(Relaxed), 5);
    assert_eq!(relay.stats().duplicates.load(Relaxed), 0);

    let js = jetstream::new(client);
    let name = format!("{}_EVENTS", prefix.to_uppercase());
    let mut stream = js.get_stream(&name).await.expect("the stream exists");
    let consumer =
        stream.create_consumer(consumer::pull::OrderedConfig::default()).await.expect("a consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for (n, event) in events.iter().enumerate() {
        let msg = next(&mut messages).await.expect("a message");
        assert_eq!(msg.subject.as_str(), subject(&prefix, event));
        let id = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
        assert_eq!(id, Some(event.id.to_string()));
        assert_eq!(serde_json::from_slice::<Value>(&msg.payload).unwrap(), body(event));
        assert_eq!(msg.info().unwrap().stream_sequence, n as u64 + 1);
    }
    assert!(subject(&prefix, &events[4]).ends_with(".global.job_notification"));

    // A new relay resumes after the stream's last event: nothing is published again.
    drop(relay);
    let relay = JetStreamRelay::start(js.client(), &prefix, scratch.store.clone()).expect("start");
    relayed_to(&relay, last).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(relay.stats().published.load(Relaxed), 0);
    assert_eq!(relay.stats().duplicates.load(Relaxed), 0);
    assert_eq!(stream.info().await.unwrap().state.messages, 5);

    let new = scratch.announce("job-2", Some("docs")).await;
    relay.nudge();
    relayed_to(&relay, new.id).await;
    let msg = next(&mut messages).await.expect("a message");
    assert_eq!(serde_json::from_slice::<Value>(&msg.payload).unwrap(), body(&new));
    assert_eq!(stream.info().await.unwrap().state.messages, 6);
    assert_eq!(relay.stats().errors.load(Relaxed), 0);

    drop(relay);
    js.delete_stream(&name).await.expect("delete the stream");
    scratch.remove().await;
}

#[tokio::test]
async fn two_jetstream_relays_at_once_store_each_event_once() {
    let Some(client) = nats().await else { return };
    let prefix = prefix();
    let scratch = Scratch::new(&prefix).await;
    let last = scratch.write_jobs().await.last().expect("events").id;

    let a = JetStreamRelay::start(client.clone(), &prefix, scratch.store.clone()).expect("start");
    let b = JetStreamRelay::start(client.clone(), &prefix, scratch.store.clone()).expect("start");
    relayed_to(&a, last).await;
    relayed_to(&b, last).await;
    let published = |r: &RelayHandle| r.stats().published.load(Relaxed);
    assert_eq!(published(&a) + published(&b), 5, "the stream took each event once");
    let js = jetstream::new(client);
    let name = format!("{}_EVENTS", prefix.to_uppercase());
    assert_eq!(js.get_stream(&name).await.unwrap().info().await.unwrap().state.messages, 5);

    drop((a, b));
    js.delete_stream(&name).await.expect("delete the stream");
    scratch.remove().await;
}

#[tokio::test]
async fn redis_subscribers_get_every_event_in_order_across_restarts() {
    let (Some(mut conn), Some(client)) = (redis().await, redis_client()) else { return };
    let prefix = prefix();
    let scratch = Scratch::new(&prefix).await;
    let events = scratch.write_jobs().await;
    let last = events[4].id;

    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.psubscribe(format!("{prefix}.events.*")).await.expect("psubscribe");
    let mut messages = pubsub.into_on_message();
    let relay = RedisRelay::start(conn.clone(), &prefix, scratch.store.clone()).expect("start");
    for event in &events {
        let msg = next(&mut messages).await;
        assert_eq!(msg.get_channel_name(), subject(&prefix, event));
        assert_eq!(serde_json::from_slice::<Value>(msg.get_payload_bytes()).unwrap(), body(event));
    }
    relayed_to(&relay, last).await;
    let cursor: i64 =
        redis::cmd("GET").arg(format!("{prefix}:relay:cursor")).query_async(&mut conn).await.unwrap();
    assert_eq!(cursor, last);

    // A new relay resumes after the cursor: the next message is the next event.
    drop(relay);
    let relay = RedisRelay::start(conn.clone(), &prefix, scratch.store.clone()).expect("start");
    relayed_to(&relay, last).await;
    let new = scratch.announce("job-2", Some("docs")).await;
    relay.nudge();
    let msg = next(&mut messages).await;
    assert_eq!(serde_json::from_slice::<Value>(msg.get_payload_bytes()).unwrap(), body(&new));
    relayed_to(&relay, new.id).await;
    assert_eq!(relay.stats().published.load(Relaxed), 1);
    assert_eq!(relay.stats().errors.load(Relaxed), 0);

    drop(relay);
    delete_redis_keys(&mut conn, &prefix).await;
    scratch.remove().await;
}
