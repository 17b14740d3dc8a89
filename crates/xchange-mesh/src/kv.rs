//! Opening a NATS key-value bucket on a 2.9 server.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};

use crate::error::MeshError;

/// Gets the bucket `name`, creating it if it does not exist (an existing bucket keeps its
/// settings): one value per key, on disk, values of at most `max_value` bytes, each kept
/// `max_age` (zero: for ever).
///
/// Not `create_key_value`: it first reads the account info, whose reply from a 2.9 server
/// lacks fields async-nats 0.51 requires. The stream below is the one it would create
/// (`KV_` + bucket, one value per key, rollups, direct gets). On disk, so that a server
/// restart keeps the bucket: writers go on without recreating it.
pub(crate) async fn open_bucket(
    client: async_nats::Client,
    name: &str,
    description: &str,
    max_age: Duration,
    max_value: i32,
) -> Result<kv::Store, MeshError> {
    let js = async_nats::jetstream::new(client);
    let config = stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        max_message_size: max_value,
        storage: StorageType::File,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: 1,
        ..stream::Config::default()
    };
    // Created meanwhile by another process, the stream is taken as it is.
    js.get_or_create_stream(config).await.map_err(MeshError::nats)?;
    js.get_key_value(name).await.map_err(MeshError::nats)
}
