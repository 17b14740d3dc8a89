//! `xchange cluster status`: the nodes that share a store, the partitions of the jobs and
//! who leases each, as one node reads them from the store (`GET /v1/cluster`).

use std::fmt::Write as _;

use anyhow::Context;
use serde_json::Value;

use crate::client::ServerArgs;

/// Commands about the nodes that share one store.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// Show the nodes, their partitions, the leases and their lag.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Any node of the cluster.
    #[command(flatten)]
    server: ServerArgs,
    /// Print the node's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Status(args) = command;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let status = rt.block_on(args.server.call(reqwest::Method::GET, "/v1/cluster", None))?;
    if args.json {
        println!("{status}");
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

/// The status as a table: one line per node with its partitions, then one per partition.
fn render(status: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let nodes = status["nodes"].as_array().unwrap_or(&empty);
    let partitions = status["partitions"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        out,
        "cluster: {} nodes ({} alive), {} partitions, lease {} ms; answered by {}",
        nodes.len(),
        nodes.iter().filter(|n| n["alive"] == true).count(),
        partitions.len(),
        status["lease_ms"],
        status["node_id"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(out, "\n{:<46} {:<5} {:>8}  {:<28} partitions", "node", "alive", "seen ago", "url");
    for node in nodes {
        let held: Vec<String> =
            node["partitions"].as_array().unwrap_or(&empty).iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            out,
            "{:<46} {:<5} {:>6}ms  {:<28} {} [{}]",
            node["node_id"].as_str().unwrap_or("?"),
            if node["alive"] == true { "yes" } else { "no" },
            node["seen_ms_ago"],
            node["url"].as_str().unwrap_or("?"),
            held.len(),
            held.join(" "),
        );
    }
    let _ = writeln!(out, "\n{:>9}  {:<46} {:>6} {:>12}", "partition", "owner", "epoch", "expires in");
    for p in partitions {
        let expires =
            if p["live"] == true { format!("{}ms", p["expires_in_ms"]) } else { "lapsed".to_owned() };
        let _ = writeln!(
            out,
            "{:>9}  {:<46} {:>6} {:>12}",
            p["partition"],
            p["owner"].as_str().unwrap_or("-"),
            p["epoch"],
            expires,
        );
    }
    let lag = match status["relay_lag"].as_i64() {
        Some(n) => format!("{n} events"),
        None => "no relay".to_owned(),
    };
    let _ = writeln!(out, "\nthis node: {} jobs running, relay lag {lag}", status["running_jobs"]);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_lists_each_nodes_partitions() {
        let status = json!({
            "node_id": "a", "lease_ms": 2000, "running_jobs": 3, "relay_lag": 0,
            "nodes": [
                {"node_id": "a", "url": "http://a", "alive": true, "seen_ms_ago": 12, "partitions": [0, 2]},
                {"node_id": "b", "url": "http://b", "alive": false, "seen_ms_ago": 9000, "partitions": []}
            ],
            "partitions": [
                {"partition": 0, "owner": "a", "epoch": 3, "live": true, "expires_in_ms": 1500},
                {"partition": 1, "owner": null, "epoch": 1, "live": false, "expires_in_ms": 0},
                {"partition": 2, "owner": "a", "epoch": 1, "live": true, "expires_in_ms": 1400}
            ]
        });
        let text = render(&status);
        assert!(text.starts_with("cluster: 2 nodes (1 alive), 3 partitions, lease 2000 ms"), "{text}");
        assert!(text.lines().any(|l| l.starts_with('a') && l.ends_with("2 [0 2]")), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with('b') && l.contains(" no ") && l.ends_with("0 []")),
            "{text}"
        );
        assert!(text.lines().any(|l| l.trim_start().starts_with("1  -") && l.ends_with("lapsed")), "{text}");
    }
}
