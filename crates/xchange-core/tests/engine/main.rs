//! Integration tests of the engine: scripted scenarios and property tests, all driven by
//! the deterministic world in `world.rs`. One test binary (meilisearch style).

mod properties;
mod scenarios;
mod world;
