//! `fewshot eval`: estimate subnet accuracies with a run's trained supernets.

use std::{path::PathBuf, sync::Arc};

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args};
use fewshot_core::{space::odometer::Odometer, util::files::write_atomic};
use fewshot_sdk::Arch;

use super::split::csv_fields;
use crate::{
    output::print,
    registry::Registry,
    workflow::{EvalSplit, Run},
};

/// Largest number of architectures `--all` evaluates.
const ALL_LIMIT: u128 = 1_000_000;

/// Arguments of `fewshot eval`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["arch", "archs", "all"])))]
pub struct EvalArgs {
    /// Run directory of a trained run.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// One architecture, in the space's text form.
    #[arg(long, value_name = "TEXT")]
    pub arch: Option<String>,
    /// A file of architectures: one per line, or a CSV with an `arch` column.
    #[arg(long, value_name = "FILE")]
    pub archs: Option<PathBuf>,
    /// Every architecture of the space (spaces of up to a million architectures).
    #[arg(long)]
    pub all: bool,
    /// Images to evaluate on: the validation half or the test set.
    #[arg(long, default_value = "valid")]
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
    let mut run = Run::open(&args.run, registry)?;
    if let Some(n) = args.bn_recalibrate {
        run.config.eval.bn_recalibrate = n;
    }
    if let Some(n) = args.batch {
        if n < 2 {
            bail!("--batch must be at least 2 (BatchNorm uses batch statistics)");
        }
        run.config.eval.batch_size = n;
    }
    let archs = architectures(args, &run)?;
    let estimates = run.evaluate(&archs, args.split, archs.len() > 1)?;
    let mut csv = String::from("arch,subspace,accuracy\n");
    for e in &estimates {
        csv.push_str(&format!("{},{},{}\n", run.text(&e.arch)?, e.subspace, e.accuracy));
    }
    match &args.output {
        Some(path) => write_atomic(path, csv.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?,
        None => print(&csv)?,
    }
    Ok(())
}

/// The architectures the arguments name.
fn architectures(args: &EvalArgs, run: &Run) -> Result<Vec<Arch>> {
    if let Some(text) = &args.arch {
        return Ok(vec![run.parse(text)?]);
    }
    if let Some(path) = &args.archs {
        return read_archs(path, run);
    }
    let total = run.plan.total();
    if total > ALL_LIMIT {
        bail!("the space has {total} architectures; --all evaluates at most {ALL_LIMIT} (give --archs FILE)");
    }
    let mut archs = Vec::with_capacity(total as usize);
    let mut odometer = Odometer::new(run.plan.option_counts());
    while let Some(choices) = odometer.advance() {
        let arch = Arch::new(choices.to_vec());
        if run.plan.info(&arch).is_ok() {
            archs.push(arch);
        }
    }
    Ok(archs)
}

/// Architectures from a file: one per line (blank lines and `#` comments skipped), or a CSV
/// whose header has an `arch` column.
fn read_archs(path: &std::path::Path, run: &Run) -> Result<Vec<Arch>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#')).peekable();
    let column = match lines.peek() {
        Some((_, first)) => csv_fields(first).iter().position(|h| h.trim() == "arch"),
        None => bail!("{} lists no architecture", path.display()),
    };
    if column.is_some() {
        lines.next();
    }
    let mut archs = Vec::new();
    for (i, line) in lines {
        let text = match column {
            Some(c) => csv_fields(line).get(c).cloned().ok_or_else(|| anyhow!("{} line {}: no `arch` field", path.display(), i + 1))?,
            None => line.trim().to_string(),
        };
        archs.push(run.parse(text.trim()).with_context(|| format!("{} line {}", path.display(), i + 1))?);
    }
    if archs.is_empty() {
        bail!("{} lists no architecture", path.display());
    }
    Ok(archs)
}
