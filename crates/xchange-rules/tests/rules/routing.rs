//! Routing with the example file: precedence, first match, `continue`, priority and tags,
//! computed conditions, search routes, and the trace the explain endpoint shows.

use serde_json::{Value, json};
use xchange_rules::{DecidedBy, Decision, EXPLICIT_TRACE_NAME, JobError, Route, Rules};

use crate::{example, one_rule};

const NOW: i64 = 1_700_000_000_000;

/// A job of the original's JobCoreData shape, with `extra` fields merged in.
fn job(extra: Value) -> Value {
    let mut j = json!({
        "job_id": "j-1",
        "job_goal": {"kind": "summary"},
        "job_objectives": ["a", "b"],
        "job_priority_value": 3,
        "job_completion_mode": "single_window",
        "submitted_by": "bob",
    });
    j.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    j
}

fn route(extra: Value) -> Decision {
    example().evaluate(&job(extra), NOW).expect("a valid job routes")
}

fn matched(d: &Decision) -> Vec<&str> {
    d.trace.iter().filter(|t| t.matched).map(|t| t.rule.as_str()).collect()
}

fn looked_at(d: &Decision) -> Vec<&str> {
    d.trace.iter().map(|t| t.rule.as_str()).collect()
}

#[test]
fn a_job_that_names_its_task_database_goes_there_and_no_rule_runs() {
    // This job would match vip-submitters and large-high-priority.
    let d = route(json!({"task_db_id": "org-a-private", "submitted_by": "alice",
        "job_objectives": [1, 2, 3, 4, 5], "job_priority_value": 8}));
    assert_eq!(d.route, Route::Explicit("org-a-private".into()));
    assert_eq!(d.decided_by, DecidedBy::TaskDbId);
    assert_eq!((d.priority, d.tags.len()), (None, 0), "rules did not run");
    assert_eq!(looked_at(&d), [EXPLICIT_TRACE_NAME]);
    assert!(
        d.trace[0].why.contains("\"org-a-private\"") && d.trace[0].why.contains("rules are not evaluated")
    );
}

#[test]
fn a_null_task_database_is_no_preference() {
    let d = route(json!({"task_db_id": null}));
    assert_eq!((d.route, d.decided_by), (Route::Global, DecidedBy::Default));
}

#[test]
fn bad_jobs_are_refused_not_routed_elsewhere() {
    let rules = example();
    for (bad, found) in [(json!(5), "a number"), (json!(""), "an empty string"), (json!(["x"]), "an array")] {
        assert_eq!(
            rules.evaluate(&job(json!({"task_db_id": bad})), NOW).unwrap_err(),
            JobError::InvalidTaskDbId { found }
        );
    }
    assert_eq!(rules.evaluate(&json!([1]), NOW).unwrap_err(), JobError::NotAnObject { found: "an array" });
    assert_eq!(
        Rules::empty().evaluate(&json!("x"), NOW).unwrap_err(),
        JobError::NotAnObject { found: "a string" }
    );
}

#[test]
fn no_matching_rule_means_the_global_database_and_every_rule_is_traced() {
    let d = route(json!({}));
    assert_eq!((d.route.clone(), d.decided_by.clone()), (Route::Global, DecidedBy::Default));
    assert_eq!((d.priority, d.tags.len()), (None, 0));
    let rules = example();
    let names: Vec<&str> = rules.rules().iter().map(|r| r.name()).collect();
    assert_eq!(looked_at(&d), names);
    assert!(matched(&d).is_empty());
}

#[test]
fn the_first_matching_rule_with_a_route_decides() {
    // Matches large-high-priority and multi-window-search: the earlier one wins, and the
    // later one is not even looked at.
    let d = route(json!({"job_objectives": [1, 2, 3, 4], "job_priority_value": 5,
        "job_completion_mode": "multi_window"}));
    assert_eq!(d.route, Route::Explicit("gpu-pool".into()));
    assert_eq!(d.decided_by, DecidedBy::Rule("large-high-priority".into()));
    assert_eq!(looked_at(&d).last(), Some(&"large-high-priority"));
    assert!(!looked_at(&d).contains(&"multi-window-search"));
}

#[test]
fn continue_rules_set_priority_and_tags_and_evaluation_goes_on() {
    let d = route(json!({"submitted_by": "alice", "job_objectives": [1, 2, 3, 4], "job_priority_value": 6,
        "deadline_ms": NOW + 10_000}));
    assert_eq!(matched(&d), ["vip-submitters", "urgent-by-deadline", "large-high-priority"]);
    assert_eq!(d.priority, Some(9));
    assert_eq!(d.tags, ["vip", "urgent"]);
    assert_eq!(d.route, Route::Explicit("gpu-pool".into()));
}

