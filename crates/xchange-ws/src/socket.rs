//! tokio-tungstenite as a stream and sink of text frames, and the session URL.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::error::WsError;
use crate::frames::CONNECT_PATH;

/// A WebSocket seen as text frames, as [`crate::serve_session`] and the client want it.
/// Pings are answered by tungstenite; a close frame ends the stream. A binary frame is read
/// as UTF-8 text (lossily), so that it is refused as malformed unless it holds JSON.
#[derive(Debug)]
pub struct TextFrames<S> {
    inner: WebSocketStream<S>,
}

impl<S> TextFrames<S> {
    /// Wraps a WebSocket.
    pub fn new(inner: WebSocketStream<S>) -> Self {
        Self { inner }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for TextFrames<S> {
    type Item = Result<String, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let next = ready!(Pin::new(&mut self.inner).poll_next(cx));
            return Poll::Ready(match next {
                Some(Ok(Message::Text(text))) => Some(Ok(text.as_str().to_owned())),
                Some(Ok(Message::Binary(bytes))) => Some(Ok(String::from_utf8_lossy(&bytes).into_owned())),
                Some(Ok(Message::Close(_))) | None => None,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(e)) => Some(Err(e)),
            });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<String> for TextFrames<S> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, text: String) -> Result<(), Error> {
        Pin::new(&mut self.inner).start_send(Message::text(text))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The WebSocket URL of the agent sessions of the server at `server`: an `http://` base
/// gets `ws://` and [`CONNECT_PATH`] appended; a `ws://` URL is taken as it is. TLS
/// (`https://`, `wss://`) is not built in: put a TLS-terminating proxy in front of the node
/// and connect to it over a private network, or build with a TLS-enabled tokio-tungstenite.
pub fn session_url(server: &str) -> Result<String, WsError> {
    let bad =
        |reason: &str| Err(WsError::Url { url: server.chars().take(200).collect(), reason: reason.into() });
    let server = server.trim();
    if let Some(rest) = server.strip_prefix("http://") {
        if rest.is_empty() || rest.starts_with('/') {
            return bad("no host");
        }
        return Ok(format!("ws://{}{CONNECT_PATH}", rest.trim_end_matches('/')));
    }
    if server.strip_prefix("ws://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/')) {
        return Ok(server.to_owned());
    }
    if server.starts_with("https://") || server.starts_with("wss://") {
        return bad("tls is not built into this client; use http:// (behind a tls proxy if needed)");
    }
    bad("expected http://host:port or ws://host:port/path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_map_to_the_session_url() {
        let ok = |s: &str| session_url(s).unwrap();
        assert_eq!(ok("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/agents/connect");
        assert_eq!(ok(" http://node:80/ "), "ws://node:80/v1/agents/connect");
        assert_eq!(ok("http://node/prefix"), "ws://node/prefix/v1/agents/connect");
        assert_eq!(ok("ws://node:1/custom"), "ws://node:1/custom");
        for bad in ["https://node", "wss://node/x", "node:80", "http://", "http:///x", "ws://", "ftp://x"] {
            assert!(matches!(session_url(bad), Err(WsError::Url { .. })), "{bad}");
        }
    }
}
