//! AIXP/1 over WebSocket: agents in other processes, written in any language, take part in
//! the contract net through one authenticated connection each. The session protocol is
//! documented in `docs/agents.md`.
//!
//! # Layout
//!
//! - `frames.rs`: the session frames, JSON text with a `type` tag: `challenge`, `hello`
//!   (signed like an envelope, binding the challenge's nonce, the server id and the card),
//!   `welcome` (5001) or `refused`, then `msg` (an envelope) both ways, `error` (a refused
//!   `msg`) and `bye` (5003). [`RemoteCard`] (`card.rs`) is what an agent offers.
//! - Server: [`serve_session`] (`server.rs`) runs one session over any stream and sink of
//!   text frames (axum's WebSocket with a few adapter lines, or [`TextFrames`] over
//!   tokio-tungstenite). A [`Gateway`] (`gateway.rs`) holds what sessions share: the
//!   runtime agents attach to ([`xchange_runtime::Runtime::attach_remote`], so managers hear
//!   5001 arrivals and 5003/5009 departures), edge limits, a [`TokenCheck`], a
//!   [`SessionObserver`], counters, and the replay memory (`replay.rs`). Incoming
//!   envelopes pass the protocol's edge checks and must come from the authenticated agent.
//! - Client: [`connect`] (`client.rs`) does the handshake, then hosts one agent in a local
//!   runtime whose bus (`wsbus.rs`) is the session: it signs what creates obligations,
//!   checks what comes in, reconnects with [`Backoff`] as a new incarnation if asked.
//!
//! Depends on the runtime, the bus trait and the protocol; must not depend on an HTTP
//! framework (the node adapts its WebSocket to [`serve_session`]) or on a store.

mod card;
mod client;
mod error;
mod frames;
mod gateway;
mod server;
mod socket;
mod wsbus;

pub use card::RemoteCard;
pub use client::{Backoff, ConnectOptions, RemoteAgent, connect};
pub use error::WsError;
pub use frames::{
    Bye, CONNECT_PATH, Challenge, ErrorFrame, Frame, Hello, Inbound, Welcome, max_frame_bytes, msg_text,
    read_frame, signed_hello,
};
pub use gateway::{
    Gateway, GatewayConfig, GatewayStats, SessionObserver, TokenCheck, static_token, static_tokens,
    token_matches,
};
pub use server::{SessionEnd, serve_session};
pub use socket::{TextFrames, session_url};

use tokio::sync::watch;

/// Resolves once `flag` is set, or its sender is gone. Returns nothing, so that no borrow
/// of the channel outlives the wait (a `select!` branch may then await freely).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}
