//! Runs every case of `mongo_examples.json`: MongoDB's manual examples with their answers.

use serde_json::Value;
use xchange_filter::{Filter, values_equal};

const TABLE: &str = include_str!("mongo_examples.json");

#[test]
fn every_case_of_the_mongodb_examples_table() {
    let table: Value = serde_json::from_str(TABLE).expect("the table is valid JSON");
    let groups = table["groups"].as_array().expect("groups");
    let mut failures = Vec::new();
    let mut cases = 0;
    for group in groups {
        let name = group["name"].as_str().expect("group name");
        assert!(group["source"].is_string(), "group {name} names its source");
        let docs = group["documents"].as_array().expect("documents");
        for case in group["cases"].as_array().expect("cases") {
            cases += 1;
            let filter = &case["filter"];
            let expected = case["expected"].as_array().expect("expected ids");
            if case.get("mongodb").is_some() {
                assert!(
                    case["deviation"].is_string(),
                    "{name}: a case that differs from MongoDB says why: {filter}"
                );
            }
            let parsed = match Filter::parse(filter) {
                Ok(f) => f,
                Err(e) => {
                    failures.push(format!("{name}: {filter} does not parse: {e}"));
                    continue;
                }
            };
            let got: Vec<&Value> = docs.iter().filter(|d| parsed.matches(d)).map(|d| &d["_id"]).collect();
            let same = got.len() == expected.len()
                && expected.iter().all(|e| got.iter().any(|g| values_equal(g, e)));
            if !same {
                failures.push(format!("{name}: {filter} matched {got:?}, expected {expected:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(cases >= 60, "the table should hold at least 60 cases, it has {cases}");
}