#[test]
fn conditions_see_the_job_as_submitted_not_the_priority_set_by_earlier_rules() {
    // vip-submitters sets priority 9, but large-high-priority reads the submitted 3.
    let d = route(json!({"submitted_by": "alice", "job_objectives": [1, 2, 3, 4], "job_priority_value": 3}));
    assert_eq!(d.priority, Some(9));
    assert_eq!(d.route, Route::Global);
}

#[test]
fn a_rule_without_continue_stops_even_before_a_later_match() {
    // Anonymous jobs are quarantined on the global database; acme-private would match too.
    let rules = Rules::from_toml(&format!(
        "{}\n[[rule]]\nname = \"catch-all\"\nthen = {{ route = {{ taskdb = \"never\" }} }}\n",
        crate::EXAMPLE
    ))
    .unwrap();
    let d = rules.evaluate(&job(json!({"submitted_by": "anonymous"})), NOW).unwrap();
    assert_eq!(d.route, Route::Global);
    assert_eq!(d.decided_by, DecidedBy::Rule("quarantine-anonymous".into()));
    assert_eq!(d.tags, ["quarantine"]);
    assert_eq!(looked_at(&d).last(), Some(&"quarantine-anonymous"));
    // Without the quarantine, the catch-all at the end routes.
    let d = rules.evaluate(&job(json!({})), NOW).unwrap();
    assert_eq!(d.route, Route::Explicit("never".into()));
}

#[test]
fn a_stop_without_a_route_leaves_the_default() {
    let rules =
        one_rule("then = { priority = 1 }\n[[rule]]\nname = \"later\"\nthen.route.taskdb = \"x\"").unwrap();
    let d = rules.evaluate(&json!({}), NOW).unwrap();
    assert_eq!((d.route, d.decided_by, d.priority), (Route::Global, DecidedBy::Default, Some(1)));
    assert!(d.trace[0].why.ends_with("stop with no route (global)"), "{}", d.trace[0].why);
}

#[test]
fn the_last_priority_set_wins_and_tags_are_not_repeated() {
    let rules = Rules::from_toml(
        r#"
        version = 1
        [[rule]]
        name = "a"
        then = { priority = 1, add_tags = ["x", "y", "x"], continue = true }
        [[rule]]
        name = "b"
        then = { priority = 2, add_tags = ["y", "z"], continue = true }
        "#,
    )
    .unwrap();
    let d = rules.evaluate(&json!({}), NOW).unwrap();
    assert_eq!((d.priority, d.tags), (Some(2), vec!["x".to_owned(), "y".into(), "z".into()]));
}

#[test]
fn a_computed_condition_decides_on_size_and_priority() {
    let gpu = Route::Explicit("gpu-pool".into());
    let four = json!([1, 2, 3, 4]);
    assert_eq!(route(json!({"job_objectives": four, "job_priority_value": 5})).route, gpu);
    assert_eq!(route(json!({"job_objectives": four, "job_priority_value": 4})).route, Route::Global);
    assert_eq!(route(json!({"job_objectives": [1, 2, 3], "job_priority_value": 9})).route, Route::Global);
    // A string's size is its length, like any other CEL value with a size.
    assert_eq!(route(json!({"job_objectives": "abcd", "job_priority_value": 5})).route, gpu);
    let d = route(json!({"job_objectives": [1, 2, 3], "job_priority_value": 9}));
    let t = d.trace.iter().find(|t| t.rule == "large-high-priority").unwrap();
    assert!(!t.matched);
    assert_eq!(t.why, "no when; expr `size(job.job_objectives) > 3 && job.job_priority_value >= 5` false");
}

#[test]
fn the_callers_time_decides_urgency() {
    let deadline = json!({"deadline_ms": NOW + 30_000});
    assert_eq!(example().evaluate(&job(deadline.clone()), NOW).unwrap().tags, ["urgent"]);
    assert!(example().evaluate(&job(deadline), NOW - 60_000).unwrap().tags.is_empty());
}

#[test]
fn an_expression_error_skips_the_rule_and_says_why() {
    let mut j = job(json!({"job_priority_value": 9}));
    j.as_object_mut().unwrap().remove("job_objectives");
    let d = example().evaluate(&j, NOW).unwrap();
    let t = d.trace.iter().find(|t| t.rule == "large-high-priority").unwrap();
    assert!(!t.matched);
    assert_eq!(t.why, "no when; expr error: No such key: job_objectives -> rule skipped");
    assert_eq!(d.route, Route::Global, "later rules still ran and none matched");
    assert_eq!(d.trace.len(), example().len());
}

#[test]
fn a_condition_that_yields_no_bool_on_this_job_skips_the_rule() {
    let rules = crate::with_expr("job.flag").unwrap();
    let d = rules.evaluate(&json!({"flag": "yes"}), NOW).unwrap();
    assert_eq!(d.route, Route::Global);
    assert_eq!(d.trace[0].why, "no when; expr yielded string, not a bool -> rule skipped");
    let d = rules.evaluate(&json!({"flag": true}), NOW).unwrap();
    assert_eq!(d.route, Route::Explicit("x".into()));
}

