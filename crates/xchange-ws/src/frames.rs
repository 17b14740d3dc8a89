//! The session frames: JSON text frames with a `type` tag (documented in `docs/agents.md`).
//!
//! `msg` frames carry an AIXP envelope and are read apart from the others: their envelope is
//! kept as the raw bytes received, so that the protocol's edge checks (size, version,
//! expiry, hops, signature over the envelope as received) run on exactly those bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use xchange_protocol::{AgentId, AgentKey, Code, EdgeLimits, Envelope, MsgId, Nonce, Refusal, Sig, Version};

use crate::card::RemoteCard;

/// The path the HTTP service serves agent sessions on.
pub const CONNECT_PATH: &str = "/v1/agents/connect";

/// Room a frame needs around the envelope it carries (`{"type":"msg","envelope":…}`).
pub(crate) const FRAME_OVERHEAD: usize = 1024;

/// The most bytes a frame may have, for an edge that accepts envelopes of `limits`.
pub fn max_frame_bytes(limits: &EdgeLimits) -> usize {
    limits.max_bytes + FRAME_OVERHEAD
}

/// Every frame but `msg` (see [`read_frame`] and [`msg_text`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// Server to client, first: what the hello must sign.
    Challenge(Challenge),
    /// Client to server: who the agent is and what it offers, signed.
    Hello(Box<Hello>),
    /// Server to client: the agent is connected (5001).
    Welcome(Welcome),
    /// Server to client: the hello was refused; the server closes the connection.
    Refused(ErrorFrame),
    /// Either way: a `msg` frame was refused; the session goes on.
    Error(ErrorFrame),
    /// Either way: the session ends (5003 orderly; 5005 from a server whose client read
    /// too slowly).
    Bye(Bye),
}

/// The server's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Fresh random bytes the hello must sign (26 characters of base32hex, like envelope
    /// nonces).
    pub nonce: Nonce,
    /// Names the server; the hello signs it too, so that a hello cannot be replayed to
    /// another server.
    pub server_id: String,
    /// The AIXP versions the server speaks (`"1.0"`).
    pub versions: Vec<String>,
}

/// The client's hello. It is signed like an envelope: Ed25519 over the RFC 8785 form of
/// the whole frame object without `sig` (see [`xchange_protocol::verify_value`]), with
/// `from` naming the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The AIXP version the client speaks, `"major.minor"`.
    pub aixp: String,
    /// The agent id, which is its Ed25519 public key; must be the card's id.
    pub from: AgentId,
    /// The challenge's nonce.
    pub nonce: Nonce,
    /// The challenge's server id.
    pub server_id: String,
    /// What the agent offers.
    pub card: RemoteCard,
    /// A bearer credential, checked when the server has a token check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<Sig>,
}

/// The server's welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The authenticated agent.
    pub agent_id: AgentId,
    /// 5001 (agent_connected).
    pub code: Code,
}

/// A refusal: of a hello (`refused`) or of a `msg` (`error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The status code.
    pub code: Code,
    /// The code's stable name.
    pub name: String,
    /// What exactly was wrong, lower case.
    pub message: String,
    /// The `id` of the refused envelope, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<MsgId>,
    /// For 5005 over a rate limit: how long to wait before sending again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorFrame {
    /// The frame for `refusal`.
    pub fn new(refusal: &Refusal, id: Option<MsgId>) -> Self {
        Self {
            code: refusal.code,
            name: refusal.code.name().into(),
            message: refusal.reason.clone(),
            id,
            retry_after_ms: None,
        }
    }

    /// The refusal it carries.
    pub fn refusal(&self) -> Refusal {
        Refusal::new(self.code, self.message.clone())
    }
}

/// The end of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {
    /// 5003 for an orderly goodbye.
    pub code: Code,
    /// Why, in words.
    #[serde(default)]
    pub reason: String,
}

impl Frame {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a frame always serializes")
    }
}

/// What one incoming text frame holds.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// A `msg`: its envelope, as received, still to be checked.
    Msg(&'a RawValue),
    /// Any other frame.
    Frame(Frame),
}

