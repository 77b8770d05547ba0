//! `fewshot train`: train the K supernets of a split, one per subspace, with a sampler.

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use clap::Args;

use super::run_options::RunOptions;
use crate::{
    config::{RunConfig, CONFIG_FILE},
    registry::Registry,
    workflow::Run,
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

/// The configuration of a run directory that is resumed: the stored one with the overrides.
pub fn resumed_config(out: &std::path::Path, options: &RunOptions) -> Result<RunConfig> {
    let mut config = RunConfig::read(&out.join(CONFIG_FILE))?;
    options.apply(&mut config)?;
    Ok(config)
}

/// Runs `fewshot train`.
pub fn run(args: &TrainArgs, registry: Arc<Registry>) -> Result<()> {
    let config = if args.resume { resumed_config(&args.out, &args.options)? } else { args.options.resolve()? };
    let run = Run::create(&args.out, config, registry)?;
    let plan = run.write_plan()?;
    eprint!("{}", super::split::table(&plan));
    run.train(args.resume, args.stop_after, true)?;
    eprintln!("{}", run.training_summary()?);
    Ok(())
}
