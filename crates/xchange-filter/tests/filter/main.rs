//! The crate's integration tests, in one binary so that it links once.

mod arb;
mod db;
mod differential;
mod errors;
#[cfg(feature = "fuzzing")]
mod fuzz_corpus;
mod page;
mod postgres;
mod props;
mod sort;
mod sqlite;
mod table;