/// Reads one frame: `msg` frames keep their envelope raw; a frame that is not JSON is
/// 5015, a frame of an unknown type or shape is 5014.
pub fn read_frame(text: &str) -> Result<Inbound<'_>, Refusal> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(borrow, default)]
        envelope: Option<&'a RawValue>,
    }
    let head: Head<'_> = serde_json::from_str(text)
        .map_err(|e| Refusal::new(Code::Malformed, format!("frame is not a json object: {e}")))?;
    match head.kind.as_deref() {
        Some("msg") => head
            .envelope
            .map(Inbound::Msg)
            .ok_or_else(|| Refusal::new(Code::SchemaInvalid, "msg frame without an envelope")),
        Some(_) => serde_json::from_str(text)
            .map(Inbound::Frame)
            .map_err(|e| Refusal::new(Code::SchemaInvalid, format!("invalid frame: {e}"))),
        None => Err(Refusal::new(Code::SchemaInvalid, "frame has no type")),
    }
}

/// The `msg` frame carrying `env`.
pub fn msg_text(env: &Envelope) -> String {
    #[derive(Serialize)]
    struct Msg<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        envelope: &'a Envelope,
    }
    serde_json::to_string(&Msg { kind: "msg", envelope: env }).expect("an envelope always serializes")
}

/// The id of a refused envelope, if it can be read.
pub(crate) fn envelope_id(raw: &RawValue) -> Option<MsgId> {
    #[derive(Deserialize)]
    struct Id {
        id: MsgId,
    }
    serde_json::from_str::<Id>(raw.get()).ok().map(|i| i.id)
}

/// The signed hello that answers `challenge`.
pub fn signed_hello(
    key: &AgentKey,
    challenge: &Challenge,
    card: RemoteCard,
    token: Option<String>,
) -> String {
    let hello = Frame::Hello(Box::new(Hello {
        aixp: Version::V1_0.to_string(),
        from: key.id(),
        nonce: challenge.nonce,
        server_id: challenge.server_id.clone(),
        card,
        token,
        sig: None,
    }));
    let mut value = serde_json::to_value(&hello).expect("a frame always serializes");
    key.sign_value(&mut value).expect("a hello is an object with a nonce");
    value.to_string()
}

/// Reads a hello: size, JSON and version as for an envelope (5019, 5015, 5006), then its
/// shape (5014); returns it with the raw object its signature covers.
pub(crate) fn read_hello(text: &str, limits: &EdgeLimits) -> Result<(Hello, Value), Refusal> {
    let raw = xchange_protocol::read_value(text.as_bytes(), limits)?;
    match serde_json::from_value::<Frame>(raw.clone()) {
        Ok(Frame::Hello(hello)) => Ok((*hello, raw)),
        Ok(other) => {
            Err(Refusal::new(Code::SchemaInvalid, format!("expected a hello frame, got {}", other.kind())))
        }
        Err(e) => Err(Refusal::new(Code::SchemaInvalid, format!("invalid hello: {e}"))),
    }
}

impl Frame {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Challenge(_) => "challenge",
            Self::Hello(_) => "hello",
            Self::Welcome(_) => "welcome",
            Self::Refused(_) => "refused",
            Self::Error(_) => "error",
            Self::Bye(_) => "bye",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use xchange_core::ContractorProfile;

    use super::*;

    fn challenge() -> Challenge {
        Challenge { nonce: Nonce([3; 16]), server_id: "node-1".into(), versions: vec!["1.0".into()] }
    }

