//! Every kind of bad rules file is refused as a whole, with an error that names the rule
//! and the field.

use xchange_filter::FilterError;
use xchange_rules::{Rules, RulesError};

use crate::{one_rule, with_expr};

const ROUTE: &str = "then = { route = { taskdb = \"x\" } }";

/// The error, and its message (checked to name the rule when there is one).
fn refused(r: Result<Rules, RulesError>) -> (RulesError, String) {
    let e = r.expect_err("the file must be refused");
    let msg = e.to_string();
    (e, msg)
}

fn toml_message(r: Result<Rules, RulesError>) -> String {
    match refused(r) {
        (RulesError::Toml { message }, _) => message,
        (other, _) => panic!("expected a TOML error, got {other:?}"),
    }
}

#[test]
fn not_toml() {
    assert!(toml_message(Rules::from_toml("version = 1\n[[rule]\n")).contains("line 2"));
}

#[test]
fn unknown_fields_anywhere() {
    for (file, field) in [
        ("version = 1\nrules = []", "rules"),
        ("version = 1\n[[rule]]\nname = \"r\"\nwhn = {}\nthen = {}", "whn"),
        ("version = 1\n[[rule]]\nname = \"r\"\nthen = { priorty = 1 }", "priorty"),
        ("version = 1\n[[rule]]\nname = \"r\"\nthen = { route = { pool = \"x\" } }", "pool"),
    ] {
        let msg = toml_message(Rules::from_toml(file));
        assert!(
            msg.contains(&format!("unknown field `{field}`"))
                || msg.contains(&format!("unknown variant `{field}`")),
            "{msg}"
        );
    }
}

#[test]
fn missing_and_mistyped_fields() {
    assert!(
        toml_message(Rules::from_toml("version = 1\n[[rule]]\nthen = {}")).contains("missing field `name`")
    );
    assert!(toml_message(one_rule("")).contains("missing field `then`"));
    assert!(toml_message(one_rule("then = { priority = \"high\" }")).contains("invalid type"));
    assert!(toml_message(one_rule("then = { add_tags = \"vip\" }")).contains("invalid type"));
    assert!(toml_message(one_rule("expr = true\nthen = {}")).contains("invalid type"));
    assert!(
        toml_message(one_rule("then = { route = \"everywhere\" }")).contains("unknown variant `everywhere`")
    );
    let two = toml_message(one_rule("then = { route = { taskdb = \"x\", search = {} } }"));
    assert!(two.contains("wanted exactly 1 element"), "{two}");
}

#[test]
fn wrong_or_missing_version() {
    assert_eq!(
        Rules::from_toml("[[rule]]\nname = \"r\"\nthen = {}").unwrap_err(),
        RulesError::MissingVersion
    );
    assert_eq!(Rules::from_toml("").unwrap_err(), RulesError::MissingVersion);
    assert_eq!(
        Rules::from_toml("version = 2").unwrap_err(),
        RulesError::UnsupportedVersion { found: "2".into() }
    );
    assert_eq!(
        Rules::from_toml("version = \"1\"").unwrap_err(),
        RulesError::UnsupportedVersion { found: "\"1\"".into() }
    );
    // A later version's fields do not hide the version: "unsupported version", not "unknown field".
    let newer = "version = 2\n[[rule]]\nname = \"r\"\nthen = { route = { pool = \"x\" } }";
    assert!(matches!(Rules::from_toml(newer).unwrap_err(), RulesError::UnsupportedVersion { .. }));
    assert!(RulesError::MissingVersion.to_string().contains("version = 1"));
}

#[test]
fn invalid_and_duplicate_names() {
    for (name, reason) in [
        ("", "empty"),
        ("has space", "only letters"),
        ("(task_db_id)", "only letters"),
        (&"n".repeat(65), "longer than 64 bytes"),
    ] {
        let file = format!("version = 1\n[[rule]]\nname = \"{name}\"\nthen = {{}}");
        let (e, msg) = refused(Rules::from_toml(&file));
        assert!(
            matches!(&e, RulesError::InvalidName { index: 1, reason: r, .. } if r.starts_with(reason)),
            "{e:?}"
        );
        assert!(msg.starts_with("rule 1: invalid name"), "{msg}");
    }
    assert!(
        Rules::from_toml(&format!("version = 1\n[[rule]]\nname = \"{}\"\nthen = {{}}", "n".repeat(64)))
            .is_ok()
    );
    let dup = "version = 1\n[[rule]]\nname = \"a\"\nthen = {}\n[[rule]]\nname = \"b\"\nthen = {}\n[[rule]]\nname = \"a\"\nthen = {}";
    let (e, msg) = refused(Rules::from_toml(dup));
    assert_eq!(e, RulesError::DuplicateName { name: "a".into(), first: 1, index: 3 });
    assert_eq!(msg, "rule 3: the name \"a\" is already used by rule 1");
}

