//! `fewshot search`: evolutionary (or random) search with a run's trained supernets as the
//! evaluator.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use clap::Args;
use fewshot_core::files::write_atomic;

use crate::{
    config::CONFIG_FILE,
    registry::Registry,
    workflow::{Run, SEARCH_STATE_FILE},
};

/// Arguments of `fewshot search`; options given override the run's `[search]` settings (and are
/// stored in its config.toml).
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Run directory of a trained run.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// `evolution` or `random` (the same evaluation budget).
    #[arg(long)]
    pub strategy: Option<String>,
    /// Candidates per generation.
    #[arg(long)]
    pub population: Option<usize>,
    /// Generations after the initial random one.
    #[arg(long)]
    pub generations: Option<usize>,
    /// Parents kept for mutation and crossover.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Mutated children per generation.
    #[arg(long)]
    pub mutations: Option<usize>,
    /// Per-position mutation probability.
    #[arg(long)]
    pub mutation_prob: Option<f64>,
    /// Crossover children per generation.
    #[arg(long)]
    pub crossovers: Option<usize>,
    /// Largest FLOPs (millions, full width) of a legal candidate.
    #[arg(long, value_name = "M")]
    pub flops_max: Option<f64>,
    /// Smallest FLOPs (millions, full width) of a legal candidate.
    #[arg(long, value_name = "M")]
    pub flops_min: Option<f64>,
    /// Largest parameter count (millions, full width) of a legal candidate.
    #[arg(long, value_name = "M")]
    pub params_max: Option<f64>,
    /// Recalibrate BatchNorm on this many training batches before scoring each candidate.
    #[arg(long, value_name = "N")]
    pub bn_recalibrate: Option<usize>,
    /// Discard a previous (finished or interrupted) search of this run and start over.
    #[arg(long)]
    pub restart: bool,
}

/// Runs `fewshot search`.
pub fn run(args: &SearchArgs, registry: Arc<Registry>) -> Result<()> {
    let mut run = Run::open(&args.run, registry)?;
    let before = run.config.clone();
    let s = &mut run.config.search;
    if let Some(v) = &args.strategy {
        s.strategy = v.clone();
    }
    for (target, value) in [(&mut s.population, args.population), (&mut s.generations, args.generations)] {
        if let Some(v) = value {
            *target = v;
        }
    }
    for (target, value) in [(&mut s.top_k, args.top_k), (&mut s.mutations, args.mutations), (&mut s.crossovers, args.crossovers)] {
        if value.is_some() {
            *target = value;
        }
    }
    if let Some(p) = args.mutation_prob {
        s.mutation_prob = p;
    }
    for (target, value) in [(&mut s.flops_max, args.flops_max), (&mut s.flops_min, args.flops_min), (&mut s.params_max, args.params_max)] {
        if value.is_some() {
            *target = value;
        }
    }
    if let Some(n) = args.bn_recalibrate {
        run.config.eval.bn_recalibrate = n;
    }
    run.config.validate()?;
    if run.config != before {
        let path = run.file(CONFIG_FILE);
        write_atomic(&path, run.config.to_toml()?.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.restart {
        let state = run.file(SEARCH_STATE_FILE);
        if state.exists() {
            std::fs::remove_file(&state).with_context(|| format!("cannot remove {}", state.display()))?;
        }
    }
    let state = run.search(true)?;
    println!("{}", run.search_summary(&state, 5)?);
    Ok(())
}
