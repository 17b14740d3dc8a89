//! The HTTP API, end to end: one test binary (meilisearch's layout) so that it links once.

mod agents;
mod common;
mod conformance;
mod durability;
mod errors;
mod events;
mod idempotence;
mod jobs;
mod keys;
mod limits;
mod orgs;
mod outsider;
mod raw_agent;
mod registry;
mod routing;
mod system;
mod visibility;
