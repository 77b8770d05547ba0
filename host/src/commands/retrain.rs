//! `fewshot retrain`: train the architectures a run found from scratch, as stand-alone networks
//! at full width, and show their test accuracies (beside the truth when there is one).

use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Result};
use clap::Args;

use crate::{
    io::output,
    plugin_host::registry::Registry,
    run_dir::RunDir,
    stages::{
        retrain::{self, Recipe, RecipeOverrides, RetrainPlan},
        Run,
    },
};

/// Arguments of `fewshot retrain`.
#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The run whose search found the architectures (its data, space and seed are used).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Retrain the K best architectures of the run's search (its own ranking; 1 = best.json's).
    #[arg(long, value_name = "K", conflicts_with = "arch")]
    pub top: Option<usize>,
    /// Retrain this architecture (repeatable).
    #[arg(long, value_name = "STR")]
    pub arch: Vec<String>,
    /// Training recipe (default: mobilenet for the MobileNet space, else nb201).
    #[arg(long, value_enum)]
    pub recipe: Option<Recipe>,
    /// Space of the stand-alone networks (default: the run's, e.g. `nb201` for the benchmark's
    /// own network when the run searched a reduced one).
    #[arg(long, value_name = "SPEC")]
    pub space: Option<String>,
    /// Epochs (default: the recipe's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step (default: the recipe's; another one scales the recipe's learning rate
    /// by the same factor unless --lr is given).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Starting learning rate (default: the recipe's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay (default: the recipe's).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Label smoothing (default: the recipe's).
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Train on a class-stratified subset of this many images (default: the whole training split).
    #[arg(long, value_name = "N")]
    pub train_images: Option<usize>,
    /// Evaluate on a class-stratified subset of this many test images (default: all).
    #[arg(long, value_name = "N")]
    pub test_images: Option<usize>,
    /// Ground truth to show beside the accuracies (default: the run's `rank.truth`).
    #[arg(long, value_name = "CSV")]
    pub truth: Option<PathBuf>,
    /// Output directory (default: RUN/retrain).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted retrain in --out (finished architectures are kept).
    #[arg(long)]
    pub resume: bool,
}

/// Runs `fewshot retrain`.
pub fn run(args: &RetrainArgs, registry: Arc<Registry>) -> Result<()> {
    let run = Run::open(RunDir::new(&args.run), registry.clone())?;
    let archs = match (args.top, args.arch.is_empty()) {
        (Some(0), _) => bail!("--top must be at least 1"),
        (Some(k), _) => retrain::top_archs(&run, k)?,
        (None, false) => args.arch.clone(),
        (None, true) => retrain::top_archs(&run, 1)?,
    };
    let space = args.space.clone().unwrap_or_else(|| run.config.space_spec());
    let recipe = args.recipe.unwrap_or_else(|| Recipe::for_space(&space));
    let overrides = RecipeOverrides {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        label_smoothing: args.label_smoothing,
    };
    let truth = args.truth.clone().or_else(|| run.config.rank.truth.clone());
    let plan = RetrainPlan {
        archs,
        space,
        recipe: recipe.name(),
        config: overrides.apply(recipe.train_config(run.config.seed)),
        out: args.out.clone().unwrap_or_else(|| args.run.join(retrain::DEFAULT_DIR)),
        resume: args.resume,
        train_images: args.train_images,
        test_images: args.test_images,
        truth: truth.map(|t| (t, run.config.rank.truth_column.clone())),
    };
    let (_, table) = retrain::retrain(&run, &registry, &plan, true)?;
    output::print(&table)?;
    Ok(())
}
