//! `xchange bus-access --from-server`: who may use the bus, read from a running node
//! instead of flags. The nodes are those of `GET /v1/cluster`; the agents are the members
//! of every organisation and every agent subscribed to a database by itself; an agent is a
//! member of a private database when it, or an organisation it belongs to, is subscribed
//! to it. So adding an agent to an organisation (or subscribing it) and running the command
//! again, then reloading nats-server, is how an agent joins a permissioned bus.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde_json::Value;
use xchange_protocol::AgentId;

use crate::client::ServerArgs;

/// What the node knows: node ids, agents with the private databases they belong to, and
/// the private databases.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    pub(crate) nodes: Vec<AgentId>,
    pub(crate) agents: BTreeMap<AgentId, BTreeSet<String>>,
    pub(crate) private_taskdbs: BTreeSet<String>,
}

/// Every item of a paged list (`{items, next}`).
async fn all_pages(server: &ServerArgs, path: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page_path = match &after {
            Some(cursor) => format!("{path}?limit=1000&after={cursor}"),
            None => format!("{path}?limit=1000"),
        };
        let page = server.call(reqwest::Method::GET, &page_path, None).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}

fn agent_id(text: &str) -> anyhow::Result<AgentId> {
    text.parse().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("{text:?} is not an agent id"))
}

pub(crate) async fn learn(server: &ServerArgs) -> anyhow::Result<Learned> {
    let mut learned = Learned::default();
    let cluster = server.call(reqwest::Method::GET, "/v1/cluster", None).await?;
    for node in cluster["nodes"].as_array().into_iter().flatten() {
        learned.nodes.push(agent_id(node["node_id"].as_str().unwrap_or_default())?);
    }
    let mut members: BTreeMap<String, Vec<AgentId>> = BTreeMap::new();
    for view in all_pages(server, "/v1/orgs").await? {
        let org = &view["org"];
        let ids = org["members"].as_array().into_iter().flatten().filter_map(Value::as_str);
        let ids: Vec<AgentId> = ids.map(agent_id).collect::<anyhow::Result<_>>()?;
        for id in &ids {
            learned.agents.entry(*id).or_default();
        }
        members.insert(org["org_id"].as_str().unwrap_or_default().to_owned(), ids);
    }
    for view in all_pages(server, "/v1/taskdbs").await? {
        let db = &view["entry"];
        if db["accessibility_data"]["visibility"] != "private" {
            continue;
        }
        let id = db["task_listing_db_id"].as_str().context("a registry entry without its id")?.to_owned();
        for sub in all_pages(server, &format!("/v1/taskdbs/{id}/subscribers")).await? {
            let subject = sub["subject_id"].as_str().unwrap_or_default();
            let agents = match subject.parse::<AgentId>() {
                Ok(agent) => vec![agent],
                Err(_) => members.get(subject).cloned().unwrap_or_default(),
            };
            for agent in agents {
                learned.agents.entry(agent).or_default().insert(id.clone());
            }
        }
        learned.private_taskdbs.insert(id);
    }
    Ok(learned)
}
