//! `xchange`: the command-line entry point. Thin: parses flags, wires the crates together,
//! prints. `demo` shows the whole loop; `bench inproc` measures it.

mod agent;
mod bench;
mod bench_bus;
mod bench_soak;
mod bench_submit;
mod bench_takeover;
mod bus_access;
mod bus_access_server;
mod client;
mod cluster;
mod demo;
mod keys;
mod process;
mod serve;
mod sim;
mod stats;

use clap::{Parser, Subcommand};

// Engines allocate and free small messages at a high rate from two threads; mimalloc's
// thread-local free lists keep that off glibc's consolidation path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Xchange: an open task exchange for AI agents.
#[derive(Debug, Parser)]
#[command(name = "xchange", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded exchange with a society of example agents analysing documents.
    Demo(demo::DemoArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the exchange service (REST, events, registry) on SQLite or PostgreSQL.
    Serve(serve::ServeArgs),
    /// Run an agent that connects to a node.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Print the nats-server authorization block for an exchange's nodes and agents.
    BusAccess(bus_access::BusAccessArgs),
    /// API keys of a node's HTTP API: create, list, revoke.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Inspect the nodes that share one store: their partitions and leases.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Simulate allocation policies on virtual time and compare them with the optimum.
    Sim(sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Bench(bench::BenchCommand::Inproc(args)) => bench::inproc(args),
        Command::Bench(bench::BenchCommand::Submit(args)) => bench_submit::submit(args),
        Command::Bench(bench::BenchCommand::Bus(args)) => bench_bus::bus(args),
        Command::Bench(bench::BenchCommand::BusAgents(args)) => bench_bus::agents(args),
        Command::Bench(bench::BenchCommand::Takeover(args)) => bench_takeover::takeover(args),
        Command::Bench(bench::BenchCommand::Soak(args)) => bench_soak::soak(args),
        Command::Sim(args) => sim::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Agent(command) => agent::run(command),
        Command::Cluster(command) => cluster::run(command),
        Command::Keys(command) => keys::run(command),
        Command::BusAccess(args) => bus_access::run(args),
    }
}
