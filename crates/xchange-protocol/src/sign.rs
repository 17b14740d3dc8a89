//! Ed25519 signatures over the RFC 8785 (JCS) canonical form of a message.
//!
//! A signature covers every member of the envelope object except `sig` itself, exactly as
//! the object was received, unknown fields included: recipient (`to`), expiry
//! (`expires_at`), nonce, body and everything else are bound. The verifier takes the
//! sender's public key from the `from` field (an agent id *is* its public key), so no key
//! lookup is needed.
//!
//! Numbers: JCS writes every number as an IEEE double. Wire integers are millisecond
//! timestamps, counters and prices, far below 2^53 in practice; an integer above 2^53
//! (for example `u64::MAX` in an unlimited budget) is signed in its rounded double form,
//! so the signature binds it only to that precision.
//!
//! This module never draws randomness: keys come from 32 seed bytes and nonces from the
//! caller.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::code::{Code, Refusal};
use crate::envelope::Envelope;
use crate::ids::{AgentId, Nonce, Sig};

/// Why a raw JSON value could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Only a JSON object can carry a signature.
    #[error("only a json object can be signed")]
    NotAnObject,
    /// A signed message must carry a nonce (replay protection).
    #[error("a signed message needs a nonce")]
    MissingNonce,
    /// The value has no RFC 8785 form.
    #[error("cannot canonicalize: {0}")]
    Canonical(#[from] serde_json::Error),
}

/// An agent's signing key: an Ed25519 key built from a 32-byte seed the caller supplies.
#[derive(Clone)]
pub struct AgentKey {
    key: SigningKey,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "AgentKey({})", self.id())
    }
}

impl AgentKey {
    /// The key derived from a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// The secret seed, for deriving other credentials from the same key (the agent's
    /// NATS nkey). Keep it secret.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The agent id: the 32 bytes of the public key.
    pub fn id(&self) -> AgentId {
        AgentId(self.key.verifying_key().to_bytes())
    }

    /// Signs `env` as its sender.
    ///
    /// Sets `from` to this key's id, `nonce` to `nonce`, clears `sig`, then signs the
    /// canonical form of the envelope's JSON without `sig` and stores the signature in `sig`.
    pub fn sign(&self, env: &mut Envelope, nonce: Nonce) {
        env.from = self.id();
        env.nonce = Some(nonce);
        env.sig = None;
        let value = serde_json::to_value(&*env).expect("an envelope always serializes to json");
        let Value::Object(map) = value else { unreachable!("an envelope serializes to an object") };
        let bytes = signed_bytes(&map).expect("a json value always has a canonical form");
        env.sig = Some(Sig(self.key.sign(&bytes).to_bytes()));
    }

    /// Signs a raw JSON object (which may hold fields this crate does not know).
    ///
    /// Sets `from` to this key's id and replaces any `sig`. The object must already carry a
    /// `nonce`.
    pub fn sign_value(&self, v: &mut Value) -> Result<(), SignError> {
        let Value::Object(map) = v else { return Err(SignError::NotAnObject) };
        if map.get("nonce").is_none_or(Value::is_null) {
            return Err(SignError::MissingNonce);
        }
        map.insert("from".into(), Value::String(self.id().to_string()));
        let bytes = signed_bytes(map)?;
        let sig = Sig(self.key.sign(&bytes).to_bytes());
        map.insert("sig".into(), serde_json::to_value(sig)?);
        Ok(())
    }
}

/// The bytes a signature covers: the RFC 8785 canonical form of `obj` without its `sig`
/// member.
pub fn signed_bytes(obj: &Map<String, Value>) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(&WithoutSig(obj))
}

/// Serializes an object without its `sig` member, without copying it.
struct WithoutSig<'a>(&'a Map<String, Value>);

impl Serialize for WithoutSig<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = self.0.len() - usize::from(self.0.contains_key("sig"));
        let mut map = s.serialize_map(Some(len))?;
        for (k, v) in self.0.iter().filter(|(k, _)| k.as_str() != "sig") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn invalid(reason: impl Into<String>) -> Refusal {
    Refusal::new(Code::SignatureInvalid, reason)
}

