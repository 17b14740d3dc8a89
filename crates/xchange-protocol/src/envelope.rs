//! The AIXP/1 envelope and the typed body of every message kind.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::code::Code;
use crate::ids::{AgentId, MsgId, Nonce, Sig, TaskId, UnixMs};
use crate::task::{Budget, ContractRef, TaskSpec};

/// A protocol version, `major.minor` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions (unknown fields are ignored within a major version).
    pub minor: u16,
}

impl Version {
    /// AIXP/1.0, the version this crate speaks.
    pub const V1_0: Self = Self { major: 1, minor: 0 };
}

/// The versions this implementation speaks, as named in a 5006 refusal.
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0"];

/// Major versions this implementation accepts.
pub const SUPPORTED_MAJORS: &[u16] = &[1];

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Digits only: `u16::from_str` alone would also take "+1".
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        let err = || format!("version {s:?} is not major.minor");
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(Self { major: number(major).ok_or_else(err)?, minor: number(minor).ok_or_else(err)? })
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a message goes: one agent's inbox, or a pool subject that every agent with the
/// capability in that pool listens on (a broadcast call for proposals).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recipient {
    /// One agent.
    Agent(AgentId),
    /// All agents offering `capability` in `pool`; text form `pool.<pool>.<capability>`.
    Pool {
        /// The pool (task database).
        pool: Arc<str>,
        /// The capability.
        capability: Arc<str>,
    },
}

impl Recipient {
    /// The agent, if the recipient is one agent.
    pub fn agent(&self) -> Option<AgentId> {
        match self {
            Self::Agent(a) => Some(*a),
            Self::Pool { .. } => None,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(a) => fmt::Display::fmt(a, f),
            Self::Pool { pool, capability } => write!(f, "pool.{pool}.{capability}"),
        }
    }
}

impl std::str::FromStr for Recipient {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("pool.") {
            let (pool, capability) =
                rest.split_once('.').ok_or_else(|| format!("pool subject {s:?} lacks a capability"))?;
            if !crate::task::is_valid_name(pool) || !crate::task::is_valid_name(capability) {
                return Err(format!("pool subject {s:?} has an invalid name"));
            }
            return Ok(Self::Pool { pool: pool.into(), capability: capability.into() });
        }
        s.parse::<AgentId>().map(Self::Agent).map_err(|e| e.to_string())
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Recipient {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Recipient".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "One agent (its id) or a pool subject `pool.<pool>.<capability>`.",
            "type": "string",
            "pattern": "^(?:[0-9a-v]{52}|pool\\.[A-Za-z0-9_-]{1,64}\\.[A-Za-z0-9_-]{1,64})$"
        })
    }
}

/// The message kinds of AIXP/1 (FIPA Contract Net plus liveness and acknowledgements).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Call for proposals (announce).
    Cfp,
    /// A bid.
    Propose,
    /// No bid, with a reason.
    Refuse,
    /// An award.
    Accept,
    /// A losing bid.
    Reject,
    /// Execution progress.
    Progress,
    /// Contractor liveness: renews the leases of the listed contracts.
    Heartbeat,
    /// A result report.
    Inform,
    /// A failure report or a hand-back (decommit).
    Failure,
    /// The manager withdraws the task.
    Cancel,
    /// Receipt of a report.
    Ack,
    /// A refusal of a message.
    Error,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 12] = [
        Self::Cfp,
        Self::Propose,
        Self::Refuse,
        Self::Accept,
        Self::Reject,
        Self::Progress,
        Self::Heartbeat,
        Self::Inform,
        Self::Failure,
        Self::Cancel,
        Self::Ack,
        Self::Error,
    ];

    /// Kinds that create obligations and must be signed between processes.
    pub const fn must_be_signed(self) -> bool {
        matches!(self, Self::Propose | Self::Accept | Self::Inform | Self::Failure | Self::Cancel)
    }

    /// Kinds that belong to one task's conversation: they must name it (`conversation`) and
    /// sit at depth `hops >= 1`. The exceptions are `heartbeat` (one per contractor and
    /// manager, covering all their contracts) and `error` (it may refuse a message whose
    /// conversation could not be read).
    pub const fn is_task_kind(self) -> bool {
        !matches!(self, Self::Heartbeat | Self::Error)
    }

    /// The kind's wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cfp => "cfp",
            Self::Propose => "propose",
            Self::Refuse => "refuse",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Progress => "progress",
            Self::Heartbeat => "heartbeat",
            Self::Inform => "inform",
            Self::Failure => "failure",
            Self::Cancel => "cancel",
            Self::Ack => "ack",
            Self::Error => "error",
        }
    }

    /// A dense index (0..12) for counters.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `cfp`: the task and the budget slice the contractor would receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CfpBody {
    /// The task.
    pub task: Arc<TaskSpec>,
    /// The budget slice that goes with the contract.
    pub budget: Budget,
    /// Late binding: do not bid now; keep a reservation and send `propose` when free,
    /// before the call's `reply_by`. The first such bid wins.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// `propose`: a bid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProposeBody {
    /// The price asked, in the smallest currency unit.
    pub price: u64,
    /// Estimated time to result, in milliseconds, counting the contractor's queue.
    pub eta_ms: u64,
    /// Contracts held (running and queued) divided by capacity.
    pub load: f64,
}

/// A refusal body (`refuse`, `reject`, `cancel`): a code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CodeBody {
    /// The status code.
    pub code: Code,
    /// What exactly happened.
    #[serde(default)]
    pub reason: String,
}

