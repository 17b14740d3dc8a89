//! What the tests share: the servers, unique prefixes, waiting for a condition.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// How long a condition may take before the test fails: generous, as the machine is
/// shared; a passing test waits only as long as it must.
const PATIENCE: Duration = Duration::from_secs(20);

fn server(var: &str) -> Option<String> {
    let url = std::env::var(var).ok().filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!("skipped: {var} is not set");
    }
    url
}

pub(crate) async fn nats() -> Option<async_nats::Client> {
    let url = server("XCHANGE_TEST_NATS")?;
    Some(async_nats::connect(url).await.expect("connect to NATS"))
}

pub(crate) async fn redis() -> Option<ConnectionManager> {
    let client = redis_client()?;
    Some(client.get_connection_manager().await.expect("connect to Redis"))
}

pub(crate) fn redis_client() -> Option<redis::Client> {
    let url = server("XCHANGE_TEST_REDIS")?;
    Some(redis::Client::open(url).expect("a Redis URL"))
}

/// A prefix no other test or run uses: `t` and 16 hex digits.
pub(crate) fn prefix() -> String {
    let mut bytes = [0_u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("t{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Waits until `done` holds, failing the test after a while.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes every Redis key under `prefix`.
pub(crate) async fn delete_redis_keys(conn: &mut ConnectionManager, prefix: &str) {
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let () = redis::cmd("DEL").arg(&keys).query_async(conn).await.expect("del");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
