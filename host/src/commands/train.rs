//! `fewshot train`: train the K supernets of a split, one per subspace, with a sampler.

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use clap::Args;

use crate::{
    cli::run_options::RunOptions,
    plugin_host::registry::Registry,
    run_dir::RunDir,
    stages::{plan, train, Run},
};

/// Arguments of `fewshot train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Run directory (created; holds the configuration, checkpoints and metrics.jsonl).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint, with its stored configuration.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs, as if interrupted (continue later with --resume).
    #[arg(long, value_name = "EPOCHS")]
    pub stop_after: Option<usize>,
}

/// Runs `fewshot train`.
pub fn run(args: &TrainArgs, registry: Arc<Registry>) -> Result<()> {
    let config = args.options.config_for(&args.out, args.resume)?;
    let run = Run::create(RunDir::new(&args.out), config, registry)?;
    eprint!("{}", plan::table(&run.write_plan()?));
    train::train(&run, args.resume, args.stop_after, true)?;
    eprintln!("{}", train::summary(&run)?);
    Ok(())
}
