//! Options shared by `train`, `run` and `compare` (and the search options of `search`): a TOML
//! configuration file plus overrides of its most used keys, and `--set section.key=value` for
//! any other key. An override has no default of its own: unset, the configuration's value holds.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{builder::PossibleValuesParser, builder::TypedValueParser, Args};
use fewshot_core::{engine::backend::Device, search::Strategy};

use crate::{
    config::RunConfig,
    estimator::Estimator,
    run_dir::{RunDir, CONFIG_FILE},
};

/// The `--strategy` values (as `search.strategy` spells them), listed by `--help`.
fn strategy_parser() -> impl TypedValueParser<Value = Strategy> {
    PossibleValuesParser::new(["evolution", "random"]).try_map(|s| s.parse::<Strategy>())
}

/// Configuration of a run: `--config FILE.toml`, then these overrides.
#[derive(Args, Debug, Clone, Default)]
pub struct RunOptions {
    /// TOML configuration (see docs/user-guide.md); the options below override it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Search space: `nb201`, `mobilenet`, or `name:key=value,...` (e.g. `nb201:C=16,N=5`).
    #[arg(long, help_heading = "Space and split")]
    pub space: Option<String>,
    /// Activation of the space (relu, relu6, tanh, gelu, sigmoid, silu).
    #[arg(long, value_name = "KIND", help_heading = "Space and split")]
    pub activation: Option<String>,
    /// Counting rule: `enn`, `total`, `live` (or `name:params`).
    #[arg(long, help_heading = "Space and split")]
    pub rule: Option<String>,
    /// Splitter: `nonlin` (EFS-NAS), `none` (SPOS), `edge-op` (FS-NAS), `flops`, `params`,
    /// `random`, `proxy:score=NAME` (or `name:params`).
    #[arg(long, help_heading = "Space and split")]
    pub splitter: Option<String>,
    /// Count groups of the `nonlin` splitter, e.g. `0-1,2,3`.
    #[arg(long, value_name = "LIST", help_heading = "Space and split")]
    pub groups: Option<String>,
    /// Sampler: `sbs` (EFS-NAS), `uniform` (SPOS), `fair`, `group-uniform` (or `name:params`).
    #[arg(long, help_heading = "Training")]
    pub sampler: Option<String>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute device: cpu, reference (the GPU code path on the CPU, for checks), cuda or cuda:N.
    #[arg(long)]
    pub device: Option<Device>,
    /// Images: a CIFAR-10 binary folder or an ImageFolder tree (default: built-in generated
    /// images).
    #[arg(long, value_name = "PATH", help_heading = "Data")]
    pub data: Option<PathBuf>,
    /// Use a class-stratified subset of this many supernet-training images.
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub train_images: Option<usize>,
    /// Use a class-stratified subset of this many validation images.
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub valid_images: Option<usize>,
    /// Use a class-stratified subset of this many test images.
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub test_images: Option<usize>,
    /// Resize images to N×N on load (area averaging; e.g. 16 for reduced-fidelity supernets);
    /// the space's input resolution follows.
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub resolution: Option<usize>,
    /// Training epochs.
    #[arg(long, help_heading = "Training")]
    pub epochs: Option<usize>,
    /// Images per training step.
    #[arg(long, help_heading = "Training")]
    pub batch: Option<usize>,
    /// Channel divisor c of the supernets.
    #[arg(long, value_name = "C", help_heading = "Training")]
    pub channel_divisor: Option<f64>,
    /// Starting learning rate.
    #[arg(long, help_heading = "Training")]
    pub lr: Option<f64>,
    /// What ranks and searches architectures: `supernet`, a zero-cost proxy (`naswot`, `az`,
    /// `synflow`, `snip`; no training then) or an ensemble joined by `+`, e.g. `supernet+az`
    /// (the sum of log-ranks).
    #[arg(long, value_name = "NAME", help_heading = "Ranking")]
    pub estimator: Option<Estimator>,
    #[command(flatten)]
    pub search: SearchOptions,
    /// Ground-truth table (e.g. ../shared/data/nb201/nb201.csv) to rank the supernets against.
    #[arg(long, value_name = "CSV", help_heading = "Ranking")]
    pub truth: Option<PathBuf>,
    /// Column of the ground truth.
    #[arg(long, value_name = "COLUMN", help_heading = "Ranking")]
    pub truth_column: Option<String>,
    /// Architectures to rank (drawn uniformly; 0 = all).
    #[arg(long, value_name = "N", help_heading = "Ranking")]
    pub rank_archs: Option<usize>,
    /// Any other setting, as `section.key=value` (repeatable), e.g. `train.momentum=0.8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

impl RunOptions {
    /// The configuration file (or the defaults) with every override applied.
    pub fn resolve(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => RunConfig::read_for(path, self.space.as_deref())?,
            None => RunConfig::for_space(self.space.as_deref().unwrap_or(crate::config::defaults::SPACE)),
        };
        self.apply(&mut c)?;
        Ok(c)
    }

    /// The configuration of a run in `dir`: when resumed, the stored one with the overrides
    /// applied, else [`RunOptions::resolve`].
    pub fn config_for(&self, dir: &Path, resume: bool) -> Result<RunConfig> {
        if !resume {
            return self.resolve();
        }
        let mut config = RunConfig::read(&RunDir::new(dir).file(CONFIG_FILE))?;
        self.apply(&mut config)?;
        Ok(config)
    }

