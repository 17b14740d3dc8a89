//! The registry's records: task databases, organisations, agent cards, subscriptions,
//! templates; and what the store reports about itself (durability, job statistics).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobState, overlay};

/// A task database registry entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDb {
    /// The key (`task_listing_db_id` in the original Xchange schema).
    pub task_listing_db_id: String,
    /// The entry (`task_listing_db_api_url`, `association_ids`, ...), opaque to the store.
    pub document: Value,
    /// When the entry was first created (since its last deletion).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// 1 at creation, incremented by every put.
    pub version: i64,
}

impl TaskDb {
    /// The entry as a filter sees it (see [`Store`](crate::Store#filters)): the document's
    /// fields with `task_listing_db_id`, `created_ms`, `updated_ms` and `version` overlaid.
    pub fn filter_view(&self) -> Value {
        overlay(
            &self.document,
            [
                ("task_listing_db_id", Value::from(self.task_listing_db_id.as_str())),
                ("created_ms", Value::from(self.created_ms)),
                ("updated_ms", Value::from(self.updated_ms)),
                ("version", Value::from(self.version)),
            ],
        )
    }
}

/// An organisation: a group of agents that can subscribe to task databases as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    /// The key.
    pub org_id: String,
    /// The original `OrgObject` fields, opaque to the store; by convention its members'
    /// agent ids are in `members` (see [`Org::members`]).
    pub document: Value,
    /// When the organisation was first created (since its last deletion).
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
    /// 1 at creation, incremented by every put.
    pub version: i64,
}

impl Org {
    /// The strings of the document's `members` array (the agent ids); nothing when there
    /// is no such array.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.document.get("members").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    }
}

/// An agent's card (its capabilities, endpoint, ...), as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCard {
    /// The key.
    pub agent_id: String,
    /// The card, opaque to the store.
    pub card: Value,
    /// When it was last put.
    pub updated_ms: i64,
}

impl AgentCard {
    /// The card as a filter sees it (see [`Store`](crate::Store#filters)): its fields with
    /// `agent_id` and `updated_ms` overlaid.
    pub fn filter_view(&self) -> Value {
        overlay(
            &self.card,
            [("agent_id", Value::from(self.agent_id.as_str())), ("updated_ms", Value::from(self.updated_ms))],
        )
    }
}

/// An API key of the HTTP API as the store keeps it: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's public id (the part of the key before its secret).
    pub key_id: String,
    /// The organisation the key acts for.
    pub org_id: String,
    /// What the key may do (`submit`, `read`, `admin`), in the caller's vocabulary: the
    /// store only keeps them.
    pub scopes: Vec<String>,
    /// Lower-case hex SHA-256 of the key's secret.
    pub secret_hash: String,
    /// A note for people (who the key was given to).
    pub label: String,
    /// When it was created.
    pub created_ms: i64,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_ms: Option<i64>,
}

/// A subject (an agent id or an organisation id) following a task database's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The task database.
    pub taskdb: String,
    /// The agent or organisation.
    pub subject_id: String,
    /// When it subscribed.
    pub created_ms: i64,
}

/// How many jobs of one task database are in each state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDbJobCounts {
    /// The task database.
    pub taskdb: String,
    /// The count of each state that has jobs (states without jobs are absent).
    pub counts: BTreeMap<JobState, u64>,
}

impl TaskDbJobCounts {
    /// All jobs of the task database.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// The created-to-last-change latencies of a task database's completed jobs, in
/// milliseconds. Percentiles are nearest-rank: the smallest latency that at least that
/// share of the jobs do not exceed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// How many completed jobs.
    pub count: u64,
    /// The shortest.
    pub min_ms: i64,
    /// The median.
    pub p50_ms: i64,
    /// The 90th percentile.
    pub p90_ms: i64,
    /// The 99th percentile.
    pub p99_ms: i64,
    /// The longest.
    pub max_ms: i64,
    /// The sum, for a mean (`sum_ms / count`) or to merge summaries.
    pub sum_ms: i64,
}

/// A job template: a schema that submissions are checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The key.
    pub name: String,
    /// The schema, opaque to the store.
    pub schema: Value,
    /// When the template was first put (a replacement keeps it).
    pub created_ms: i64,
}

/// What the database connection reports about durability, read back from the connection
/// rather than from the options the store asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Durability {
    /// SQLite's pragmas on the writing connection.
    Sqlite {
        /// `PRAGMA journal_mode`: `wal` expected.
        journal_mode: String,
        /// `PRAGMA synchronous` by name: `FULL` expected (`EXTRA` is stronger still).
        synchronous: String,
        /// `PRAGMA foreign_keys`.
        foreign_keys: bool,
        /// `PRAGMA busy_timeout`, in milliseconds.
        busy_timeout_ms: i64,
    },
    /// PostgreSQL's settings on a pooled connection.
    Postgres {
        /// `SHOW synchronous_commit`: `on` expected (`remote_write`, `remote_apply` are
        /// stronger with synchronous replicas).
        synchronous_commit: String,
        /// `SHOW fsync`: `on` expected; `off` makes every commit a lie.
        fsync: String,
    },
}

impl Durability {
    /// Whether a commit that returned survives a power loss of this machine.
    pub fn is_durable(&self) -> bool {
        match self {
            Self::Sqlite { journal_mode, synchronous, .. } => {
                journal_mode.eq_ignore_ascii_case("wal") && matches!(synchronous.as_str(), "FULL" | "EXTRA")
            }
            Self::Postgres { synchronous_commit, fsync } => {
                fsync == "on" && matches!(synchronous_commit.as_str(), "on" | "remote_write" | "remote_apply")
            }
        }
    }
}