/// Checks the signature of a message as received: `raw` is the whole received JSON object,
/// unknown fields included.
///
/// Refuses with [`Code::SignatureMissing`] when there is no `sig` (or it is `null`), and
/// with [`Code::SignatureInvalid`] when the signature is undecodable, the message has no
/// nonce, `from` is not a usable Ed25519 public key, or the signature does not verify.
pub fn verify_value(raw: &Value) -> Result<(), Refusal> {
    let Value::Object(map) = raw else { return Err(invalid("message is not a json object")) };
    let sig = match map.get("sig") {
        None | Some(Value::Null) => {
            return Err(Refusal::new(Code::SignatureMissing, "message has no signature"));
        }
        Some(Value::String(s)) => data_encoding::BASE64URL_NOPAD
            .decode(s.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| invalid("signature is not 64 bytes in base64url without padding"))?,
        Some(_) => return Err(invalid("signature is not a string")),
    };
    if map.get("nonce").is_none_or(Value::is_null) {
        return Err(invalid("signed message has no nonce"));
    }
    let from = map
        .get("from")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<AgentId>().ok())
        .ok_or_else(|| invalid("sender id is missing or not an agent id"))?;
    let key = VerifyingKey::from_bytes(from.as_bytes())
        .map_err(|_| invalid("sender id is not an ed25519 public key"))?;
    let bytes = signed_bytes(map).map_err(|e| invalid(format!("message has no canonical form: {e}")))?;
    key.verify_strict(&bytes, &Signature::from_bytes(&sig))
        .map_err(|_| invalid("signature does not verify against the sender's key"))
}

