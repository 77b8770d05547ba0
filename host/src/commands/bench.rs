//! `fewshot bench`: speed benchmarks of the pipeline's stages (planning, the training step).

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
    /// Time the SBS training step of the reference workload (K NB201 supernets, one subnet per
    /// supernet per step, losses summed, one SGD update) and print the median ms/step.
    Step(super::bench_step::StepArgs),
}

/// Runs `fewshot bench`.
pub fn run(args: &BenchArgs, registry: &Registry) -> Result<()> {
    match &args.command {
        BenchCommand::Plan(a) => bench_plan::run(a, registry),
        BenchCommand::Step(a) => super::bench_step::run(a, registry),
    }
}
