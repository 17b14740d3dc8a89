//! Integration tests against the real NATS and Redis named by `XCHANGE_TEST_NATS` and
//! `XCHANGE_TEST_REDIS` (skipped, with a note, when unset). Each test works under its own
//! random prefix and removes what it created.

mod access;
mod common;
mod directory;
mod relay;