    #[test]
    fn control_frames_round_trip_with_their_type_tag() {
        let frames = [
            Frame::Challenge(challenge()),
            Frame::Welcome(Welcome {
                agent_id: AgentKey::from_seed([1; 32]).id(),
                code: Code::AgentConnected,
            }),
            Frame::Refused(ErrorFrame::new(&Refusal::new(Code::Unauthenticated, "bad token"), None)),
            Frame::Bye(Bye { code: Code::AgentDisconnected, reason: "done".into() }),
        ];
        for frame in frames {
            let text = frame.to_text();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["type"], json!(frame.kind()), "{text}");
            match read_frame(&text).unwrap() {
                Inbound::Frame(back) => assert_eq!(back, frame),
                Inbound::Msg(_) => panic!("not a msg"),
            }
        }
        let text = Frame::Welcome(Welcome {
            agent_id: AgentKey::from_seed([1; 32]).id(),
            code: Code::AgentConnected,
        })
        .to_text();
        assert!(text.contains(r#""code":5001"#), "{text}");
    }

    #[test]
    fn msg_frames_keep_the_envelope_as_received() {
        let text = r#"{"type":"msg", "envelope": {"b": 1,  "a": [2]}, "x_future": true}"#;
        match read_frame(text).unwrap() {
            Inbound::Msg(raw) => assert_eq!(raw.get(), r#"{"b": 1,  "a": [2]}"#),
            Inbound::Frame(f) => panic!("read as {f:?}"),
        }
    }

    #[test]
    fn bad_frames_are_refused_with_their_codes() {
        for (text, code) in [
            ("not json", Code::Malformed),
            ("[1, 2]", Code::Malformed),
            (r#"{"envelope": {}}"#, Code::SchemaInvalid),
            (r#"{"type": "msg"}"#, Code::SchemaInvalid),
            (r#"{"type": "teleport"}"#, Code::SchemaInvalid),
            (r#"{"type": "bye", "code": "soon"}"#, Code::SchemaInvalid),
            (r#"{"type": "bye", "code": 1234}"#, Code::SchemaInvalid),
        ] {
            let err = read_frame(text).expect_err(text);
            assert_eq!(err.code, code, "{text}: {err}");
        }
    }

    #[test]
    fn a_signed_hello_verifies_and_binds_its_fields() {
        let key = AgentKey::from_seed([2; 32]);
        let card = RemoteCard::new(key.id(), &ContractorProfile::new(["echo"]));
        let text = signed_hello(&key, &challenge(), card.clone(), Some("t0ken".into()));
        let (hello, raw) = read_hello(&text, &EdgeLimits::default()).unwrap();
        assert_eq!((hello.from, hello.nonce, hello.card), (key.id(), challenge().nonce, card));
        assert_eq!(hello.token.as_deref(), Some("t0ken"));
        xchange_protocol::verify_value(&raw).unwrap();
        for (field, value) in [
            ("token", json!("other")),
            ("server_id", json!("node-2")),
            ("nonce", json!(Nonce([4; 16]).to_string())),
        ] {
            let mut tampered = raw.clone();
            tampered[field] = value;
            assert!(xchange_protocol::verify_value(&tampered).is_err(), "{field} is bound");
        }
        let mut tampered = raw;
        tampered["card"]["price_per_unit"] = json!(1);
        assert!(xchange_protocol::verify_value(&tampered).is_err(), "the card is bound");
    }

    #[test]
    fn a_hello_is_read_with_the_envelope_checks() {
        let limits = EdgeLimits::default();
        let err = |text: &str| read_hello(text, &limits).unwrap_err().code;
        assert_eq!(err("{"), Code::Malformed);
        assert_eq!(err(r#"{"type": "hello"}"#), Code::Incompatible);
        assert_eq!(err(r#"{"type": "hello", "aixp": "2.0"}"#), Code::Incompatible);
        assert_eq!(err(r#"{"type": "hello", "aixp": 1}"#), Code::Malformed);
        assert_eq!(err(r#"{"type": "hello", "aixp": "1.0"}"#), Code::SchemaInvalid);
        assert_eq!(err(r#"{"type": "bye", "aixp": "1.0", "code": 5003}"#), Code::SchemaInvalid);
        let small = EdgeLimits { max_bytes: 10, ..EdgeLimits::default() };
        assert_eq!(
            read_hello(r#"{"type": "hello", "aixp": "1.0"}"#, &small).unwrap_err().code,
            Code::TooLarge
        );
    }
}
