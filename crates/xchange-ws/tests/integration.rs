//! Every integration test of the WebSocket sessions, in one binary. A test server is
//! tokio-tungstenite's `accept_async` + `serve_session` + a runtime hosting a manager on an
//! in-process bus (`common`); remote agents connect with the real client, or by hand where
//! a test needs to break the protocol.

mod common;
mod faults;
mod handshake;
mod messages;
mod session;
