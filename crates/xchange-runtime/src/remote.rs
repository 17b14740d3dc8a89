//! Agents hosted elsewhere: a remote agent runs its own engine in its own process and
//! reaches this runtime's bus through a transport (a WebSocket session). Its card still
//! belongs in this runtime's directory, so that the managers hosted here hear of it when it
//! arrives and lose it when it leaves.

use std::fmt;
use std::sync::Arc;

use xchange_core::ContractorProfile;
use xchange_protocol::{AgentId, Code};

use crate::error::RuntimeError;
use crate::runtime::Runtime;
use crate::shared::Shared;

impl Runtime {
    /// Registers the card of an agent hosted elsewhere: managers hosted here are told it
    /// arrived, as for a hosted agent, but no engine is started and nothing is subscribed
    /// (the transport subscribes the agent's topics, see [`crate::agent_topics`]).
    ///
    /// Fails with [`RuntimeError::AgentPresent`] when an agent with this id is already
    /// hosted or attached, and with [`RuntimeError::InvalidSpec`] for a profile with invalid
    /// names.
    pub fn attach_remote(
        &self,
        id: AgentId,
        profile: ContractorProfile,
    ) -> Result<RemoteAttachment, RuntimeError> {
        self.shared.attach_remote(id, &profile)?;
        Ok(RemoteAttachment { id, shared: Some(self.shared.clone()) })
    }
}

/// A remote agent's place in the directory. [`RemoteAttachment::detach`] says how it left;
/// dropping it without a word counts as an unexpected disconnect (5009), so a transport task
/// that panics or is aborted still makes managers reassign the agent's contracts.
pub struct RemoteAttachment {
    id: AgentId,
    /// `None` once detached.
    shared: Option<Arc<Shared>>,
}

impl RemoteAttachment {
    /// The attached agent.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// Removes the agent's card; managers are told with `code`: 5003 (agent_disconnected)
    /// for an orderly goodbye, anything else is reported as 5009 (unexpected_disconnect),
    /// the only two reasons an engine knows for an agent leaving.
    pub fn detach(mut self, code: Code) {
        self.leave(code);
    }

    fn leave(&mut self, code: Code) {
        let code = if code == Code::AgentDisconnected { code } else { Code::UnexpectedDisconnect };
        if let Some(shared) = self.shared.take() {
            shared.depart(self.id, code);
        }
    }
}

impl Drop for RemoteAttachment {
    fn drop(&mut self) {
        self.leave(Code::UnexpectedDisconnect);
    }
}

impl fmt::Debug for RemoteAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAttachment")
            .field("id", &self.id)
            .field("attached", &self.shared.is_some())
            .finish()
    }
}
