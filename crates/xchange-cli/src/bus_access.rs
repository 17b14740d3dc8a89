//! `xchange bus-access`: the nats-server `authorization` block for the nodes and agents of
//! an exchange (see `xchange_mesh::BusAccess`). Include it in the server's configuration
//! and reload the server (`nats-server --signal reload`) whenever an agent is added.
//! With `--from-server` the nodes, agents and memberships are read from a running node
//! (`bus_access_server.rs`), and the flags add to them.

use anyhow::{Context, bail};
use xchange_mesh::{AgentAccess, BusAccess};
use xchange_protocol::AgentId;

use crate::bus_access_server::Learned;

/// Options of `xchange bus-access`.
#[derive(Debug, clap::Args)]
pub(crate) struct BusAccessArgs {
    /// Prefix of the bus's subjects and buckets.
    #[arg(long, env = "XCHANGE_BUS_PREFIX", default_value = xchange_bus::DEFAULT_PREFIX)]
    bus_prefix: String,
    /// A node's id (from its DATA/node.key); repeat for each node.
    #[arg(long = "node", value_name = "ID")]
    nodes: Vec<String>,
    /// A node's data folder: the node whose key is DATA/node.key (created there if
    /// missing, as the node itself would); repeat for each node.
    #[arg(long = "node-data", value_name = "DIR")]
    node_data: Vec<std::path::PathBuf>,
    /// An agent's id, with the private task databases it is a member of:
    /// `ID` or `ID=db1,db2`; repeat for each agent.
    #[arg(long = "agent", value_name = "ID[=DB,...]")]
    agents: Vec<String>,
    /// A private task database (its events are refused to agents that are not members);
    /// repeat for each.
    #[arg(long = "private", value_name = "DB")]
    private_taskdbs: Vec<String>,
    /// Read the nodes, organisations' agents and private databases' members from the node
    /// at --server (with an admin key).
    #[arg(long)]
    from_server: bool,
    #[command(flatten)]
    server: crate::client::ServerArgs,
}

pub(crate) fn run(args: BusAccessArgs) -> anyhow::Result<()> {
    let learned = if args.from_server {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(crate::bus_access_server::learn(&args.server))?
    } else {
        Learned::default()
    };
    print!("{}", access(&args, learned)?.nats_config());
    Ok(())
}

fn access(args: &BusAccessArgs, mut learned: Learned) -> anyhow::Result<BusAccess> {
    if !xchange_protocol::is_valid_name(&args.bus_prefix) {
        bail!("--bus-prefix must be 1-64 of [A-Za-z0-9_-]");
    }
    let id = |text: &str| -> anyhow::Result<AgentId> {
        text.parse()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{text:?} is not an agent id"))
    };
    let named = |db: &str| -> anyhow::Result<String> {
        if xchange_protocol::is_valid_name(db) {
            Ok(db.to_owned())
        } else {
            bail!("{db:?} is not a task database id")
        }
    };
    for spec in &args.agents {
        let (agent, dbs) = spec.split_once('=').unwrap_or((spec, ""));
        let member_of: Vec<String> =
            dbs.split(',').filter(|d| !d.is_empty()).map(named).collect::<anyhow::Result<_>>()?;
        learned.agents.entry(id(agent)?).or_default().extend(member_of);
    }
    for db in &args.private_taskdbs {
        learned.private_taskdbs.insert(named(db)?);
    }
    let mut nodes = learned.nodes;
    for node in &args.nodes {
        nodes.push(id(node)?);
    }
    for dir in &args.node_data {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(xchange_node::NODE_KEY_FILE);
        let (key, _) = xchange_node::keyfile::load_or_create_key(&path)?;
        nodes.push(key.id());
    }
    nodes.sort_unstable();
    nodes.dedup();
    let agents = learned
        .agents
        .into_iter()
        .map(|(agent, member_of)| AgentAccess { agent, member_of: member_of.into_iter().collect() })
        .collect();
    Ok(BusAccess {
        prefix: args.bus_prefix.clone(),
        nodes,
        agents,
        private_taskdbs: learned.private_taskdbs.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BusAccessArgs,
    }

    fn parse(argv: &[&str]) -> anyhow::Result<BusAccess> {
        let cli = Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))?;
        access(&cli.args, Learned::default())
    }

    #[test]
    fn agents_with_their_memberships_and_bad_input() {
        let a = AgentId::from_index(1, 1).to_string();
        let b = AgentId::from_index(1, 2).to_string();
        let access = parse(&[
            "--agent",
            &format!("{a}=secret,ops"),
            "--agent",
            &b,
            "--private",
            "secret",
            "--node",
            &a,
        ])
        .unwrap();
        assert_eq!(access.agents[0].member_of, ["ops", "secret"], "in name order");
        assert!(access.agents[1].member_of.is_empty());
        assert!(parse(&["--agent", "nobody"]).unwrap_err().to_string().contains("not an agent id"));
        assert!(parse(&["--private", "a.b"]).unwrap_err().to_string().contains("not a task database"));
        assert!(parse(&["--bus-prefix", "a b"]).is_err());
    }
}
