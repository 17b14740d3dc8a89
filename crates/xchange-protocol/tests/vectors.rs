//! Signed test vectors for other implementations: `interop/vectors/aixp-v1.json`.
//!
//! Builds one envelope of each kind that must be signed (and a few more), signed with the
//! documented test keys at fixed times, ids and nonces, plus tampered copies, and checks
//! that the committed file is exactly what this code produces. Every case's verdict comes
//! from this crate's edge checks (`decode`, signatures required), and the test asserts that
//! the verdict is the one the case was built to show.
//!
//! Regenerate after an intended change with
//! `XCHANGE_UPDATE_VECTORS=1 cargo test -p xchange-protocol --test vectors`.
//!
//! The interoperability test in `interop/python` verifies every case with an independent
//! implementation (its own RFC 8785 canonicalizer and Ed25519 library).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use xchange_protocol::{
    AcceptBody, AgentId, AgentKey, Body, Budget, CfpBody, Code, CodeBody, EdgeLimits, Envelope, FailureBody,
    InformBody, Kind, MsgId, Nonce, ProposeBody, Provisional, Recipient, TaskId, TaskSpec, UnixMs, Version,
    decode, encode, signed_bytes, verify_value,
};

/// The `now` every case is checked at: 2026-01-01T00:00:00Z, as in docs/protocol.md.
const NOW: UnixMs = 1_767_225_600_000;
/// `expires_at` of every case: one minute after `NOW`.
const EXPIRES: UnixMs = 1_767_225_660_000;

const UPDATE_VAR: &str = "XCHANGE_UPDATE_VECTORS";

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/vectors/aixp-v1.json")
}

/// The documented test keys: seeds of one repeated byte.
const KEYS: [(&str, u8); 4] = [("M", 1), ("C", 2), ("D", 3), ("E", 4)];

fn key(seed: u8) -> AgentKey {
    AgentKey::from_seed([seed; 32])
}

fn m() -> AgentKey {
    key(1)
}
fn c() -> AgentKey {
    key(2)
}
fn d() -> AgentKey {
    key(3)
}

fn msg(text: &str) -> MsgId {
    text.parse().expect("a uuid")
}

fn nonce(byte: u8) -> Nonce {
    Nonce([byte; 16])
}

/// The task of the example conversation (as in docs/protocol.md).
fn conversation() -> TaskId {
    "019b76da-9478-7a5a-9a5a-5a5a5a5a5a5a".parse().expect("a uuid")
}
const CFP_ID: &str = "019b76da-a418-7101-8101-010101010101";
const PROPOSE_ID: &str = "019b76da-a60c-7202-8202-020202020202";
const ACCEPT_ID: &str = "019b76da-a800-7404-8404-040404040404";

fn task() -> TaskSpec {
    let mut task = TaskSpec::new("word-count", json!({ "text": "to be or not to be" }));
    task.deadline = Some(1_767_226_200_000);
    task.max_price = Some(20);
    task.priority = 5;
    task
}

fn budget() -> Budget {
    Budget { subtasks: 4, messages: 200, retries: 3, price: 100 }
}

/// An envelope of the example conversation at depth 1 under manager M.
fn envelope(id: &str, body: Body, from: &AgentKey, to: Recipient, epoch: u32) -> Envelope {
    Envelope {
        aixp: Version::V1_0,
        id: msg(id),
        body,
        from: from.id(),
        to,
        conversation: Some(conversation()),
        epoch,
        in_reply_to: None,
        reply_by: None,
        expires_at: EXPIRES,
        hops: 1,
        max_hops: 8,
        lineage: Arc::from(vec![m().id()]),
        nonce: None,
        sig: None,
    }
}

fn to(k: &AgentKey) -> Recipient {
    Recipient::Agent(k.id())
}

fn cfp() -> Envelope {
    let mut env = envelope(
        CFP_ID,
        Body::Cfp(CfpBody { task: Arc::new(task()), budget: budget(), late: false }),
        &m(),
        Recipient::Pool { pool: "global".into(), capability: "word-count".into() },
        0,
    );
    env.reply_by = Some(1_767_225_602_000);
    env
}

