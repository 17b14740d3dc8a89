//! `xchange bus-access`: the nats-server `authorization` block for the nodes and agents of
//! an exchange (see `xchange_mesh::BusAccess`). Include it in the server's configuration
//! and reload the server (`nats-server --signal reload`) whenever an agent is added.

use anyhow::{Context, bail};
use xchange_mesh::{AgentAccess, BusAccess};
use xchange_protocol::AgentId;

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
}

pub(crate) fn run(args: BusAccessArgs) -> anyhow::Result<()> {
    print!("{}", access(&args)?.nats_config());
    Ok(())
}

fn access(args: &BusAccessArgs) -> anyhow::Result<BusAccess> {
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
    let mut agents = Vec::new();
    for spec in &args.agents {
        let (agent, dbs) = spec.split_once('=').unwrap_or((spec, ""));
        let member_of = dbs.split(',').filter(|d| !d.is_empty()).map(named).collect::<anyhow::Result<_>>()?;
        agents.push(AgentAccess { agent: id(agent)?, member_of });
    }
    let mut nodes: Vec<AgentId> = args.nodes.iter().map(|n| id(n)).collect::<anyhow::Result<_>>()?;
    for dir in &args.node_data {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(xchange_node::NODE_KEY_FILE);
        let (key, _) = xchange_node::keyfile::load_or_create_key(&path)?;
        nodes.push(key.id());
    }
    Ok(BusAccess {
        prefix: args.bus_prefix.clone(),
        nodes,
        agents,
        private_taskdbs: args.private_taskdbs.iter().map(|d| named(d)).collect::<anyhow::Result<_>>()?,
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
        access(&cli.args)
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
        assert_eq!(access.agents[0].member_of, ["secret", "ops"]);
        assert!(access.agents[1].member_of.is_empty());
        assert!(parse(&["--agent", "nobody"]).unwrap_err().to_string().contains("not an agent id"));
        assert!(parse(&["--private", "a.b"]).unwrap_err().to_string().contains("not a task database"));
        assert!(parse(&["--bus-prefix", "a b"]).is_err());
    }
}