/// `accept`: the award.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AcceptBody {
    /// The task (repeated so that a directed award needs no `cfp`).
    pub task: Arc<TaskSpec>,
    /// The budget slice reserved for this contract.
    pub budget: Budget,
    /// The agreed price.
    pub price: u64,
    /// The lease: the contract lapses if no heartbeat renews it within this many ms.
    pub lease_ms: u64,
    /// Set by iterated auctions: the award is provisional and may move (see [`Provisional`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional: Option<Provisional>,
}

/// The terms of a provisional award in an iterated auction. The contractor holds it without
/// starting until `settle_ms` pass with no better award; an award with a higher `premium`
/// (from any manager) displaces it, and the held one is handed back with `outbid` so that
/// its manager places it again. The premium ranks awards; it is not a payment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Provisional {
    /// The award's standing: higher wins.
    pub premium: f64,
    /// Quiet time after which the contractor starts the task.
    pub settle_ms: u64,
}

/// `progress`: how far the execution is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProgressBody {
    /// Fraction done, 0 to 1. A first `progress` with `started` makes the award final.
    pub fraction: f64,
    /// Whether execution has started.
    #[serde(default)]
    pub started: bool,
    /// A free-form note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `heartbeat`: one per contractor and manager, renewing the listed contracts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeartbeatBody {
    /// The contractor's incarnation: it grows at each restart, so a restarted contractor
    /// cannot renew leases it forgot.
    pub incarnation: u64,
    /// The contracts the contractor holds with the recipient.
    pub contracts: Vec<ContractRef>,
}

/// `inform`: the result report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InformBody {
    /// The result.
    pub result: Arc<Value>,
    /// What the contractor spent from its budget slice (for its own subtasks).
    #[serde(default)]
    pub spent: Budget,
}

/// `failure`: the execution failed, or the contractor hands the task back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FailureBody {
    /// Why: `execution_failed`, `decommitted`, `busy`, …
    pub code: Code,
    /// What exactly happened.
    #[serde(default)]
    pub reason: String,
    /// Whether trying again with the same contractor may succeed.
    #[serde(default)]
    pub retryable: bool,
    /// Whether execution had started (a hand-back after start costs reputation).
    #[serde(default)]
    pub started: bool,
    /// What the contractor spent from its budget slice.
    #[serde(default)]
    pub spent: Budget,
}

/// `ack`: receipt of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AckBody {
    /// Usually 5002 (received and processed).
    pub code: Code,
}

/// `error`: a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// The status code.
    pub code: Code,
    /// What exactly was wrong.
    #[serde(default)]
    pub reason: String,
    /// With 5006: the versions the refusing peer speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<Vec<String>>,
}

/// The kind-specific body; on the wire `kind` names the variant and `body` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Body {
    /// Call for proposals.
    Cfp(CfpBody),
    /// A bid.
    Propose(ProposeBody),
    /// No bid.
    Refuse(CodeBody),
    /// Award.
    Accept(AcceptBody),
    /// Losing bid.
    Reject(CodeBody),
    /// Progress.
    Progress(ProgressBody),
    /// Liveness.
    Heartbeat(HeartbeatBody),
    /// Result report.
    Inform(InformBody),
    /// Failure report or hand-back.
    Failure(FailureBody),
    /// Withdrawal.
    Cancel(CodeBody),
    /// Receipt.
    Ack(AckBody),
    /// Refusal of a message.
    Error(ErrorBody),
}

impl Body {
    /// The body's kind.
    pub const fn kind(&self) -> Kind {
        match self {
            Self::Cfp(_) => Kind::Cfp,
            Self::Propose(_) => Kind::Propose,
            Self::Refuse(_) => Kind::Refuse,
            Self::Accept(_) => Kind::Accept,
            Self::Reject(_) => Kind::Reject,
            Self::Progress(_) => Kind::Progress,
            Self::Heartbeat(_) => Kind::Heartbeat,
            Self::Inform(_) => Kind::Inform,
            Self::Failure(_) => Kind::Failure,
            Self::Cancel(_) => Kind::Cancel,
            Self::Ack(_) => Kind::Ack,
            Self::Error(_) => Kind::Error,
        }
    }
}

/// The managers above a task, root first. Shared, because every message of a task
/// carries the same lineage.
pub type Lineage = Arc<[AgentId]>;

/// One AIXP/1 message.
///
/// On the wire the body's variant appears as `kind` and its content as `body`; every other
/// field is listed in docs/protocol.md. Unknown fields are ignored (forward compatibility
/// within a major version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Envelope {
    /// Protocol version.
    #[cfg_attr(feature = "schema", schemars(with = "String", regex(pattern = r"^[0-9]+\.[0-9]+$")))]
    pub aixp: Version,
    /// Unique message id (per sender): deduplication and correlation.
    pub id: MsgId,
    /// Kind and body.
    #[serde(flatten)]
    pub body: Body,
    /// The sender.
    pub from: AgentId,
    /// The recipient: one agent or a pool subject.
    pub to: Recipient,
    /// The task this message is about (FIPA conversation id); absent only on heartbeats and
    /// on errors that refuse a message whose conversation could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<TaskId>,
    /// The contract epoch: a report from an older epoch is stale.
    #[serde(default)]
    pub epoch: u32,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<MsgId>,
    /// Answer deadline (bid window), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_by: Option<UnixMs>,
    /// Time-to-live: the message is void after this unix ms.
    pub expires_at: UnixMs,
    /// Depth of the task in its tree: the sender sets its parent's hops + 1.
    pub hops: u8,
    /// The hop limit of the tree.
    pub max_hops: u8,
    /// Managers above this task, root first (subcontract cycle check).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<AgentId>"))]
    pub lineage: Lineage,
    /// Random nonce; required on signed messages (replay protection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
    /// Ed25519 signature over the RFC 8785 canonical form of everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Sig>,
}

impl Envelope {
    /// The message kind.
    pub const fn kind(&self) -> Kind {
        self.body.kind()
    }
}