fn propose() -> Envelope {
    let mut env = envelope(
        PROPOSE_ID,
        Body::Propose(ProposeBody { price: 12, eta_ms: 1500, load: 0.5 }),
        &c(),
        to(&m()),
        0,
    );
    env.in_reply_to = Some(msg(CFP_ID));
    env.reply_by = Some(1_767_225_630_000);
    env
}

fn accept(provisional: Option<Provisional>) -> Envelope {
    let body = AcceptBody {
        task: Arc::new(task()),
        budget: Budget { subtasks: 2, messages: 100, retries: 1, price: 50 },
        price: 12,
        lease_ms: 30_000,
        provisional,
    };
    let mut env = envelope(ACCEPT_ID, Body::Accept(body), &m(), to(&c()), 1);
    env.in_reply_to = Some(msg(PROPOSE_ID));
    env.reply_by = Some(1_767_225_605_000);
    env
}

fn inform(result: Value) -> Envelope {
    let body = InformBody {
        result: Arc::new(result),
        spent: Budget { subtasks: 1, messages: 4, retries: 0, price: 5 },
    };
    let mut env = envelope("019b76da-f620-7a0a-8a0a-0a0a0a0a0a0a", Body::Inform(body), &c(), to(&m()), 1);
    env.in_reply_to = Some(msg(ACCEPT_ID));
    env
}

fn failure() -> Envelope {
    let body = FailureBody {
        code: Code::ExecutionFailed,
        reason: "tokenizer crashed".into(),
        retryable: true,
        started: true,
        spent: Budget::ZERO,
    };
    let mut env = envelope("019b76da-f620-7b0b-8b0b-0b0b0b0b0b0b", Body::Failure(body), &c(), to(&m()), 1);
    env.in_reply_to = Some(msg(ACCEPT_ID));
    env
}

fn cancel() -> Envelope {
    let body =
        CodeBody { code: Code::Cancelled, reason: "job withdrawn — “by its submitter” ✓".into() };
    envelope("019b76da-e298-7d0d-8d0d-0d0d0d0d0d0d", Body::Cancel(body), &m(), to(&c()), 1)
}

/// A result where RFC 8785 matters: number forms, escapes, non-ASCII text and member
/// names that sort differently by UTF-16 code units than by code points or UTF-8 bytes.
fn jcs_result() -> Value {
    json!({
        "numbers": [
            0, -0.0, 1.0, -1.5, 0.1, 0.30000000000000004, 1e21, 1e20, 1e-6, 1e-7, 123.456e5,
            4.5, 1e300, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308,
            333333333.3333333, 9_007_199_254_740_991_u64, 9_007_199_254_740_993_u64,
            123_456_789_012_345_678_u64, u64::MAX, i64::MIN
        ],
        "strings": [
            "plain", "é à ü", "日本語", "emoji 😀", "quote \" backslash \\ slash /",
            "controls \u{0} \u{1} \u{8} \t \n \u{b} \u{c} \r \u{1f} del \u{7f}",
            "separators \u{2028} \u{2029} bom \u{feff}", "<script>&'</script>"
        ],
        "sorting": {
            "\u{20ac}": "euro sign", "\r": "carriage return", "\u{fb33}": "hebrew dalet with dagesh",
            "1": "one", "\u{1f600}": "emoji (a surrogate pair in UTF-16)", "\u{80}": "control 0x80",
            "\u{f6}": "o with diaeresis", "A": "upper a", "a": "lower a", "aa": "double a", "": "empty"
        },
        "nested": { "z": [true, false, null, {}, []], "a": { "b": { "c": [[1], [2.0]] } } }
    })
}

/// One case of the file, in the order its members are written.
#[derive(Serialize)]
struct Case {
    name: String,
    note: String,
    valid: bool,
    expect_code: Option<u16>,
    public_key_hex: String,
    canonical: String,
    envelope: Value,
}

/// A message as a JSON value, the way it goes on the wire.
fn wire(env: &Envelope) -> Value {
    serde_json::from_slice(&encode(env)).expect("encode writes json")
}

fn signed(mut env: Envelope, signer: &AgentKey, nonce_byte: u8) -> Value {
    signer.sign(&mut env, nonce(nonce_byte));
    wire(&env)
}

fn set(mut raw: Value, member: &str, value: Value) -> Value {
    raw[member] = value;
    raw
}

fn remove(mut raw: Value, member: &str) -> Value {
    raw.as_object_mut().expect("an object").remove(member);
    raw
}

