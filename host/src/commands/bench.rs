//! `fewshot bench`: speed benchmarks of the engine.

use anyhow::Result;
use clap::Subcommand;

use crate::registry::Registry;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the SBS training step of the reference workload (K NB201 supernets, one subnet per
    /// supernet per step, losses summed, one SGD update) and print the median ms/step.
    Step(super::bench_step::StepArgs),
}

/// Runs `fewshot bench ...`.
pub fn run(command: &BenchCommand, registry: &Registry) -> Result<()> {
    match command {
        BenchCommand::Step(args) => super::bench_step::run(args, registry),
    }
}