#[test]
fn invalid_filters_in_when_and_in_search() {
    let unknown = refused(one_rule(&format!("when = {{ a = {{ \"$foo\" = 1 }} }}\n{ROUTE}")));
    assert!(matches!(
        &unknown.0,
        RulesError::Filter { field: "when", source: FilterError::UnknownOperator { .. }, .. }
    ));
    assert!(unknown.1.starts_with("rule \"r\", when: unknown operator $foo"), "{}", unknown.1);
    let operand = refused(one_rule(&format!("when = '{{\"a\": {{\"$in\": 5}}}}'\n{ROUTE}")));
    assert!(matches!(
        &operand.0,
        RulesError::Filter { field: "when", source: FilterError::InvalidOperand { .. }, .. }
    ));
    let search = refused(one_rule("then.route.search = { \"$where\" = \"1\" }"));
    assert!(matches!(&search.0, RulesError::Filter { field: "then.route.search", .. }), "{:?}", search.0);
    assert!(search.1.starts_with("rule \"r\", then.route.search:"), "{}", search.1);
    let array = refused(one_rule(&format!("when = '[1]'\n{ROUTE}")));
    assert!(matches!(&array.0, RulesError::Filter { source: FilterError::NotAnObject { .. }, .. }));
}

#[test]
fn filters_that_are_not_filters() {
    for (when, reason) in [
        ("5", "a filter is a table or a string holding a JSON object, found integer"),
        ("'{\"a\": '", "the string is not JSON"),
        ("{ at = 2024-01-01T00:00:00Z }", "the TOML date-time 2024-01-01T00:00:00Z has no JSON form"),
        ("{ x = nan }", "NaN is not a JSON number"),
    ] {
        let (e, msg) = refused(one_rule(&format!("when = {when}\n{ROUTE}")));
        let RulesError::FilterSyntax { rule, field: "when", reason: got } = &e else { panic!("{e:?}") };
        assert_eq!(rule, "r");
        assert!(got.starts_with(reason), "{got}");
        assert!(msg.starts_with("rule \"r\", when: "), "{msg}");
    }
}

#[test]
fn bad_expressions() {
    let (e, msg) = refused(with_expr("job.a >"));
    assert!(matches!(e, RulesError::ExprSyntax { .. }), "{e:?}");
    assert!(msg.starts_with("rule \"r\", expr: syntax error: 1:8: Syntax error"), "{msg}");
    assert!(matches!(refused(with_expr("job.a ++ 1")).0, RulesError::ExprSyntax { .. }));
    let (e, msg) = refused(with_expr("size(job.job_objectives) + 1"));
    assert_eq!(e, RulesError::ExprNotBool { rule: "r".into(), found: "a sum or a concatenation" });
    assert_eq!(msg, "rule \"r\", expr: must yield a bool, but yields a sum or a concatenation");
    assert!(matches!(refused(with_expr("'yes'")).0, RulesError::ExprNotBool { found: "a string", .. }));
    let (e, _) = refused(with_expr("jobs.priority > 1"));
    assert_eq!(e, RulesError::ExprUnknownVariable { rule: "r".into(), name: "jobs".into() });
    let (e, _) = refused(with_expr("job.a.exists(x, job.b.exists(y, x == y))"));
    assert!(matches!(e, RulesError::ExprTooCostly { .. }), "{e:?}");
    let (e, _) = refused(with_expr(&vec!["1"; 40].join(" + ")));
    assert_eq!(e, RulesError::ExprTooDeep { rule: "r".into(), max: xchange_rules::MAX_EXPR_DEPTH });
}

#[test]
fn oversized_expression() {
    let max = xchange_rules::MAX_EXPR_BYTES;
    let fits = format!("job.a == '{}'", "x".repeat(max - "job.a == ''".len()));
    assert_eq!(fits.len(), max);
    assert!(with_expr(&fits).is_ok());
    let over = format!("{fits} ");
    let (e, msg) = refused(with_expr(&over));
    assert_eq!(e, RulesError::ExprTooLong { rule: "r".into(), len: max + 1, max });
    assert_eq!(msg, format!("rule \"r\", expr: {} bytes, over the limit of {max}", max + 1));
}

#[test]
fn inconsistent_then() {
    let (e, msg) = refused(one_rule("then = { route = { taskdb = \"x\" }, continue = true }"));
    assert_eq!(e, RulesError::ContinueWithRoute { rule: "r".into() });
    assert!(msg.starts_with("rule \"r\", then: a rule with a route cannot continue"));
    assert_eq!(refused(one_rule("then = { continue = true }")).0, RulesError::NoEffect { rule: "r".into() });
    // An empty `then` without continue is a stop: allowed.
    assert!(one_rule("then = {}").is_ok());
}

#[test]
fn bad_task_database_names_and_tags() {
    for db in ["", " gpu"] {
        let (e, _) = refused(one_rule(&format!("then = {{ route = {{ taskdb = \"{db}\" }} }}")));
        assert_eq!(e, RulesError::InvalidTaskDb { rule: "r".into(), name: db.into() });
    }
    for (tag, reason) in
        [("", "empty"), ("a\\u0007b", "control characters"), (&"t".repeat(65), "longer than 64")]
    {
        let (e, msg) = refused(one_rule(&format!("then = {{ add_tags = [\"ok\", \"{tag}\"] }}")));
        assert!(matches!(&e, RulesError::InvalidTag { reason: r, .. } if r.starts_with(reason)), "{e:?}");
        assert!(msg.starts_with("rule \"r\", then.add_tags: invalid tag"), "{msg}");
    }
}

#[test]
fn one_bad_rule_refuses_the_whole_file() {
    let file = format!("{}\n[[rule]]\nname = \"bad\"\nexpr = \"1 +\"\nthen = {{}}\n", crate::EXAMPLE);
    assert!(
        matches!(Rules::from_toml(&file).unwrap_err(), RulesError::ExprSyntax { rule, .. } if rule == "bad")
    );
}