    /// Applies the overrides to `c`.
    pub fn apply(&self, c: &mut RunConfig) -> Result<()> {
        set(&mut c.space.spec, &self.space);
        set_some(&mut c.space.activation, &self.activation);
        set(&mut c.split.rule, &self.rule);
        set(&mut c.split.splitter, &self.splitter);
        set_some(&mut c.split.groups, &self.groups);
        set(&mut c.train.sampler, &self.sampler);
        set(&mut c.seed, &self.seed);
        set(&mut c.device, &self.device);
        set_some(&mut c.data.path, &self.data);
        set_some(&mut c.data.train_images, &self.train_images);
        set_some(&mut c.data.valid_images, &self.valid_images);
        set_some(&mut c.data.test_images, &self.test_images);
        set_some(&mut c.data.resolution, &self.resolution);
        set(&mut c.train.epochs, &self.epochs);
        set(&mut c.train.batch_size, &self.batch);
        set(&mut c.train.channel_divisor, &self.channel_divisor);
        set(&mut c.train.lr, &self.lr);
        set(&mut c.eval.estimator, &self.estimator);
        self.search.apply(c);
        set_some(&mut c.rank.truth, &self.truth);
        set(&mut c.rank.truth_column, &self.truth_column);
        set(&mut c.rank.archs, &self.rank_archs);
        c.apply_sets(&self.sets)
    }
}

/// Search settings, shared by `run`, `train` (stored for later) and `search`.
#[derive(Args, Debug, Clone, Default)]
pub struct SearchOptions {
    /// Search strategy: `evolution` or `random` (the same evaluation budget).
    #[arg(long, help_heading = "Search", value_parser = strategy_parser())]
    pub strategy: Option<Strategy>,
    /// Candidates per generation.
    #[arg(long, help_heading = "Search")]
    pub population: Option<usize>,
    /// Generations after the initial random one.
    #[arg(long, help_heading = "Search")]
    pub generations: Option<usize>,
    /// Parents kept for mutation and crossover (default 10, at most the population).
    #[arg(long, help_heading = "Search")]
    pub top_k: Option<usize>,
    /// Mutated children per generation (default half the population).
    #[arg(long, help_heading = "Search")]
    pub mutations: Option<usize>,
    /// Per-position mutation probability.
    #[arg(long, help_heading = "Search")]
    pub mutation_prob: Option<f64>,
    /// Crossover children per generation (default half the population).
    #[arg(long, help_heading = "Search")]
    pub crossovers: Option<usize>,
    /// Largest FLOPs (millions, full width) of a candidate.
    #[arg(long, value_name = "M", help_heading = "Search")]
    pub flops_max: Option<f64>,
    /// Smallest FLOPs (millions, full width) of a candidate.
    #[arg(long, value_name = "M", help_heading = "Search")]
    pub flops_min: Option<f64>,
    /// Largest parameter count (millions, full width) of a candidate.
    #[arg(long, value_name = "M", help_heading = "Search")]
    pub params_max: Option<f64>,
    /// Recalibrate BatchNorm on this many training batches before scoring each architecture.
    #[arg(long, value_name = "N", help_heading = "Search")]
    pub bn_recalibrate: Option<usize>,
}

impl SearchOptions {
    /// Applies the options given to `c`.
    pub fn apply(&self, c: &mut RunConfig) {
        let s = &mut c.search;
        set(&mut s.strategy, &self.strategy);
        set(&mut s.population, &self.population);
        set(&mut s.generations, &self.generations);
        set(&mut s.mutation_prob, &self.mutation_prob);
        set_some(&mut s.top_k, &self.top_k);
        set_some(&mut s.mutations, &self.mutations);
        set_some(&mut s.crossovers, &self.crossovers);
        set_some(&mut s.flops_max, &self.flops_max);
        set_some(&mut s.flops_min, &self.flops_min);
        set_some(&mut s.params_max, &self.params_max);
        set(&mut c.eval.bn_recalibrate, &self.bn_recalibrate);
    }
}

/// Overwrites `target` when a value was given.
fn set<T: Clone>(target: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *target = v.clone();
    }
}

/// Overwrites an optional setting when a value was given.
fn set_some<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
    if value.is_some() {
        target.clone_from(value);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        options: RunOptions,
    }

    #[test]
    fn overrides_parse_typed_and_leave_unset_keys_to_the_configuration() {
        let cli = Cli::try_parse_from(["t", "--strategy", "random", "--device", "cuda:1", "--epochs", "5"]).unwrap();
        let c = cli.options.resolve().unwrap();
        assert_eq!((c.search.strategy, c.device, c.train.epochs), (Strategy::Random, Device::Cuda(1), 5));
        assert_eq!(c.train.batch_size, RunConfig::default().train.batch_size);
        assert!(Cli::try_parse_from(["t", "--strategy", "greedy"]).is_err());
        assert!(Cli::try_parse_from(["t", "--device", "tpu"]).unwrap_err().to_string().contains("unknown device `tpu`"));
    }
}
