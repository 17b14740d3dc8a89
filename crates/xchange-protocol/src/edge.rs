//! The checks every edge (bus adapter, HTTP handler) runs on incoming bytes before a
//! message reaches the engine.
//!
//! [`decode`] runs, in this order, each with its own code:
//!
//! 1. size ([`Code::TooLarge`]);
//! 2. JSON object ([`Code::Malformed`]);
//! 3. version: `aixp` missing or of an unsupported major version is
//!    [`Code::Incompatible`] (the reason names the supported versions), `aixp` that is not a
//!    `"major.minor"` string is [`Code::Malformed`];
//! 4. the typed envelope: unknown kind, missing field, wrong type ([`Code::SchemaInvalid`]);
//! 5. [`check`]: expiry and time-to-live, hop limits, recipient, lineage (loops), the
//!    conversation, task names, and last the signature.
//!
//! An edge that wants to answer a refusal with an `error` message runs the steps itself
//! ([`read_value`], [`parse_envelope`], [`check`]) so that it keeps the raw value for
//! [`error_reply`].

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::code::{Code, Refusal};
use crate::envelope::{
    AcceptBody, Body, CfpBody, Envelope, ErrorBody, Kind, Recipient, SUPPORTED_MAJORS, SUPPORTED_VERSIONS,
    Version,
};
use crate::ids::{AgentId, MsgId, TaskId, UnixMs};
use crate::sign::verify_value;
use crate::task::is_valid_name;

/// The limits an edge enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// The largest message, in bytes.
    pub max_bytes: usize,
    /// The longest time-to-live a message may ask for (`expires_at - now`), in ms.
    pub max_ttl_ms: u64,
    /// The largest `max_hops` a message may carry.
    pub max_hops_cap: u8,
    /// Whether the kinds that create obligations ([`Kind::must_be_signed`]) must be signed,
    /// and every signature present is verified. Off only inside one trusted process.
    pub require_signatures: bool,
    /// The longest lineage (managers above the task).
    pub max_lineage: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_ttl_ms: 10 * 60 * 1000,
            max_hops_cap: 16,
            require_signatures: true,
            max_lineage: 16,
        }
    }
}

fn refuse<T>(code: Code, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::new(code, reason))
}

fn supported_list() -> String {
    SUPPORTED_VERSIONS.join(", ")
}

/// Decodes and checks one incoming message: size, JSON, version, typed envelope, then
/// [`check`].
///
/// Most messages parse straight into the typed envelope; the generic JSON value (what a
/// signature is verified on) is built only for a message whose signature will be checked,
/// and for one that does not parse, so that its refusal names the first step it fails.
/// Building the value costs as much as the rest of the edge for an unsigned message.
pub fn decode(
    bytes: &[u8],
    now_ms: UnixMs,
    recipient: Option<AgentId>,
    limits: &EdgeLimits,
) -> Result<Envelope, Refusal> {
    if bytes.len() <= limits.max_bytes
        && let Ok(env) = serde_json::from_slice::<Envelope>(bytes)
        && SUPPORTED_MAJORS.contains(&env.aixp.major)
    {
        let verifies = limits.require_signatures && (env.kind().must_be_signed() || env.sig.is_some());
        let raw = if verifies { read_value(bytes, limits)? } else { Value::Null };
        check(&env, &raw, now_ms, recipient, limits)?;
        return Ok(env);
    }
    let raw = read_value(bytes, limits)?;
    let env = parse_envelope(&raw)?;
    check(&env, &raw, now_ms, recipient, limits)?;
    Ok(env)
}

/// Steps 1 to 3 of [`decode`]: the bytes are at most `max_bytes`, a JSON object, and speak
/// a supported major version.
pub fn read_value(bytes: &[u8], limits: &EdgeLimits) -> Result<Value, Refusal> {
    if bytes.len() > limits.max_bytes {
        return refuse(
            Code::TooLarge,
            format!("message is {} bytes; the limit is {}", bytes.len(), limits.max_bytes),
        );
    }
    let raw: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return refuse(Code::Malformed, format!("not json: {e}")),
    };
    let Value::Object(map) = &raw else { return refuse(Code::Malformed, "message is not a json object") };
    let version = match map.get("aixp") {
        None | Some(Value::Null) => {
            return refuse(
                Code::Incompatible,
                format!("missing aixp version; supported: {}", supported_list()),
            );
        }
        Some(Value::String(s)) => match s.parse::<Version>() {
            Ok(v) => v,
            Err(_) => return refuse(Code::Malformed, format!("aixp {s:?} is not major.minor")),
        },
        Some(other) => {
            return refuse(Code::Malformed, format!("aixp must be a \"major.minor\" string, not {other}"));
        }
    };
    if !SUPPORTED_MAJORS.contains(&version.major) {
        return refuse(
            Code::Incompatible,
            format!("unsupported version {version}; supported: {}", supported_list()),
        );
    }
    Ok(raw)
}

