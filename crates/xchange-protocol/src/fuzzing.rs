//! The logic of the `envelope` fuzz target, shared by `fuzz/fuzz_targets/envelope.rs`
//! (cargo-fuzz) and the corpus replay in `tests/fuzz_corpus.rs`. Behind the `fuzzing`
//! feature; not part of the crate's API.
//!
//! [`envelope`] feeds bytes to the edge ([`decode`]) and to every step behind it, and
//! panics when a property does not hold. A malformed message must be refused with a code,
//! never panic; beyond that it checks:
//!
//! - [`decode`]'s fast path (typed parse first) gives the same verdict, envelope or
//!   refusal, as the documented steps one by one ([`read_value`], [`parse_envelope`],
//!   [`check`]), with and without signatures required and with a recipient;
//! - a decoded envelope re-encodes ([`encode`]) and decodes to the same value;
//! - signature verification ([`verify_value`]) of anything that is a JSON object;
//! - the RFC 8785 canonical form ([`signed_bytes`]) parses and is a fixed point;
//! - an envelope signed with a fixed key verifies, typed and after a trip through its wire
//!   form, and so does a raw object signed with [`AgentKey::sign_value`];
//! - an [`error_reply`] to the input, when there is one, passes the edge checks.

use serde_json::Value;

use crate::{
    AgentKey, Code, EdgeLimits, Envelope, MsgId, Nonce, Refusal, UnixMs, check, decode, encode, error_reply,
    parse_envelope, read_value, signed_bytes, verify_envelope, verify_value,
};

/// The time every input is checked at: 2026-01-01T00:00:00Z, the `now` of the test vectors
/// (`interop/vectors/aixp-v1.json`) and of docs/protocol.md.
pub const NOW: UnixMs = 1_767_225_600_000;

/// The receiving agent: the test key `M` (seed of byte 1).
fn receiver() -> AgentKey {
    AgentKey::from_seed([1; 32])
}

/// The key that re-signs decoded envelopes: the test key `C` (seed of byte 2).
fn signer() -> AgentKey {
    AgentKey::from_seed([2; 32])
}

/// Runs one input through the edge and the signature code; panics on a broken property.
pub fn envelope(bytes: &[u8]) {
    let strict = EdgeLimits::default();
    let lax = EdgeLimits { require_signatures: false, ..EdgeLimits::default() };
    let me = receiver().id();
    let mut first_refusal = None;
    for (limits, recipient) in [(&strict, None), (&lax, None), (&strict, Some(me))] {
        let fast = decode(bytes, NOW, recipient, limits);
        let stepwise = read_value(bytes, limits).and_then(|raw| {
            let env = parse_envelope(&raw)?;
            check(&env, &raw, NOW, recipient, limits)?;
            Ok(env)
        });
        assert_eq!(fast, stepwise, "decode disagrees with its steps (recipient {recipient:?})");
        match fast {
            Ok(env) => round_trip(&env),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }

    // Whatever JSON arrived, an edge may answer it with an error message.
    if let Ok(any) = serde_json::from_slice::<Value>(bytes) {
        let refusal = first_refusal.unwrap_or_else(|| Refusal::new(Code::Internal, "fuzz"));
        let id = MsgId::new_v7(NOW, [0; 10]);
        if let Some(reply) = error_reply(&refusal, me, &any, id, NOW, 30_000)
            && let Err(e) = decode(&encode(&reply), NOW, None, &strict)
        {
            panic!("an error reply is refused by the edge: {e}");
        }
    }

    let unlimited = EdgeLimits { max_bytes: usize::MAX, ..lax };
    let Ok(raw) = read_value(bytes, &unlimited) else { return };
    // Any verdict will do; it must not panic.
    let _ = verify_value(&raw);
    let Value::Object(map) = &raw else { unreachable!("read_value answers objects only") };
    canonical_fixed_point(map);
    if let Ok(env) = parse_envelope(&raw) {
        round_trip(&env);
        sign_and_verify(env);
    }
    if map.get("nonce").is_some_and(|n| !n.is_null()) {
        let mut signed = raw.clone();
        signer().sign_value(&mut signed).expect("an object with a nonce can be signed");
        verify_value(&signed).expect("a freshly signed object verifies");
        let wire = serde_json::to_vec(&signed).expect("a value serializes");
        let back: Value = serde_json::from_slice(&wire).expect("serialized json parses");
        verify_value(&back).expect("a signed object verifies after a trip through its text");
    }
}

/// A decoded envelope encodes, and the encoding decodes to the same envelope, typed and
/// through the generic value the edge reads.
fn round_trip(env: &Envelope) {
    let bytes = encode(env);
    let typed: Envelope = serde_json::from_slice(&bytes).expect("an encoded envelope parses");
    assert_eq!(&typed, env, "typed round trip");
    let unlimited = EdgeLimits { max_bytes: usize::MAX, ..EdgeLimits::default() };
    let raw = read_value(&bytes, &unlimited).expect("an encoded envelope reads as a value");
    let generic = parse_envelope(&raw).expect("an encoded envelope parses from its value");
    assert_eq!(&generic, env, "round trip through the generic value");
}

/// The canonical form parses, and canonicalizing it again gives the same bytes.
fn canonical_fixed_point(map: &serde_json::Map<String, Value>) {
    let Ok(canonical) = signed_bytes(map) else { return };
    let again: Value = serde_json::from_slice(&canonical).expect("the canonical form is json");
    let Value::Object(again) = again else { panic!("the canonical form of an object is not an object") };
    let twice = signed_bytes(&again).expect("a canonical form can be canonicalized");
    assert!(canonical == twice, "the canonical form is not a fixed point");
}

/// Signed with a fixed key, an envelope verifies as it is and after a trip through its wire
/// form, and the edge never refuses it for its signature.
fn sign_and_verify(mut env: Envelope) {
    signer().sign(&mut env, Nonce([7; 16]));
    verify_envelope(&env).expect("a freshly signed envelope verifies");
    let bytes = encode(&env);
    let raw: Value = serde_json::from_slice(&bytes).expect("an encoded envelope parses");
    verify_value(&raw).expect("a signed envelope verifies after a trip through its wire form");
    let strict = EdgeLimits { max_bytes: usize::MAX, ..EdgeLimits::default() };
    if let Err(e) = decode(&bytes, NOW, None, &strict) {
        assert!(
            !matches!(e.code, Code::SignatureInvalid | Code::SignatureMissing),
            "a freshly signed envelope is refused for its signature: {e}"
        );
    }
}
