//! `fewshot compare`: the same pipeline once per activation (e.g. ReLU, tanh, GELU), then one
//! comparison table and plot. Each activation gets its own run directory under `--out`, so the
//! comparison resumes like `fewshot run`.

use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Result};
use clap::Args;

use crate::{
    cli::run_options::RunOptions,
    io::{output::print, table::render},
    plugin_host::registry::Registry,
    stages::compare::compare,
};

/// Arguments of `fewshot compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Activations to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu,tanh,gelu")]
    pub activations: Vec<String>,
    /// Folder of the comparison (one run directory per activation inside).
    #[arg(long, value_name = "DIR", default_value = "runs/compare")]
    pub out: PathBuf,
}

/// Runs `fewshot compare`.
pub fn run(args: &CompareArgs, registry: Arc<Registry>) -> Result<()> {
    if args.activations.is_empty() {
        bail!("--activations names no activation");
    }
    if args.options.activation.is_some() {
        bail!("give the activations with --activations, not --activation");
    }
    let compared = compare(&args.out, &args.options.resolve()?, &args.activations, registry)?;
    print(&format!("{}\ncomparison: {}\n", render(&compared.headers, &compared.rows), compared.report.display()))?;
    Ok(())
}
