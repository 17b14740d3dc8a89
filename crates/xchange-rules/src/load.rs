//! From TOML text to checked [`Rule`]s, refusing the whole file at its first bad rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use xchange_filter::Filter;

use crate::decision::Search;
use crate::expr::Expr;
use crate::file::{RouteSpec, RuleSpec, RulesFile, VersionProbe};
use crate::rule::{Rule, Then, When};
use crate::{FILE_VERSION, Route, RulesError};

/// Longest rule name, in bytes: names appear in traces, logs and metrics.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 64;
// The refusal reasons below are static strings that say "64".
const _: () = assert!(MAX_NAME_BYTES == 64 && MAX_TAG_BYTES == 64);

pub(crate) fn load(src: &str) -> Result<Vec<Rule>, RulesError> {
    let toml_err = |e: toml::de::Error| RulesError::Toml { message: e.to_string().trim_end().to_owned() };
    let probe: VersionProbe = toml::from_str(src).map_err(toml_err)?;
    match probe.version {
        None => return Err(RulesError::MissingVersion),
        Some(toml::Value::Integer(v)) if v == FILE_VERSION => {}
        Some(other) => return Err(RulesError::UnsupportedVersion { found: describe_toml(&other) }),
    }
    let file: RulesFile = toml::from_str(src).map_err(toml_err)?;
    let mut first_index = BTreeMap::new();
    let mut rules = Vec::with_capacity(file.rules.len());
    for (i, spec) in file.rules.into_iter().enumerate() {
        let index = i + 1;
        check_name(index, &spec.name)?;
        if let Some(&first) = first_index.get(&spec.name) {
            return Err(RulesError::DuplicateName { name: spec.name, first, index });
        }
        first_index.insert(spec.name.clone(), index);
        rules.push(rule(spec)?);
    }
    Ok(rules)
}

fn rule(spec: RuleSpec) -> Result<Rule, RulesError> {
    let name = spec.name;
    let when = match spec.when {
        Some(w) => {
            let (filter, json) = filter(&name, "when", w)?;
            Some(When { filter, text: json.to_string() })
        }
        None => None,
    };
    let expr = spec.expr.map(|src| Expr::compile(&name, &src)).transpose()?;
    let t = spec.then;
    let route = match t.route {
        None => None,
        Some(RouteSpec::Global) => Some(Route::Global),
        Some(RouteSpec::Taskdb(db)) => {
            if db.is_empty() || db.trim() != db {
                return Err(RulesError::InvalidTaskDb { rule: name, name: db });
            }
            Some(Route::Explicit(db))
        }
        Some(RouteSpec::Search(s)) => {
            let (filter, json) = filter(&name, "then.route.search", s)?;
            Some(Route::Search(Arc::new(Search::new(filter, json))))
        }
    };
    if t.continue_ && route.is_some() {
        return Err(RulesError::ContinueWithRoute { rule: name });
    }
    if t.continue_ && t.priority.is_none() && t.add_tags.is_empty() {
        return Err(RulesError::NoEffect { rule: name });
    }
    let mut add_tags: Vec<String> = Vec::with_capacity(t.add_tags.len());
    for tag in t.add_tags {
        check_tag(&name, &tag)?;
        if !add_tags.contains(&tag) {
            add_tags.push(tag);
        }
    }
    let then = Then { route, priority: t.priority, add_tags, continue_: t.continue_ };
    Ok(Rule { name, description: spec.description, when, expr, then })
}

fn check_name(index: usize, name: &str) -> Result<(), RulesError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_BYTES {
        "longer than 64 bytes"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        "only letters, digits, '_', '.' and '-' are allowed"
    } else {
        return Ok(());
    };
    Err(RulesError::InvalidName { index, name: name.to_owned(), reason })
}

fn check_tag(rule: &str, tag: &str) -> Result<(), RulesError> {
    let reason = if tag.is_empty() {
        "empty"
    } else if tag.len() > MAX_TAG_BYTES {
        "longer than 64 bytes"
    } else if tag.chars().any(char::is_control) {
        "control characters are not allowed"
    } else {
        return Ok(());
    };
    Err(RulesError::InvalidTag { rule: rule.to_owned(), tag: tag.to_owned(), reason })
}

/// A filter written as a TOML table, or as a string holding JSON (for filters that read
/// better in Mongo's own notation), parsed with the filter crate's default limits.
fn filter(rule: &str, field: &'static str, v: toml::Value) -> Result<(Filter, Value), RulesError> {
    let syntax = |reason: String| RulesError::FilterSyntax { rule: rule.to_owned(), field, reason };
    let json = match v {
        toml::Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| syntax(format!("the string is not JSON: {e}")))?
        }
        toml::Value::Table(_) => toml_to_json(v).map_err(syntax)?,
        other => {
            return Err(syntax(format!(
                "a filter is a table or a string holding a JSON object, found {}",
                other.type_str()
            )));
        }
    };
    let filter =
        Filter::parse(&json).map_err(|source| RulesError::Filter { rule: rule.to_owned(), field, source })?;
    Ok((filter, json))
}

fn toml_to_json(v: toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(f).map(Value::Number).ok_or(format!("{f} is not a JSON number"))?
        }
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => {
            return Err(format!("the TOML date-time {d} has no JSON form: write it as a string or a number"));
        }
        toml::Value::Array(a) => Value::Array(a.into_iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(
            t.into_iter().map(|(k, v)| Ok((k, toml_to_json(v)?))).collect::<Result<_, String>>()?,
        ),
    })
}

/// A TOML value for a message: a number or string as written, any other by its type.
fn describe_toml(v: &toml::Value) -> String {
    match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::String(s) => format!("{s:?}"),
        other => format!("of type {}", other.type_str()),
    }
}
