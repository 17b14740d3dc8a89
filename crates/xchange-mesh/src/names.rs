//! The names of buckets, streams, subjects and keys (protocol.md, "Subjects and channels").

use std::time::Duration;

use xchange_protocol::{GLOBAL_POOL, is_valid_name};

use crate::error::MeshError;

/// Checks that `prefix` can be one subject token, a bucket name and a key segment.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), MeshError> {
    if is_valid_name(prefix) { Ok(()) } else { Err(MeshError::InvalidPrefix(prefix.to_owned())) }
}

/// Checks a card time-to-live: at least one second (Redis `EX` counts seconds).
pub(crate) fn check_ttl(ttl: Duration) -> Result<(), MeshError> {
    if ttl >= Duration::from_secs(1) { Ok(()) } else { Err(MeshError::InvalidTtl(ttl)) }
}

/// The NATS key-value bucket of agent cards.
#[cfg(feature = "nats")]
pub(crate) fn agents_bucket(prefix: &str) -> String {
    format!("{prefix}_agents")
}

/// The JetStream stream of job events.
#[cfg(feature = "nats")]
pub(crate) fn events_stream(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_ascii_uppercase())
}

/// Every subject of the events stream.
#[cfg(feature = "nats")]
pub(crate) fn events_subjects(prefix: &str) -> String {
    format!("{prefix}.events.>")
}

/// The subject (NATS) or channel (Redis) of one event.
///
/// Task database ids and kinds are names already where the node writes them; anything else
/// is mended rather than refused, so that one odd event cannot stop the relay or split a
/// subject into extra tokens.
pub(crate) fn event_subject(prefix: &str, taskdb: Option<&str>, kind: &str) -> String {
    format!("{prefix}.events.{}.{}", token(taskdb.unwrap_or(GLOBAL_POOL)), token(kind))
}

fn token(name: &str) -> String {
    if is_valid_name(name) {
        return name.to_owned();
    }
    let mended: String =
        name.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    if mended.is_empty() { "_".to_owned() } else { mended }
}

/// The Redis key holding an agent's card, and the start that every such key shares.
#[cfg(feature = "redis")]
pub(crate) fn card_key_start(prefix: &str) -> String {
    format!("{prefix}:agent:")
}

/// The Redis key that marks an orderly goodbye for a while (see `directory/redis.rs`).
#[cfg(feature = "redis")]
pub(crate) fn goodbye_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:left:{id}")
}

/// The Redis key of the Redis relay's cursor.
#[cfg(feature = "redis")]
pub(crate) fn relay_cursor_key(prefix: &str) -> String {
    format!("{prefix}:relay:cursor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_subjects_stay_four_tokens() {
        assert_eq!(event_subject("aixp", Some("docs"), "job_posting"), "aixp.events.docs.job_posting");
        assert_eq!(event_subject("aixp", None, "completed"), "aixp.events.global.completed");
        assert_eq!(event_subject("p", Some("a.b c>"), ""), "p.events.a_b_c_._");
    }

    #[test]
    fn prefixes_and_ttls_are_checked() {
        assert!(check_prefix("t0a-b_c").is_ok());
        assert!(matches!(check_prefix("a.b"), Err(MeshError::InvalidPrefix(_))));
        assert!(matches!(check_prefix(""), Err(MeshError::InvalidPrefix(_))));
        assert!(matches!(check_ttl(Duration::from_millis(999)), Err(MeshError::InvalidTtl(_))));
    }
}
