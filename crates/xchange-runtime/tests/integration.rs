//! Every integration test of the runtime, in one binary (meilisearch style: one link step
//! instead of one per file). Helpers live in `common`.

mod common;
mod contract;
mod faults;
mod lifecycle;
mod remote;
mod subcontract;
mod verification;
