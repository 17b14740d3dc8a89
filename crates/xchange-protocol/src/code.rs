//! The one table of status codes.
//!
//! AIXP's seed defines 5001-5009; the project extends the range from 5010 on.
//! Every refusal anywhere in Xchange (wire, engine, HTTP) carries one of these codes,
//! so a code's number, name, HTTP status and sentence are defined here and only here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! status_codes {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $name:literal, $http:literal, $sentence:literal; )*) => {
        /// A status code from the AIXP/1 table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u16)]
        pub enum Code {
            $( $(#[$doc])* $variant = $num, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code's number on the wire.
            pub const fn number(self) -> u16 { self as u16 }

            /// The stable snake_case name (used in logs, metrics and HTTP error bodies).
            pub const fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The HTTP status an API answers with when it refuses with this code.
            pub const fn http_status(self) -> u16 {
                match self { $(Code::$variant => $http,)* }
            }

            /// One sentence that says what the code means.
            pub const fn sentence(self) -> &'static str {
                match self { $(Code::$variant => $sentence,)* }
            }

            /// Looks a code up by its number.
            pub const fn from_number(n: u16) -> Option<Code> {
                match n { $($num => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

status_codes! {
    /// Seed 5001: an agent connected (informational).
    AgentConnected = 5001, "agent_connected", 200, "The agent connected.";
    /// Seed 5002: data received and processed (success).
    Processed = 5002, "processed", 200, "The data was received and processed.";
    /// Seed 5003: an agent disconnected in an orderly way.
    AgentDisconnected = 5003, "agent_disconnected", 503, "The agent disconnected.";
    /// Seed 5004: identity or credential failure.
    Unauthenticated = 5004, "unauthenticated", 401, "The agent's identity could not be established: unknown agent or invalid credentials.";
    /// Seed 5005: timeout, rate limit, or a full queue.
    Busy = 5005, "busy", 429, "The agent or node is busy: a timeout, a rate limit or a full queue; try again later.";
    /// Seed 5006: unsupported format or incompatible version.
    Incompatible = 5006, "incompatible", 400, "The data format or protocol version is not supported.";
    /// Seed 5007: insufficient access, or the maximum number of agents reached.
    Forbidden = 5007, "forbidden", 403, "The caller is not allowed to do this: insufficient access or the maximum number of agents is reached.";
    /// Seed 5008: connection limit exceeded.
    ConnectionLimit = 5008, "connection_limit", 503, "The connection limit is exceeded.";
    /// Seed 5009: an agent vanished without saying goodbye.
    UnexpectedDisconnect = 5009, "unexpected_disconnect", 502, "The agent disconnected unexpectedly.";
    /// A subcontracting cycle: the recipient already manages an ancestor of this task.
    LoopDetected = 5010, "loop_detected", 508, "A loop was detected: the task's lineage already contains this agent.";
    /// The message or subtask is deeper than its hop limit.
    HopLimit = 5011, "hop_limit", 508, "The hop limit is reached: the message went through too many agents.";
    /// The message's time-to-live has passed.
    Expired = 5012, "expired", 410, "The message expired before it was handled.";
    /// The message asks to live longer than the configured maximum time-to-live.
    TtlTooLong = 5013, "ttl_too_long", 400, "The message's time-to-live is longer than the maximum allowed.";
    /// The message or document does not match its schema.
    SchemaInvalid = 5014, "schema_invalid", 422, "The message or document does not match its schema.";
    /// The bytes are not a JSON envelope at all.
    Malformed = 5015, "malformed", 400, "The message could not be parsed.";
    /// A kind that must be signed arrived unsigned.
    SignatureMissing = 5016, "signature_missing", 401, "The message must be signed and is not.";
    /// The signature does not verify against the sender's key.
    SignatureInvalid = 5017, "signature_invalid", 401, "The message's signature does not verify against the sender's key.";
    /// The same signed message (sender, id, nonce) was seen before.
    Replay = 5018, "replay", 409, "The message was already received: a replay.";
    /// The message or body is larger than allowed.
    TooLarge = 5019, "too_large", 413, "The message is larger than allowed.";
    /// The task, job, agent or resource does not exist.
    NotFound = 5020, "not_found", 404, "The requested task, job or resource does not exist.";
    /// The request conflicts with existing state (for example a job id reused with another body).
    Conflict = 5021, "conflict", 409, "The request conflicts with the existing state.";
    /// The message belongs to an older contract epoch of the task.
    StaleEpoch = 5022, "stale_epoch", 409, "The message refers to an older contract of this task.";
    /// A bid arrived after the bid window closed.
    BidWindowClosed = 5023, "bid_window_closed", 409, "The bid arrived after the bid window closed.";
    /// No agent with the required capability could be found or would bid.
    NoEligibleContractor = 5024, "no_eligible_contractor", 503, "No eligible contractor was found for the task.";
    /// The result report was assessed and rejected.
    VerificationFailed = 5025, "verification_failed", 422, "The result did not pass verification.";
    /// The task failed more times than its retry limit allows.
    RetryLimit = 5026, "retry_limit", 422, "The task failed more times than its retry limit allows.";
    /// The root job's budget (subtasks, messages, reassignments or price) is spent.
    BudgetExhausted = 5027, "budget_exhausted", 402, "The job's budget is exhausted.";
    /// The task was cancelled.
    Cancelled = 5028, "cancelled", 409, "The task was cancelled.";
    /// The task's deadline passed before it completed.
    DeadlineExceeded = 5029, "deadline_exceeded", 504, "The task's deadline passed before it completed.";
    /// The contractor stopped renewing its lease.
    LeaseExpired = 5030, "lease_expired", 504, "The contractor's lease lapsed: it stopped sending heartbeats.";
    /// The contractor handed the task back.
    Decommitted = 5031, "decommitted", 409, "The contractor handed the task back.";
    /// The agent lacks the capability the task needs.
    NotCapable = 5032, "not_capable", 422, "The agent does not have the capability the task needs.";
    /// The agent declined the task at the offered terms (for example a price limit).
    Declined = 5033, "declined", 409, "The agent declined the task at the offered terms.";
    /// Execution of the task failed at the contractor.
    ExecutionFailed = 5034, "execution_failed", 502, "The contractor failed to execute the task.";
    /// The message is not expected in the conversation's current state.
    OutOfSequence = 5035, "out_of_sequence", 409, "The message is not expected in the current state of the conversation.";
    /// The contract a subtask belonged to no longer exists.
    ParentLost = 5036, "parent_lost", 409, "The parent task's contract no longer exists.";
    /// A provisional award moved to another contractor.
    Superseded = 5037, "superseded", 409, "The provisional award moved to another contractor.";
    /// The request itself is invalid (bad parameters).
    InvalidRequest = 5038, "invalid_request", 400, "The request is invalid.";
    /// A storage or bus component needed for the request is unavailable.
    Unavailable = 5039, "unavailable", 503, "A component needed for the request is unavailable; try again later.";
    /// A write was refused because another node now owns the partition (fencing).
    Fenced = 5040, "fenced", 409, "The write was refused: another node owns this partition now.";
    /// A bid lost the award to another bid.
    Outbid = 5041, "outbid", 409, "Another bid won the award.";
    /// An internal error.
    Internal = 5099, "internal", 500, "An internal error occurred.";
}

impl Code {
    /// Informational and success codes are not errors.
    pub const fn is_error(self) -> bool {
        !matches!(self, Self::AgentConnected | Self::Processed)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.number(), self.name())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.number())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u16::deserialize(d)?;
        Self::from_number(n).ok_or_else(|| serde::de::Error::custom(format!("unknown status code {n}")))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Code {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Code".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let numbers: Vec<u16> = Self::ALL.iter().map(|c| c.number()).collect();
        schemars::json_schema!({
            "description": "A status code from the AIXP/1 table (see docs/protocol.md).",
            "type": "integer",
            "enum": numbers,
        })
    }
}

/// A refusal: a code with a sentence that says what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Refusal {
    /// The status code.
    pub code: Code,
    /// What exactly was wrong, lower case, no trailing period.
    pub reason: String,
}

impl Refusal {
    /// Builds a refusal.
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_lookups_are_unique_and_round_trip() {
        let mut names = std::collections::BTreeSet::new();
        for &c in Code::ALL {
            assert_eq!(Code::from_number(c.number()), Some(c));
            assert!(names.insert(c.name()), "duplicate name {}", c.name());
            assert!((100..600).contains(&c.http_status()));
            assert!(c.sentence().ends_with('.'));
        }
        assert_eq!(Code::from_number(4999), None);
    }

    #[test]
    fn seed_codes_keep_their_meaning() {
        assert_eq!(Code::AgentConnected.number(), 5001);
        assert!(!Code::AgentConnected.is_error());
        assert!(!Code::Processed.is_error());
        assert_eq!(Code::Unauthenticated.http_status(), 401);
        assert_eq!(Code::Busy.http_status(), 429);
        assert_eq!(Code::UnexpectedDisconnect.number(), 5009);
    }

    #[test]
    fn serializes_as_number_and_refuses_unknown() {
        assert_eq!(serde_json::to_string(&Code::StaleEpoch).unwrap(), "5022");
        assert_eq!(serde_json::from_str::<Code>("5010").unwrap(), Code::LoopDetected);
        assert!(serde_json::from_str::<Code>("5998").is_err());
    }
}