#[test]
fn search_routes_carry_a_filter_over_registry_entries() {
    let d = route(json!({"job_completion_mode": "multi_window"}));
    let Route::Search(search) = &d.route else { panic!("expected a search, got {:?}", d.route) };
    assert_eq!(d.decided_by, DecidedBy::Rule("multi-window-search".into()));
    let entry = |modes: Value, public: bool| {
        json!({"task_listing_db_id": "db", "search_metadata": {"modes": modes},
            "accessibility_data": {"public": public}})
    };
    assert!(search.matches(&entry(json!(["single_window", "multi_window"]), true)));
    assert!(!search.matches(&entry(json!(["single_window"]), true)));
    assert!(!search.matches(&entry(json!("multi_window"), false)));
    assert_eq!(
        search.source(),
        &json!({"search_metadata.modes": "multi_window", "accessibility_data.public": true})
    );
}

#[test]
fn a_search_written_as_json_works_like_a_table() {
    let d = route(json!({"job_goal": {"kind": "translation"}}));
    let Route::Search(search) = &d.route else { panic!("expected a search, got {:?}", d.route) };
    assert_eq!(d.tags, ["nlp"]);
    assert!(search.matches(&json!({"search_metadata": {"capabilities": ["ocr", "translation"]}})));
    assert!(!search.matches(&json!({"search_metadata": {"capabilities": ["ocr"]}})));
}

#[test]
fn the_trace_says_what_matched_and_what_was_applied() {
    let d = route(json!({"submitted_by": "alice", "job_completion_mode": "multi_window"}));
    let why: Vec<(&str, bool, &str)> =
        d.trace.iter().map(|t| (t.rule.as_str(), t.matched, t.why.as_str())).collect();
    assert_eq!(
        why[..3],
        [
            (
                "vip-submitters",
                true,
                r#"when {"submitted_by":{"$in":["alice","ops-bot"]}} matched -> priority 9, tags ["vip"]; continue"#
            ),
            ("urgent-by-deadline", false, r#"when {"deadline_ms":{"$type":"number"}} did not match"#),
            (
                "quarantine-anonymous",
                false,
                r#"when {"submitted_by":{"$in":["","anonymous"]}} did not match"#
            ),
        ]
    );
    let last = d.trace.last().unwrap();
    assert_eq!(last.rule, "multi-window-search");
    assert!(last.why.starts_with(r#"when {"job_completion_mode":"multi_window"} matched -> route search {"#));
    assert!(last.why.ends_with("; stop"), "{}", last.why);
}

#[test]
fn a_decision_serializes_for_the_explain_endpoint() {
    let d = route(json!({"submitted_by": "alice", "job_objectives": [1, 2, 3, 4], "job_priority_value": 5}));
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["route"], json!({"taskdb": "gpu-pool"}));
    assert_eq!(v["decided_by"], json!({"rule": "large-high-priority"}));
    assert_eq!((v["priority"].clone(), v["tags"].clone()), (json!(9), json!(["vip"])));
    assert_eq!(v["trace"][0]["rule"], "vip-submitters");
    assert_eq!(v["trace"][0]["matched"], true);
    let global = serde_json::to_value(route(json!({}))).unwrap();
    assert_eq!((global["route"].clone(), global["decided_by"].clone()), (json!("global"), json!("default")));
    let search = serde_json::to_value(route(json!({"job_completion_mode": "multi_window"}))).unwrap();
    assert_eq!(search["route"]["search"]["accessibility_data.public"], true);
    let own = serde_json::to_value(route(json!({"task_db_id": "a"}))).unwrap();
    assert_eq!(own["decided_by"], "task_db_id");
}

#[test]
fn routing_is_deterministic() {
    let rules = example();
    let j = job(json!({"submitted_by": "alice", "deadline_ms": NOW, "job_completion_mode": "multi_window"}));
    let first = rules.evaluate(&j, NOW).unwrap();
    for _ in 0..20 {
        assert_eq!(rules.evaluate(&j, NOW).unwrap(), first);
    }
}

#[test]
fn rules_keep_their_names_descriptions_and_routes() {
    let rules = example();
    assert_eq!(rules.len(), 7);
    let first = &rules.rules()[0];
    assert_eq!(first.name(), "vip-submitters");
    assert_eq!(first.description(), Some("Jobs from the operations team jump the queue."));
    assert_eq!(first.route(), None);
    assert_eq!(rules.rules()[6].route(), Some(&Route::Explicit("acme-private".into())));
    assert!(Rules::from_toml("version = 1").unwrap().is_empty());
}
