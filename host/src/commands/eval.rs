//! `fewshot eval`: estimate subnet accuracies with a run's trained supernets.

use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use clap::Args;
use fewshot_core::util::files::write_atomic;

use crate::{
    cli::arch_args::ArchArgs,
    config::EvalSplit,
    io::{csv::estimates_csv, output::print},
    plugin_host::registry::Registry,
    run_dir::RunDir,
    stages::{eval::evaluate, Run},
};

/// Arguments of `fewshot eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory of a trained run.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    #[command(flatten)]
    pub which: ArchArgs,
    /// Images to evaluate on: the validation half or the test set.
    #[arg(long, value_enum, default_value_t = EvalSplit::Valid, hide_possible_values = true)]
    pub split: EvalSplit,
    /// Recalibrate BatchNorm on this many training batches before each architecture.
    #[arg(long, value_name = "N")]
    pub bn_recalibrate: Option<usize>,
    /// Images per evaluation batch (BatchNorm uses each batch's statistics).
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Write the CSV here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs `fewshot eval`.
pub fn run(args: &EvalArgs, registry: Arc<Registry>) -> Result<()> {
    let mut run = Run::open(RunDir::new(&args.run), registry)?;
    if let Some(n) = args.bn_recalibrate {
        run.config.eval.bn_recalibrate = n;
    }
    if let Some(n) = args.batch {
        if n < 2 {
            bail!("--batch must be at least 2 (BatchNorm uses batch statistics)");
        }
        run.config.eval.batch_size = n;
    }
    let archs = args.which.select(&run.plan, |text| run.parse(text))?;
    let estimates = evaluate(&run, &archs, args.split, archs.len() > 1)?;
    let rows = estimates.iter().map(|e| Ok((run.text(&e.arch)?, e.subspace, e.accuracy))).collect::<Result<Vec<_>>>()?;
    let csv = estimates_csv(&rows)?;
    match &args.output {
        Some(path) => write_atomic(path, csv.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?,
        None => print(&csv)?,
    }
    Ok(())
}
