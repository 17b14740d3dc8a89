//! AIXP/1, the wire protocol of Xchange. No I/O, no clock, no async runtime.
//!
//! - [`Envelope`] is one message: version, ids, sender and recipient, conversation (task),
//!   contract epoch, deadlines, loop guards (hops, lineage), nonce, signature, and a typed
//!   [`Body`] per [`Kind`] (FIPA Contract Net: `cfp`, `propose`, `refuse`, `accept`,
//!   `reject`, `progress`, `heartbeat`, `inform`, `failure`, `cancel`, plus `ack` and `error`).
//! - [`Code`] is the one status-code table of the project (AIXP's 5001-5009 and the
//!   extensions from 5010), each with a stable name, an HTTP status and a sentence.
//! - [`TaskSpec`], [`Budget`], [`TaskState`]: what a task is on the wire.
//! - [`AgentId`] is an Ed25519 public key; [`TaskId`] and [`MsgId`] are version-7 UUIDs made
//!   from time and random bytes the caller passes in.
//! - Signing ([`AgentKey`], [`verify_value`]): Ed25519 over the RFC 8785 canonical form of
//!   everything in a message but its `sig`, as received.
//! - The edge ([`decode`], [`check`], [`encode`], [`error_reply`]): the checks every bus
//!   adapter and HTTP handler runs on incoming bytes, each refusal with its own [`Code`].
//! - With the `schema` feature, `envelope_schema` and `all_schemas`: the JSON Schemas
//!   committed under `schemas/v1/`.
//! - With the `fuzzing` feature, `fuzzing::envelope`: the fuzz target's logic, shared by
//!   `fuzz/` (cargo-fuzz) and the corpus replay in `tests/fuzz_corpus.rs`; not an API.
//!
//! The wire format is documented, with tested examples, in `docs/protocol.md`.
//!
//! Must not depend on tokio, a clock or any I/O crate: the engine, the simulator and every
//! transport share it. Heavy parts (JSON Schema generation and validation) sit behind the
//! `schema` and `validate` features, which the engine does not use.

#![warn(missing_docs)]

mod code;
mod edge;
mod envelope;
#[cfg(test)]
mod fixtures;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
#[cfg(feature = "schema")]
mod schema;
mod sign;
mod task;

pub use code::{Code, Refusal};
pub use edge::{EdgeLimits, check, decode, encode, error_body, error_reply, parse_envelope, read_value};
pub use envelope::{
    AcceptBody, AckBody, Body, CfpBody, CodeBody, Envelope, ErrorBody, FailureBody, HeartbeatBody,
    InformBody, Kind, Lineage, ProgressBody, ProposeBody, Provisional, Recipient, SUPPORTED_MAJORS,
    SUPPORTED_VERSIONS, Version,
};
pub use ids::{AGENT_ID_LEN, AgentId, IdParseError, MsgId, Nonce, Sig, TaskId, UnixMs};
#[cfg(feature = "schema")]
pub use schema::{all_schemas, envelope_schema, schema_file_text};
pub use sign::{AgentKey, SignError, signed_bytes, verify_envelope, verify_value};
pub use task::{Budget, ContractRef, GLOBAL_POOL, MAX_NAME_LEN, TaskSpec, TaskState, is_valid_name};
