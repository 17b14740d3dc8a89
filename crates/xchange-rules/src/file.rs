//! The rules file as written: serde types with `deny_unknown_fields`, before any check
//! beyond the TOML shape. `load.rs` turns them into [`crate::Rule`]s.

use serde::Deserialize;

/// Read first, without refusing unknown fields, so that a file of another version is
/// told "unsupported version" rather than "unknown field" about a field that version has.
#[derive(Deserialize)]
pub(crate) struct VersionProbe {
    pub(crate) version: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesFile {
    /// Checked by [`VersionProbe`] before this is read.
    #[serde(rename = "version")]
    _version: i64,
    #[serde(default, rename = "rule")]
    pub(crate) rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// A filter: a TOML table, or a string holding JSON. Kept as TOML until the rule's
    /// name is known, so that the error names the rule.
    #[serde(default)]
    pub(crate) when: Option<toml::Value>,
    #[serde(default)]
    pub(crate) expr: Option<String>,
    pub(crate) then: ThenSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ThenSpec {
    #[serde(default)]
    pub(crate) route: Option<RouteSpec>,
    #[serde(default)]
    pub(crate) priority: Option<i64>,
    #[serde(default)]
    pub(crate) add_tags: Vec<String>,
    #[serde(default, rename = "continue")]
    pub(crate) continue_: bool,
}

/// `route = { taskdb = "name" }`, `route = { search = <filter> }` or `route = "global"`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum RouteSpec {
    Taskdb(String),
    Search(toml::Value),
    Global,
}
