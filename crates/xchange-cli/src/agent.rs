//! `xchange agent run`: any program becomes a contractor of a node. Each task's input goes
//! to the program as JSON on stdin, its stdout (JSON) is the result, a non-zero exit is a
//! failure report. The agent connects over the node's WebSocket (`/v1/agents/connect`),
//! reconnects when the connection drops, and says goodbye on Ctrl-C or SIGTERM.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use data_encoding::HEXLOWER;
use xchange_core::ContractorProfile;
use xchange_protocol::AgentKey;
use xchange_runtime::ExecContractor;
use xchange_ws::{Backoff, ConnectOptions};

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Connect to a node and do its tasks with a program: input as JSON on stdin, result as
    /// JSON on stdout, a non-zero exit reports a failure.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The node's URL, http://host:port.
    #[arg(long, value_name = "URL")]
    server: String,
    /// A capability offered (repeat for several).
    #[arg(long = "capability", value_name = "NAME", required = true)]
    capabilities: Vec<String>,
    /// A pool served (repeat for several; none means every pool).
    #[arg(long = "pool", value_name = "NAME")]
    pools: Vec<String>,
    /// The command run for each task, with `sh -c`.
    #[arg(long, value_name = "CMD")]
    exec: String,
    /// The agent's key: a 32-byte Ed25519 seed in 64 hex digits, created if missing.
    /// Without it a new identity is made for this run.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// A bearer token for nodes that require one.
    #[arg(long, env = "XCHANGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Price per unit of task size asked in bids.
    #[arg(long, default_value_t = 10)]
    price: u64,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1)]
    capacity: u32,
    /// Seconds one execution may take before it is killed and reported failed.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

pub(crate) fn run(command: AgentCommand) -> anyhow::Result<()> {
    let AgentCommand::Run(args) = command;
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run_agent(args))
}

async fn run_agent(args: RunArgs) -> anyhow::Result<()> {
    crate::process::init_logs("warn");
    if args.capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    let key = match &args.key_file {
        Some(path) => load_or_create(path)?,
        None => {
            let key = AgentKey::from_seed(fresh_seed()?);
            eprintln!("agent {}: a new key for this run (--key-file keeps an identity)", key.id());
            key
        }
    };
    let profile = ContractorProfile {
        pools: args.pools.iter().map(|p| Arc::from(p.as_str())).collect::<Vec<_>>().into(),
        capacity: args.capacity,
        price_per_unit: args.price,
        ..ContractorProfile::new(args.capabilities.iter().map(String::as_str))
    };
    let behavior =
        Arc::new(ExecContractor::new(args.exec.as_str()).timeout(Duration::from_secs(args.timeout_secs)));
    let options = ConnectOptions {
        token: args.token.clone(),
        reconnect: Some(Backoff::default()),
        ..ConnectOptions::new(key, profile, behavior)
    };
    let mut agent = xchange_ws::connect(&args.server, options)
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    eprintln!(
        "agent {} connected to {}, offering {} with `{}`",
        agent.id(),
        args.server,
        args.capabilities.join(", "),
        args.exec
    );
    tokio::select! {
        ended = agent.wait() => return ended.context("the session ended"),
        signal = crate::process::terminated() => signal?,
    }
    eprintln!("shutting down");
    agent.shutdown().await.context("saying goodbye")?;
    eprintln!("disconnected");
    Ok(())
}

fn fresh_seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a new key: {e}"))?;
    Ok(seed)
}

/// The key in `path`, or a new one written there (readable by the owner only).
fn load_or_create(path: &Path) -> anyhow::Result<AgentKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let key = parse_seed(&text)
                .map(AgentKey::from_seed)
                .with_context(|| format!("key file {}", path.display()))?;
            eprintln!("agent {}: key from {}", key.id(), path.display());
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed = fresh_seed()?;
            let mut file =
                new_private_file(path).with_context(|| format!("creating key file {}", path.display()))?;
            writeln!(file, "{}", HEXLOWER.encode(&seed))?;
            let key = AgentKey::from_seed(seed);
            eprintln!("agent {}: new key written to {}", key.id(), path.display());
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
    }
}

fn parse_seed(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = HEXLOWER
        .decode(text.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("expected 64 hex digits (a 32-byte ed25519 seed)"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("expected 64 hex digits (a 32-byte ed25519 seed)"))
}

fn new_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let path = std::env::temp_dir().join(format!("xchange-agent-key-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let created = load_or_create(&path).unwrap();
        let read = load_or_create(&path).unwrap();
        assert_eq!(created.id(), read.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_key_files_are_refused() {
        for bad in ["", "abc", &"zz".repeat(32), &"00".repeat(31), &"00".repeat(33)] {
            assert!(parse_seed(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_seed(&format!("  {}\n", "0A".repeat(32))).unwrap(), [0x0a; 32]);
    }
}
