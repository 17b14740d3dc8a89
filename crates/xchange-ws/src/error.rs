//! Errors of the client.

use xchange_protocol::Code;
use xchange_runtime::RuntimeError;

/// Why connecting or staying connected failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// The server URL cannot be used.
    #[error("invalid server url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection could not be opened, or failed.
    #[error("connection failed: {0}")]
    Transport(String),
    /// The server refused the hello (the code says why: 5004 credentials, 5006 version, …).
    #[error("refused by the server ({code}): {message}")]
    Refused {
        /// The refusal's code.
        code: Code,
        /// The server's reason.
        message: String,
    },
    /// The server ended the session (`bye`).
    #[error("the server ended the session ({code}): {reason}")]
    Closed {
        /// The goodbye's code.
        code: Code,
        /// The server's reason.
        reason: String,
    },
    /// The server broke the session protocol (an unexpected or unreadable frame).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The local runtime refused to host the agent.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl WsError {
    /// Whether trying again later may help: not for refused credentials, versions or
    /// cards, which the same client would present again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { code, .. } => !matches!(
                code,
                Code::Unauthenticated
                    | Code::Forbidden
                    | Code::Incompatible
                    | Code::SchemaInvalid
                    | Code::Malformed
            ),
            Self::Url { .. } | Self::Runtime(_) => false,
            Self::Transport(_) | Self::Closed { .. } | Self::Protocol(_) | Self::Timeout(_) => true,
        }
    }
}
