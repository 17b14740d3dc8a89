//! `xchange bench`: programs that print figures.

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// No-op tasks through the whole loop in one process.
    Inproc(InprocArgs),
}

/// Options of `xchange bench inproc`.
#[derive(Debug, clap::Args)]
pub(crate) struct InprocArgs {}

pub(crate) fn inproc(_args: InprocArgs) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