/// Every case: (name, note, envelope as sent, whether it must pass the edge checks).
fn cases() -> Vec<(&'static str, &'static str, Value, bool)> {
    let propose_signed = signed(propose(), &c(), 0x11);
    let accept_signed = signed(accept(None), &m(), 0x22);
    let inform_signed = signed(inform(json!({ "words": 6 })), &c(), 0x33);

    // The same accept, signed by D: a valid signature, but not by the key named in `from`.
    let by_d = signed(accept(None), &d(), 0x22);
    let accept_by_other_key = set(accept_signed.clone(), "sig", by_d["sig"].clone());

    // A base64url text of the right length whose last character has non-zero unused bits:
    // it decodes to the same 64 bytes only under a lax decoder.
    let sig = propose_signed["sig"].as_str().expect("a sig").to_owned();
    let last = sig.chars().last().expect("86 characters");
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = ALPHABET.find(last).expect("base64url");
    let lax = ALPHABET.chars().nth(index | 1).expect("in range");
    assert_ne!(lax, last, "the last character of a signature carries 4 zero bits");
    let noncanonical_sig = format!("{}{lax}", &sig[..sig.len() - 1]);

    let mut unknown = wire(&propose());
    unknown["x_trace_id"] = json!("4bf92f3577b34da6a3ce929d0e0e4736");
    unknown["body"]["x_currency"] = json!("EUR");
    unknown["nonce"] = json!(nonce(0x44).to_string());
    c().sign_value(&mut unknown).expect("an object with a nonce");

    let mut body_altered = propose_signed.clone();
    body_altered["body"]["price"] = json!(9);

    let mut member_added = propose_signed.clone();
    member_added["x_added"] = json!(true);

    vec![
        ("cfp-unsigned", "a cfp need not be signed", wire(&cfp()), true),
        (
            "cfp-signed",
            "any kind may be signed; a signature present is verified",
            signed(cfp(), &m(), 0x01),
            true,
        ),
        ("propose", "a bid, signed by contractor C", propose_signed.clone(), true),
        ("accept", "an award, signed by manager M", accept_signed.clone(), true),
        (
            "accept-provisional",
            "an award of an iterated auction: a float premium",
            signed(accept(Some(Provisional { premium: 0.1 + 0.2, settle_ms: 250 })), &m(), 0x23),
            true,
        ),
        ("inform", "a result report, signed by C", inform_signed.clone(), true),
        ("failure", "a failure report, signed by C", signed(failure(), &c(), 0x55), true),
        ("cancel", "a withdrawal, signed by M, with non-ASCII text", signed(cancel(), &m(), 0x66), true),
        (
            "inform-jcs-edge-values",
            "numbers, escapes, non-ASCII text and UTF-16 member order: only RFC 8785 gives these bytes",
            signed(inform(jcs_result()), &c(), 0x77),
            true,
        ),
        (
            "propose-unknown-members",
            "members this version does not know (top level and body) are signed and verified too",
            unknown,
            true,
        ),
        ("propose-body-altered", "the price was changed after signing", body_altered, false),
        (
            "propose-redirected",
            "`to` was changed to bidder D after signing",
            set(propose_signed.clone(), "to", json!(d().id().to_string())),
            false,
        ),
        (
            "inform-expiry-extended",
            "`expires_at` was moved one minute later after signing",
            set(inform_signed.clone(), "expires_at", json!(EXPIRES + 60_000)),
            false,
        ),
        (
            "accept-signed-by-another-key",
            "the signature is D's over the same message, but `from` names M",
            accept_by_other_key,
            false,
        ),
        ("propose-missing-sig", "a bid must be signed", remove(propose_signed.clone(), "sig"), false),
        ("inform-missing-nonce", "a signed message needs its nonce", remove(inform_signed, "nonce"), false),
        ("propose-member-added", "an unknown member was added after signing", member_added, false),
        (
            "propose-sig-noncanonical-base64",
            "the signature's last character has non-zero unused bits: not strict base64url, so the \
             typed envelope refuses it (5014) before the signature check",
            set(propose_signed, "sig", json!(noncanonical_sig)),
            false,
        ),
        (
            "cancel-unsigned",
            "a cancel must be signed",
            {
                let mut env = cancel();
                env.nonce = Some(nonce(0x66));
                wire(&env)
            },
            false,
        ),
    ]
}