/// Step 4 of [`decode`]: the typed envelope. Unknown fields are ignored.
pub fn parse_envelope(raw: &Value) -> Result<Envelope, Refusal> {
    Envelope::deserialize(raw)
        .map_err(|e| Refusal::new(Code::SchemaInvalid, format!("invalid envelope: {e}")))
}

/// Step 5 of [`decode`]: the checks on a typed envelope. `raw` must be the JSON value `env`
/// was parsed from (signatures are verified on it, as received; it is read only when a
/// signature is checked); `recipient` is the agent
/// that received the message, if the edge receives for one agent.
pub fn check(
    env: &Envelope,
    raw: &Value,
    now_ms: UnixMs,
    recipient: Option<AgentId>,
    limits: &EdgeLimits,
) -> Result<(), Refusal> {
    let kind = env.kind();
    // Time.
    if env.expires_at <= now_ms {
        return refuse(
            Code::Expired,
            format!("message expired at {} ms, {} ms ago", env.expires_at, now_ms - env.expires_at),
        );
    }
    let ttl = env.expires_at - now_ms;
    if ttl > limits.max_ttl_ms {
        return refuse(
            Code::TtlTooLong,
            format!("time-to-live of {ttl} ms exceeds the maximum of {} ms", limits.max_ttl_ms),
        );
    }
    if let Some(reply_by) = env.reply_by
        && reply_by > env.expires_at
    {
        return refuse(
            Code::SchemaInvalid,
            format!("reply_by {reply_by} is after expires_at {}", env.expires_at),
        );
    }
    // Depth.
    if env.hops > env.max_hops {
        return refuse(Code::HopLimit, format!("hops {} exceed max_hops {}", env.hops, env.max_hops));
    }
    if env.max_hops > limits.max_hops_cap {
        return refuse(
            Code::HopLimit,
            format!("max_hops {} exceeds the cap of {}", env.max_hops, limits.max_hops_cap),
        );
    }
    if env.lineage.len() > limits.max_lineage {
        return refuse(
            Code::HopLimit,
            format!("lineage of {} agents exceeds the limit of {}", env.lineage.len(), limits.max_lineage),
        );
    }
    if env.hops == 0 && kind.is_task_kind() {
        return refuse(Code::SchemaInvalid, format!("hops must be at least 1 on {kind}"));
    }
    // Routing, before the checks that depend on who the recipient is.
    if let (Some(me), Recipient::Agent(to)) = (recipient, &env.to)
        && *to != me
    {
        return refuse(Code::Forbidden, format!("message is addressed to {to}, not to {me}"));
    }
    // Subcontracting cycles.
    for (i, a) in env.lineage.iter().enumerate() {
        if env.lineage[..i].contains(a) {
            return refuse(Code::LoopDetected, format!("agent {a} appears twice in the lineage"));
        }
    }
    if let Some(me) = recipient
        && matches!(kind, Kind::Cfp | Kind::Accept)
        && env.lineage.contains(&me)
    {
        return refuse(
            Code::LoopDetected,
            format!("recipient {me} already manages an ancestor of this task"),
        );
    }
    if env.lineage.len() > usize::from(env.hops) {
        return refuse(
            Code::SchemaInvalid,
            format!("lineage of {} agents is longer than hops {}", env.lineage.len(), env.hops),
        );
    }
    // Shape the types cannot express.
    if env.conversation.is_none() && kind.is_task_kind() {
        return refuse(Code::SchemaInvalid, format!("conversation is missing on {kind}"));
    }
    if let Body::Cfp(CfpBody { task, .. }) | Body::Accept(AcceptBody { task, .. }) = &env.body {
        for (what, name) in [("capability", &task.capability), ("pool", &task.pool)] {
            if !is_valid_name(name) {
                return refuse(
                    Code::SchemaInvalid,
                    format!("{what} {:?} is not 1-64 of [A-Za-z0-9_-]", truncate(name)),
                );
            }
        }
    }
    // Authenticity last: it is the most expensive check.
    if limits.require_signatures && (kind.must_be_signed() || env.sig.is_some()) {
        verify_value(raw)?;
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Encodes an envelope as JSON bytes.
pub fn encode(env: &Envelope) -> Vec<u8> {
    serde_json::to_vec(env).expect("an envelope always serializes to json")
}

/// The body of an `error` message for a refusal; with [`Code::Incompatible`] it lists the
/// versions this implementation speaks.
pub fn error_body(refusal: &Refusal) -> ErrorBody {
    ErrorBody {
        code: refusal.code,
        reason: refusal.reason.clone(),
        supported: (refusal.code == Code::Incompatible)
            .then(|| SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect()),
    }
}

/// An `error` message from `me` that answers the refused message `refused` (the raw JSON as
/// received, read as far as possible): it goes to the refused message's sender, names its
/// id in `in_reply_to`, keeps its conversation and epoch, and lives `ttl_ms`.
///
/// An error is never part of a task tree, so it carries `hops` 0, `max_hops` 0 and no
/// lineage. Returns `None` when there is nobody to answer: the sender cannot be read, or
/// the refused message is itself an `error` (errors are never answered, so two peers
/// cannot bounce errors forever).
pub fn error_reply(
    refusal: &Refusal,
    me: AgentId,
    refused: &Value,
    id: MsgId,
    now_ms: UnixMs,
    ttl_ms: u64,
) -> Option<Envelope> {
    if refused.get("kind").and_then(Value::as_str) == Some(Kind::Error.as_str()) {
        return None;
    }
    let text = |field: &str| refused.get(field).and_then(Value::as_str);
    let to: AgentId = text("from")?.parse().ok()?;
    Some(Envelope {
        aixp: Version::V1_0,
        id,
        body: Body::Error(error_body(refusal)),
        from: me,
        to: Recipient::Agent(to),
        conversation: text("conversation").and_then(|s| s.parse::<TaskId>().ok()),
        epoch: refused.get("epoch").and_then(Value::as_u64).and_then(|e| u32::try_from(e).ok()).unwrap_or(0),
        in_reply_to: text("id").and_then(|s| s.parse::<MsgId>().ok()),
        reply_by: None,
        expires_at: now_ms.saturating_add(ttl_ms),
        hops: 0,
        max_hops: 0,
        lineage: Arc::from(Vec::new()),
        nonce: None,
        sig: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{NOW, contractor, manager, plain, sample, task_id};
    use crate::ids::Nonce;
    use crate::task::TaskSpec;

    fn limits() -> EdgeLimits {
        EdgeLimits::default()
    }

    fn decode_env(env: &Envelope, recipient: Option<AgentId>) -> Result<Envelope, Refusal> {
        decode(&encode(env), NOW, recipient, &limits())
    }

    /// Decodes a raw JSON value.
    fn decode_json(v: &Value, limits: &EdgeLimits) -> Result<Envelope, Refusal> {
        decode(&serde_json::to_vec(v).unwrap(), NOW, None, limits)
    }

    #[track_caller]
    fn refused(result: Result<Envelope, Refusal>, code: Code) -> Refusal {
        let err = result.expect_err("should be refused");
        assert_eq!(err.code, code, "{err}");
        assert!(!err.reason.is_empty() && !err.reason.ends_with('.'), "{err}");
        assert!(!err.reason.starts_with(char::is_uppercase), "reason starts lower case: {err}");
        err
    }

    fn no_sigs() -> EdgeLimits {
        EdgeLimits { require_signatures: false, ..EdgeLimits::default() }
    }

    #[track_caller]
    fn check_plain(env: &Envelope, recipient: Option<AgentId>) -> Result<Envelope, Refusal> {
        decode(&encode(env), NOW, recipient, &no_sigs())
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in Kind::ALL {
            let env = sample(kind);
            assert_eq!(env.kind(), kind);
            let to = env.to.agent();
            assert_eq!(decode_env(&env, to).unwrap(), env, "{kind}");
            assert_eq!(decode_env(&env, None).unwrap(), env, "{kind}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        for kind in Kind::ALL {
            let env = plain(kind);
            let mut raw = serde_json::to_value(&env).unwrap();
            raw["x_future_field"] = json!({ "nested": [1, 2, 3] });
            raw["body"]["x_future_body_field"] = json!("hello");
            if let Some(task) = raw["body"].get_mut("task") {
                task["x_future_task_field"] = json!(1);
            }
            assert_eq!(decode_json(&raw, &no_sigs()).unwrap(), env, "{kind}");
        }
        // Signed with the unknown fields in place, the message still verifies.
        let mut raw = serde_json::to_value(plain(Kind::Propose)).unwrap();
        raw["x_future_field"] = json!(true);
        raw["nonce"] = json!(Nonce([3; 16]).to_string());
        contractor().sign_value(&mut raw).unwrap();
        decode_json(&raw, &limits()).unwrap();
    }

    #[test]
    fn newer_minor_versions_are_accepted() {
        let mut raw = serde_json::to_value(plain(Kind::Cfp)).unwrap();
        raw["aixp"] = json!("1.7");
        assert_eq!(decode_json(&raw, &limits()).unwrap().aixp, Version { major: 1, minor: 7 });
    }

    #[test]
    fn size_is_checked_first() {
        let bytes = encode(&sample(Kind::Cfp));
        let tight = EdgeLimits { max_bytes: bytes.len() - 1, ..limits() };
        refused(decode(&bytes, NOW, None, &tight), Code::TooLarge);
        let exact = EdgeLimits { max_bytes: bytes.len(), ..limits() };
        decode(&bytes, NOW, None, &exact).unwrap();
        refused(decode(&[b' '; 300_000], NOW, None, &limits()), Code::TooLarge);
    }

    #[test]
    fn not_json_or_not_an_object_is_malformed() {
        for bytes in [&b"{\"aixp\": \"1.0\","[..], b"", b"\xff\xfe", b"[1, 2]", b"\"aixp\"", b"null"] {
            refused(decode(bytes, NOW, None, &limits()), Code::Malformed);
        }
    }

    #[test]
    fn versions() {
        let base = serde_json::to_value(plain(Kind::Cfp)).unwrap();
        let with = |v: Option<Value>| {
            let mut raw = base.clone();
            match v {
                Some(v) => raw["aixp"] = v,
                None => {
                    raw.as_object_mut().unwrap().remove("aixp");
                }
            }
            decode_json(&raw, &limits())
        };
        let err = refused(with(Some(json!("2.0"))), Code::Incompatible);
        assert_eq!(err.reason, "unsupported version 2.0; supported: 1.0");
        refused(with(Some(json!("0.9"))), Code::Incompatible);
        let err = refused(with(None), Code::Incompatible);
        assert!(err.reason.contains("supported: 1.0"), "{err}");
        refused(with(Some(Value::Null)), Code::Incompatible);
        for bad in [
            json!(1),
            json!(1.0),
            json!("1"),
            json!("1.x"),
            json!("+1.0"),
            json!("v1.0"),
            json!(""),
            json!(["1.0"]),
        ] {
            refused(with(Some(bad)), Code::Malformed);
        }
    }

    #[test]
    fn typed_parse_failures_are_schema_invalid() {
        let base = serde_json::to_value(plain(Kind::Propose)).unwrap();
        let cases: [(&str, Option<Value>); 9] = [
            ("kind", Some(json!("gossip"))),
            ("hops", None),
            ("hops", Some(json!("1"))),
            ("hops", Some(json!(256))),
            ("from", Some(json!("nobody"))),
            ("to", Some(json!("pool.global"))),
            ("id", Some(json!("not-a-uuid"))),
            ("body", Some(json!({ "price": "cheap", "eta_ms": 1, "load": 0 }))),
            ("body", None),
        ];
        for (field, value) in cases {
            let mut raw = base.clone();
            match value {
                Some(v) => raw[field] = v,
                None => {
                    raw.as_object_mut().unwrap().remove(field);
                }
            }
            let err = refused(decode_json(&raw, &no_sigs()), Code::SchemaInvalid);
            assert!(err.reason.starts_with("invalid envelope: "), "{err}");
        }
        let mut raw = base;
        raw["kind"] = json!("gossip");
        let err = refused(decode_json(&raw, &no_sigs()), Code::SchemaInvalid);
        assert!(err.reason.contains("unknown variant `gossip`"), "{err}");
    }

    #[test]
    fn expiry_and_ttl() {
        let mut env = plain(Kind::Cfp);
        env.expires_at = NOW;
        refused(check_plain(&env, None), Code::Expired);
        env.expires_at = NOW - 1;
        refused(check_plain(&env, None), Code::Expired);
        env.reply_by = None;
        env.expires_at = NOW + limits().max_ttl_ms;
        check_plain(&env, None).unwrap();
        env.expires_at += 1;
        refused(check_plain(&env, None), Code::TtlTooLong);
        let mut env = plain(Kind::Cfp);
        env.reply_by = Some(env.expires_at + 1);
        refused(check_plain(&env, None), Code::SchemaInvalid);
        env.reply_by = Some(env.expires_at);
        check_plain(&env, None).unwrap();
    }

    #[test]
    fn hop_limits() {
        let mut env = plain(Kind::Cfp);
        env.hops = 9;
        refused(check_plain(&env, None), Code::HopLimit);
        let mut env = plain(Kind::Cfp);
        env.max_hops = 17;
        refused(check_plain(&env, None), Code::HopLimit);
        env.max_hops = 16;
        check_plain(&env, None).unwrap();
        let mut env = plain(Kind::Cfp);
        env.hops = 3;
        env.lineage = (1..=3).map(|i| AgentId::from_index(7, i)).collect();
        let short = EdgeLimits { max_lineage: 2, ..no_sigs() };
        refused(decode(&encode(&env), NOW, None, &short), Code::HopLimit);
        check_plain(&env, None).unwrap();
    }

    #[test]
    fn task_kinds_need_depth_and_conversation() {
        for kind in Kind::ALL {
            let mut env = plain(kind);
            env.hops = 0;
            env.lineage = Arc::from(vec![]);
            if kind.is_task_kind() {
                refused(check_plain(&env, None), Code::SchemaInvalid);
            } else {
                check_plain(&env, None).unwrap();
            }
            let mut env = plain(kind);
            env.conversation = None;
            if kind.is_task_kind() {
                let err = refused(check_plain(&env, None), Code::SchemaInvalid);
                assert!(err.reason.contains("conversation"), "{err}");
            } else {
                check_plain(&env, None).unwrap();
            }
        }
    }

    #[test]
    fn lineage_cycles_are_loops() {
        let (m, c) = (manager().id(), contractor().id());
        let mut env = plain(Kind::Cfp);
        env.hops = 3;
        env.lineage = Arc::from(vec![m, c, m]);
        refused(check_plain(&env, None), Code::LoopDetected);

        // A call for proposals or an award must not reach a manager above the task.
        for kind in [Kind::Cfp, Kind::Accept] {
            let mut env = plain(kind);
            env.to = Recipient::Pool { pool: "global".into(), capability: "word-count".into() };
            env.hops = 2;
            env.lineage = Arc::from(vec![c, m]);
            refused(check_plain(&env, Some(c)), Code::LoopDetected);
            check_plain(&env, Some(AgentId::from_index(1, 1))).unwrap();
            check_plain(&env, None).unwrap();
        }
        // A bid to the manager named in the lineage is the normal case.
        let env = plain(Kind::Propose);
        assert!(env.lineage.contains(&m));
        check_plain(&env, Some(m)).unwrap();

        let mut env = plain(Kind::Cfp);
        env.lineage = Arc::from(vec![m, c]);
        let err = refused(check_plain(&env, None), Code::SchemaInvalid);
        assert!(err.reason.contains("longer than hops"), "{err}");
    }

    #[test]
    fn names_are_checked_in_tasks() {
        for kind in [Kind::Cfp, Kind::Accept] {
            for (capability, pool) in [("word count", "global"), ("", "global"), ("ok", "a.b"), ("ok", "*")] {
                let mut env = plain(kind);
                let mut task = TaskSpec::new(capability, Value::Null);
                task.pool = pool.into();
                match &mut env.body {
                    Body::Cfp(b) => b.task = Arc::new(task),
                    Body::Accept(b) => b.task = Arc::new(task),
                    _ => unreachable!(),
                }
                refused(check_plain(&env, None), Code::SchemaInvalid);
            }
        }
        let mut env = plain(Kind::Cfp);
        let Body::Cfp(b) = &mut env.body else { unreachable!() };
        b.task = Arc::new(TaskSpec::new(&"x".repeat(65), Value::Null));
        refused(check_plain(&env, None), Code::SchemaInvalid);
    }

    #[test]
    fn redirected_messages_are_forbidden() {
        let env = plain(Kind::Accept);
        let err = refused(check_plain(&env, Some(manager().id())), Code::Forbidden);
        assert!(err.reason.contains("addressed to"), "{err}");
        check_plain(&env, Some(contractor().id())).unwrap();
        // A pool subject reaches every subscriber.
        check_plain(&plain(Kind::Cfp), Some(AgentId::from_index(3, 3))).unwrap();
    }

    #[test]
    fn obligations_must_be_signed() {
        for kind in Kind::ALL {
            let env = plain(kind);
            if kind.must_be_signed() {
                refused(decode_env(&env, None), Code::SignatureMissing);
            } else {
                decode_env(&env, None).unwrap();
            }
            // Without the requirement nothing is verified.
            let mut env = sample(kind);
            env.epoch += 1;
            check_plain(&env, None).unwrap();
        }
    }

    #[test]
    fn bad_signatures_are_invalid() {
        let mut env = sample(Kind::Accept);
        env.epoch = 2;
        refused(decode_env(&env, None), Code::SignatureInvalid);

        let mut raw = serde_json::to_value(sample(Kind::Inform)).unwrap();
        raw["x_added_in_transit"] = json!(1);
        refused(decode_json(&raw, &limits()), Code::SignatureInvalid);

        // A signature on a kind that need not be signed is still verified when present.
        let mut env = plain(Kind::Cfp);
        manager().sign(&mut env, Nonce([5; 16]));
        decode_env(&env, None).unwrap();
        env.reply_by = Some(NOW + 1);
        refused(decode_env(&env, None), Code::SignatureInvalid);

        // Signed by someone else than `from`.
        let mut env = plain(Kind::Cancel);
        contractor().sign(&mut env, Nonce([5; 16]));
        env.from = manager().id();
        refused(decode_env(&env, None), Code::SignatureInvalid);
    }

    #[test]
    fn checks_run_in_order() {
        // Expired and unsigned and looping: the expiry is reported.
        let mut env = plain(Kind::Accept);
        env.expires_at = NOW;
        env.hops = 9;
        env.lineage = Arc::from(vec![manager().id(), manager().id()]);
        refused(decode_env(&env, None), Code::Expired);
        env.expires_at = NOW + 1;
        refused(decode_env(&env, None), Code::HopLimit);
        env.hops = 2;
        refused(decode_env(&env, None), Code::LoopDetected);
        // A redirected award is forbidden, even to a manager in the lineage.
        refused(decode_env(&env, Some(manager().id())), Code::Forbidden);
        refused(decode_env(&env, Some(contractor().id())), Code::LoopDetected);
        env.lineage = Arc::from(vec![manager().id()]);
        refused(decode_env(&env, Some(contractor().id())), Code::SignatureMissing);
    }

    #[test]
    fn error_replies() {
        let incompatible = Refusal::new(Code::Incompatible, "unsupported version 2.0; supported: 1.0");
        let body = error_body(&incompatible);
        assert_eq!(body.supported, Some(vec!["1.0".to_owned()]));
        assert_eq!(error_body(&Refusal::new(Code::Expired, "late")).supported, None);

        let received = serde_json::to_value(sample(Kind::Propose)).unwrap();
        let me = manager().id();
        let id = MsgId::new_v7(NOW, [6; 10]);
        let reply = error_reply(&incompatible, me, &received, id, NOW, 30_000).unwrap();
        assert_eq!(reply.to, Recipient::Agent(contractor().id()));
        assert_eq!(reply.from, me);
        assert_eq!(reply.in_reply_to, Some(sample(Kind::Propose).id));
        assert_eq!(reply.conversation, Some(task_id()));
        assert_eq!(reply.epoch, 1);
        assert_eq!(reply.body, Body::Error(body));
        // The reply passes the checks at the other end.
        let back = decode(&encode(&reply), NOW, Some(contractor().id()), &limits()).unwrap();
        assert_eq!(back, reply);

        // Replies to what could hardly be read still work.
        let reply =
            error_reply(&incompatible, me, &json!({ "from": contractor().id().to_string() }), id, NOW, 1)
                .unwrap();
        assert_eq!((reply.conversation, reply.in_reply_to), (None, None));
        decode(&encode(&reply), NOW, None, &limits()).unwrap();

        // Nobody to answer, or an error: no reply.
        assert!(error_reply(&incompatible, me, &json!({ "id": "x" }), id, NOW, 1).is_none());
        let error = serde_json::to_value(sample(Kind::Error)).unwrap();
        assert!(error_reply(&incompatible, me, &error, id, NOW, 1).is_none());
    }
}
