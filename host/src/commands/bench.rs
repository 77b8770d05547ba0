//! `fewshot bench`: speed benchmarks of the pipeline's stages.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::bench_plan::{self, BenchPlanArgs};
use crate::registry::Registry;

/// Arguments of `fewshot bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Split planning and architecture sampling: NB201 plan, exact MobileNet sizes, sampler
    /// throughput.
    Plan(BenchPlanArgs),
}

/// Runs `fewshot bench`.
pub fn run(args: &BenchArgs, registry: &Registry) -> Result<()> {
    match &args.command {
        BenchCommand::Plan(a) => bench_plan::run(a, registry),
    }
}
