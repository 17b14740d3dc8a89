//! Runs every case of `mongo_examples.json` (MongoDB's manual examples with their
//! answers) on the three evaluators: in memory, SQLite and PostgreSQL.

use serde_json::Value;
use xchange_filter::{Filter, values_equal};

use crate::db::{Dbs, Ids, in_memory};

const TABLE: &str = include_str!("mongo_examples.json");

#[test]
fn every_case_of_the_mongodb_examples_table() {
    let table: Value = serde_json::from_str(TABLE).expect("the table is valid JSON");
    let groups = table["groups"].as_array().expect("groups");
    let mut dbs = Dbs::open();
    let mut failures = Vec::new();
    let mut cases = 0;
    for group in groups {
        let name = group["name"].as_str().expect("group name");
        assert!(group["source"].is_string(), "group {name} names its source");
        let docs = group["documents"].as_array().expect("documents");
        dbs.load(docs);
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
            let mut check = |evaluator: &str, got: Result<Ids, String>| {
                let got: Vec<&Value> = match got {
                    Ok(ids) => {
                        ids.iter().map(|&i| &docs[usize::try_from(i).expect("an index")]["_id"]).collect()
                    }
                    Err(e) => {
                        return failures.push(format!("{name} ({evaluator}): {filter} is refused: {e}"));
                    }
                };
                if !same_ids(&got, expected) {
                    failures.push(format!(
                        "{name} ({evaluator}): {filter} matched {got:?}, expected {expected:?}"
                    ));
                }
            };
            check("in memory", Ok(in_memory(&parsed, docs)));
            check("SQLite", dbs.sqlite(&parsed).map_err(|e| e.to_string()));
            if let Some(got) = dbs.postgres(&parsed) {
                check("PostgreSQL", got.map_err(|e| e.to_string()));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures over {cases} cases:\n{}", failures.len(), failures.join("\n"));
    assert!(cases >= 60, "the table should hold at least 60 cases, it has {cases}");
}

fn same_ids(got: &[&Value], expected: &[Value]) -> bool {
    got.len() == expected.len() && expected.iter().all(|e| got.iter().any(|g| values_equal(g, e)))
}
