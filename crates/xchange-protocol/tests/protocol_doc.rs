//! Checks docs/protocol.md against the code: the status-code table, and every example
//! message (`json aixp-valid` must pass the edge checks, `json aixp-invalid code=NNNN` must
//! be refused with exactly that code).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use xchange_protocol::{AgentId, Code, EdgeLimits, Kind, UnixMs, decode, verify_value};

/// The `now` of every example: 2026-01-01T00:00:00Z.
const NOW: UnixMs = 1_767_225_600_000;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md")
}

fn doc() -> String {
    std::fs::read_to_string(doc_path()).expect("docs/protocol.md exists")
}

/// One fenced example.
struct Example {
    line: usize,
    valid: bool,
    code: Option<u16>,
    recipient: Option<AgentId>,
    text: String,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```json ") else { continue };
        let mut words = info.split_whitespace();
        let valid = match words.next() {
            Some("aixp-valid") => true,
            Some("aixp-invalid") => false,
            _ => continue,
        };
        let (mut code, mut recipient) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("code", v)) => {
                    code = Some(v.parse().unwrap_or_else(|_| panic!("line {}: bad code {v}", n + 1)))
                }
                Some(("recipient", v)) => {
                    recipient =
                        Some(v.parse().unwrap_or_else(|_| panic!("line {}: bad recipient {v}", n + 1)));
                }
                _ => panic!("line {}: unknown attribute {word:?} in the info string", n + 1),
            }
        }
        assert!(valid || code.is_some(), "line {}: an invalid example needs code=NNNN", n + 1);
        let text: Vec<&str> = lines.by_ref().map(|(_, l)| l).take_while(|l| *l != "```").collect();
        out.push(Example { line: n + 1, valid, code, recipient, text: text.join("\n") });
    }
    out
}

fn no_signatures() -> EdgeLimits {
    EdgeLimits { require_signatures: false, ..EdgeLimits::default() }
}

#[test]
fn status_code_table_matches_the_code() {
    let doc = doc();
    let begin = "<!-- status-codes:begin -->\n";
    let end = "\n<!-- status-codes:end -->";
    let start = doc.find(begin).expect("the status-code table has a begin marker") + begin.len();
    let stop = start + doc[start..].find(end).expect("the status-code table has an end marker");
    let mut expected = String::from("| Code | Name | HTTP | Meaning |\n|---:|---|---:|---|");
    for c in Code::ALL {
        expected.push_str(&format!(
            "\n| {} | `{}` | {} | {} |",
            c.number(),
            c.name(),
            c.http_status(),
            c.sentence()
        ));
    }
    assert!(
        doc[start..stop] == expected,
        "the status-code table in docs/protocol.md differs from Code::ALL; it should read:\n{expected}\n"
    );
}

#[test]
fn examples_are_decoded_as_labelled() {
    let doc = doc();
    let mut failures = Vec::new();
    for ex in examples(&doc) {
        let line = ex.line;
        if ex.valid {
            match decode(ex.text.as_bytes(), NOW, ex.recipient, &no_signatures()) {
                Ok(env) => {
                    let raw: Value = serde_json::from_str(&ex.text).expect("decoded, so json");
                    if env.sig.is_some()
                        && let Err(e) = verify_value(&raw)
                    {
                        failures.push(format!("line {line}: the signature does not verify: {e}"));
                    }
                }
                Err(e) => failures.push(format!("line {line}: valid example refused: {e}")),
            }
        } else {
            let want = ex.code.expect("checked while parsing");
            match decode(ex.text.as_bytes(), NOW, ex.recipient, &EdgeLimits::default()) {
                Ok(_) => failures.push(format!("line {line}: invalid example accepted, expected {want}")),
                Err(e) if e.code.number() != want => {
                    failures.push(format!("line {line}: expected {want}, refused with {e}"));
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "docs/protocol.md examples:\n{}", failures.join("\n"));
}

#[test]
fn examples_cover_every_kind_and_the_main_refusals() {
    let doc = doc();
    let all = examples(&doc);
    let kinds: BTreeSet<Kind> = all
        .iter()
        .filter(|e| e.valid)
        .map(|e| {
            decode(e.text.as_bytes(), NOW, e.recipient, &no_signatures()).expect("checked elsewhere").kind()
        })
        .collect();
    let missing: Vec<Kind> = Kind::ALL.into_iter().filter(|k| !kinds.contains(k)).collect();
    assert!(missing.is_empty(), "no valid example of {missing:?}");

    let codes: BTreeSet<u16> = all.iter().filter_map(|e| e.code).collect();
    let required = [5006, 5010, 5011, 5012, 5013, 5014, 5015, 5016];
    let missing: Vec<u16> = required.into_iter().filter(|c| !codes.contains(c)).collect();
    assert!(missing.is_empty(), "no invalid example refused with {missing:?}");
    assert!(all.iter().filter(|e| !e.valid).count() >= 8);
    for code in &codes {
        assert!(Code::from_number(*code).is_some(), "example code {code} is not in the table");
    }
}

#[cfg(feature = "validate")]
#[test]
fn valid_examples_match_the_committed_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/v1/envelope.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schemas/v1/envelope.json exists"))
            .expect("the schema is json");
    let validator = jsonschema::validator_for(&schema).expect("the envelope schema compiles");
    let doc = doc();
    let mut failures = Vec::new();
    for ex in examples(&doc).into_iter().filter(|e| e.valid) {
        let instance: Value = serde_json::from_str(&ex.text).expect("valid examples are json");
        for error in validator.iter_errors(&instance) {
            failures.push(format!("line {}: {} at {}", ex.line, error, error.instance_path()));
        }
    }
    assert!(failures.is_empty(), "valid examples that the envelope schema refuses:\n{}", failures.join("\n"));
}
