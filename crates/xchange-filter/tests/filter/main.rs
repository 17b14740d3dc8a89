//! The crate's integration tests, in one binary so that it links once.

mod errors;
mod props;
mod sort;
mod sqlite;
mod table;