/// Checks the signature of an envelope built or decoded in this process (it is serialized,
/// then checked like [`verify_value`]). Fields this crate does not know are not part of an
/// [`Envelope`], so a message signed with unknown fields must be checked with
/// [`verify_value`] on the received JSON instead.
pub fn verify_envelope(env: &Envelope) -> Result<(), Refusal> {
    let value = serde_json::to_value(env).expect("an envelope always serializes to json");
    verify_value(&value)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::envelope::{Body, CodeBody, ProposeBody, Recipient, Version};
    use crate::ids::{MsgId, TaskId};
    use crate::task::Budget;
    use crate::{AcceptBody, TaskSpec};

    fn key(n: u8) -> AgentKey {
        AgentKey::from_seed([n; 32])
    }

    fn propose(from: &AgentKey, to: &AgentKey) -> Envelope {
        Envelope {
            aixp: Version::V1_0,
            id: MsgId::new_v7(1_767_225_600_000, [1; 10]),
            body: Body::Propose(ProposeBody { price: 12, eta_ms: 3_000, load: 0.25 }),
            from: from.id(),
            to: Recipient::Agent(to.id()),
            conversation: Some(TaskId::new_v7(1_767_225_500_000, [2; 10])),
            epoch: 0,
            in_reply_to: Some(MsgId::new_v7(1_767_225_590_000, [3; 10])),
            reply_by: None,
            expires_at: 1_767_225_660_000,
            hops: 1,
            max_hops: 8,
            lineage: Arc::from(vec![to.id()]),
            nonce: None,
            sig: None,
        }
    }

    fn signed() -> (Envelope, Value) {
        let (c, m) = (key(2), key(1));
        let mut env = propose(&c, &m);
        c.sign(&mut env, Nonce([7; 16]));
        let raw = serde_json::to_value(&env).unwrap();
        (env, raw)
    }

    #[test]
    fn signed_envelope_verifies_and_sets_sender_and_nonce() {
        let (env, raw) = signed();
        assert_eq!(env.from, key(2).id());
        assert_eq!(env.nonce, Some(Nonce([7; 16])));
        assert!(env.sig.is_some());
        verify_envelope(&env).unwrap();
        verify_value(&raw).unwrap();
        // Signing is deterministic (Ed25519) and ignores a stale signature.
        let mut again = env.clone();
        again.sig = Some(Sig([0; 64]));
        key(2).sign(&mut again, Nonce([7; 16]));
        assert_eq!(again, env);
    }

    #[test]
    fn agent_id_is_the_public_key() {
        let k = key(9);
        assert_eq!(k.id().0, k.key.verifying_key().to_bytes());
        assert!(format!("{k:?}").starts_with("AgentKey("));
        assert_ne!(key(1).id(), key(2).id());
    }

    fn assert_invalid(raw: &Value, what: &str) {
        let err = verify_value(raw).expect_err(what);
        assert_eq!(err.code, Code::SignatureInvalid, "{what}: {err}");
    }

    #[test]
    fn every_field_is_bound() {
        let (_, raw) = signed();
        let changes: [(&str, Value); 8] = [
            ("to", json!(key(3).id().to_string())),
            ("expires_at", json!(1_767_225_660_001_u64)),
            ("nonce", json!(Nonce([8; 16]).to_string())),
            ("body", json!({ "price": 11, "eta_ms": 3000, "load": 0.25 })),
            ("kind", json!("refuse")),
            ("epoch", json!(1)),
            ("hops", json!(2)),
            ("lineage", json!([])),
        ];
        for (field, value) in changes {
            let mut tampered = raw.clone();
            tampered[field] = value;
            assert_invalid(&tampered, field);
        }
        let mut added = raw.clone();
        added["x_unknown"] = json!(true);
        assert_invalid(&added, "unknown field added after signing");
        let mut removed = raw.clone();
        removed.as_object_mut().unwrap().remove("in_reply_to");
        assert_invalid(&removed, "field removed after signing");
        let mut nested = raw;
        nested["body"]["extra"] = json!(1);
        assert_invalid(&nested, "unknown body field added after signing");
    }

    #[test]
    fn unknown_fields_present_at_signing_verify() {
        let (env, _) = signed();
        let mut raw = serde_json::to_value(&env).unwrap();
        raw["x_future"] = json!({ "b": [1, 2.5, "x"], "a": null });
        raw["body"]["x_hint"] = json!("fast");
        key(2).sign_value(&mut raw).unwrap();
        verify_value(&raw).unwrap();
        // The typed envelope drops unknown fields, so it no longer matches the signature.
        let typed: Envelope = serde_json::from_value(raw).unwrap();
        assert_eq!(verify_envelope(&typed).unwrap_err().code, Code::SignatureInvalid);
    }

    #[test]
    fn member_order_and_whitespace_do_not_matter() {
        let (env, _) = signed();
        let text = serde_json::to_string_pretty(&env).unwrap();
        // Reverse the top-level members by re-emitting them by hand.
        let raw: Value = serde_json::from_str(&text).unwrap();
        let map = raw.as_object().unwrap();
        let reversed =
            map.iter().rev().map(|(k, v)| format!("{}: {}", json!(k), v)).collect::<Vec<_>>().join(",\n  ");
        let reparsed: Value = serde_json::from_str(&format!("{{ {reversed} }}")).unwrap();
        verify_value(&reparsed).unwrap();
    }

    #[test]
    fn missing_and_malformed_signatures_are_refused() {
        let (_, raw) = signed();
        let mut unsigned = raw.clone();
        unsigned.as_object_mut().unwrap().remove("sig");
        assert_eq!(verify_value(&unsigned).unwrap_err().code, Code::SignatureMissing);
        let mut null = raw.clone();
        null["sig"] = Value::Null;
        assert_eq!(verify_value(&null).unwrap_err().code, Code::SignatureMissing);

        for bad in [json!(12), json!("not base64!"), json!("AAAA"), json!("A".repeat(86) + "=")] {
            let mut v = raw.clone();
            v["sig"] = bad.clone();
            assert_invalid(&v, &format!("sig {bad}"));
        }
        let mut zero = raw.clone();
        zero["sig"] = serde_json::to_value(Sig([0; 64])).unwrap();
        assert_invalid(&zero, "all-zero signature");

        let mut no_nonce = raw.clone();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        let err = verify_value(&no_nonce).unwrap_err();
        assert_eq!(err.code, Code::SignatureInvalid);
        assert!(err.reason.contains("nonce"), "{err}");

        let mut other_sender = raw.clone();
        other_sender["from"] = json!(key(1).id().to_string());
        assert_invalid(&other_sender, "another sender's key");
        let mut garbage_sender = raw;
        garbage_sender["from"] = json!("nobody");
        assert_invalid(&garbage_sender, "undecodable sender");
        assert_invalid(&json!([1, 2]), "not an object");
    }

    #[test]
    fn sign_value_requires_an_object_with_a_nonce() {
        let k = key(4);
        assert!(matches!(k.sign_value(&mut json!("x")), Err(SignError::NotAnObject)));
        assert!(matches!(k.sign_value(&mut json!({ "a": 1 })), Err(SignError::MissingNonce)));
        let mut v = json!({ "nonce": "x", "a": 1, "sig": "stale" });
        k.sign_value(&mut v).unwrap();
        assert_eq!(v["from"], json!(k.id().to_string()));
        verify_value(&v).unwrap();
    }

    #[test]
    fn large_values_round_trip_through_the_wire() {
        let (m, c) = (key(1), key(2));
        let mut env = propose(&m, &c);
        let mut task = TaskSpec::new("word-count", json!({ "big": u64::MAX, "neg": i64::MIN, "f": 1e300 }));
        task.deadline = Some((1 << 53) - 1);
        task.max_price = Some(u64::MAX);
        task.priority = i64::MIN;
        env.body = Body::Accept(AcceptBody {
            task: Arc::new(task),
            budget: Budget::UNLIMITED,
            price: u64::MAX,
            lease_ms: u64::MAX,
            provisional: None,
        });
        env.expires_at = (1 << 53) - 1;
        env.reply_by = Some((1 << 53) - 2);
        env.epoch = u32::MAX;
        env.hops = u8::MAX;
        env.max_hops = u8::MAX;
        m.sign(&mut env, Nonce([0xff; 16]));
        let bytes = serde_json::to_vec(&env).unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        verify_value(&raw).unwrap();
        let back: Envelope = serde_json::from_value(raw).unwrap();
        assert_eq!(back, env);
        verify_envelope(&back).unwrap();
    }

    #[test]
    fn code_bodies_sign_too() {
        let m = key(1);
        let mut env = propose(&m, &key(2));
        env.body = Body::Cancel(CodeBody {
            code: Code::Cancelled,
            reason: "job withdrawn — “quotes” é".into(),
        });
        m.sign(&mut env, Nonce([1; 16]));
        verify_envelope(&env).unwrap();
    }
}