fn build() -> String {
    let limits = EdgeLimits::default();
    let mut out = Vec::new();
    for (name, note, raw, should_pass) in cases() {
        let bytes = serde_json::to_vec(&raw).expect("json");
        let verdict = decode(&bytes, NOW, None, &limits);
        match (&verdict, should_pass) {
            (Ok(_), true) => {}
            // A `sig` that is not 64 bytes of strict base64url fails the typed envelope
            // (5014) before the signature check; every other invalid case is about the
            // signature itself.
            (Err(r), false) => assert!(
                matches!(r.code, Code::SignatureMissing | Code::SignatureInvalid)
                    || (r.code == Code::SchemaInvalid && name.contains("sig-")),
                "{name}: refused for another reason than its signature: {r}"
            ),
            (Ok(_), false) => panic!("{name}: the edge accepts a message it must refuse"),
            (Err(r), true) => panic!("{name}: the edge refuses a message it must accept: {r}"),
        }
        let kind: Kind = serde_json::from_value(raw["kind"].clone()).expect("a kind");
        if kind.must_be_signed() || raw.get("sig").is_some() {
            assert_eq!(verify_value(&raw).is_ok(), should_pass, "{name}: verify_value disagrees");
        }
        let map = raw.as_object().expect("an object");
        let canonical = String::from_utf8(signed_bytes(map).expect("canonical form")).expect("utf-8");
        let from: AgentId = raw["from"].as_str().expect("from").parse().expect("an agent id");
        out.push(Case {
            name: name.into(),
            note: note.into(),
            valid: verdict.is_ok(),
            expect_code: verdict.err().map(|r| r.code.number()),
            public_key_hex: data_encoding::HEXLOWER.encode(from.as_bytes()),
            canonical,
            envelope: raw,
        });
    }
    let keys: Vec<Value> = KEYS
        .iter()
        .map(|(name, seed)| {
            json!({
                "name": name,
                "seed_hex": data_encoding::HEXLOWER.encode(&[*seed; 32]),
                "agent_id": key(*seed).id().to_string(),
                "public_key_hex": data_encoding::HEXLOWER.encode(key(*seed).id().as_bytes()),
            })
        })
        .collect();

    #[derive(Serialize)]
    struct File {
        description: &'static str,
        aixp: &'static str,
        now_ms: UnixMs,
        keys: Vec<Value>,
        cases: Vec<Case>,
    }
    let file = File {
        description: "AIXP/1 signed test vectors, generated by crates/xchange-protocol/tests/vectors.rs \
                      (XCHANGE_UPDATE_VECTORS=1 regenerates). Each case's envelope is the message as \
                      sent; canonical is the RFC 8785 text its signature covers (the envelope without \
                      sig); valid and expect_code are the verdict of the Rust edge checks at now_ms with \
                      signatures required. Keys are the test keys of docs/protocol.md.",
        aixp: "1.0",
        now_ms: NOW,
        keys,
        cases: out,
    };
    serde_json::to_string_pretty(&file).expect("json") + "\n"
}

#[test]
fn committed_vectors_are_current() {
    let text = build();
    let path = vectors_path();
    if std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder created");
        std::fs::write(&path, &text).expect("vectors written");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is missing or out of date; regenerate it with {UPDATE_VAR}=1 cargo test -p xchange-protocol \
         --test vectors and review the diff",
        path.display()
    );
}

#[test]
fn building_twice_gives_the_same_bytes() {
    assert_eq!(build(), build());
}

#[test]
fn every_kind_that_must_be_signed_has_a_valid_and_an_invalid_case() {
    let file: Value = serde_json::from_str(&build()).expect("json");
    let cases = file["cases"].as_array().expect("cases");
    for kind in Kind::ALL.into_iter().filter(|k| k.must_be_signed()) {
        let of_kind =
            |valid: bool| cases.iter().any(|c| c["envelope"]["kind"] == kind.as_str() && c["valid"] == valid);
        assert!(of_kind(true), "no valid signed {kind}");
        assert!(of_kind(false) || matches!(kind, Kind::Failure), "no invalid {kind}");
    }
    let codes: Vec<&Value> = cases.iter().map(|c| &c["expect_code"]).collect();
    assert!(codes.contains(&&json!(5016)) && codes.contains(&&json!(5017)));
}
