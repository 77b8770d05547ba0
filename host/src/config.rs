//! The configuration of a run: one TOML document (`--config FILE.toml`), overridden by
//! command-line options, and written resolved into the run directory as `config.toml`.
//!
//! The defaults make `fewshot run` with no argument a small but complete search on the CPU:
//! NB201 at channel divisor 2, the built-in generated dataset, 3 epochs of SBS training, a
//! short evolutionary search. Every section mirrors a stage of the pipeline. Values are kept
//! typed (device, BatchNorm mode, schedule, idle parameters, strategy, split) with their TOML
//! spelling; plugin specs and their parameters stay text.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use fewshot_core::{
    data::{Augment, DataConfig},
    engine::{backend::Device, supernet::NormMode},
    search::{SearchConfig, Strategy},
    train::{
        optim::{IdleParams, LrSchedule, SgdConfig},
        TrainConfig,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    estimator::Estimator,
    plugin_host::registry::{has_param, with_param},
};

/// Defaults of the keys that commands without a configuration file take as options too
/// (`fewshot split`, `fewshot rank`): the one source of both.
pub mod defaults {
    /// `space.spec`.
    pub const SPACE: &str = "nb201";
    /// `split.rule`.
    pub const RULE: &str = "enn";
    /// `split.splitter`.
    pub const SPLITTER: &str = "nonlin";
    /// `seed`.
    pub const SEED: u64 = 0;
    /// `rank.truth_column`.
    pub const TRUTH_COLUMN: &str = "c10_test_acc";
    /// `eval.estimator`: the best ranking measured within a few CPU minutes
    /// (docs/study/README.md); `supernet` is the EFS-NAS protocol.
    pub const ESTIMATOR: &str = "az+synflow";
}

/// Which images accuracies are estimated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EvalSplit {
    /// The validation half of the training set.
    Valid,
    /// The held-out test set.
    Test,
}

impl fmt::Display for EvalSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvalSplit::Valid => "valid",
            EvalSplit::Test => "test",
        })
    }
}

/// How the learning rate follows the steps (`train.schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine per epoch, constant within one (NB201).
    Epoch,
    /// Cosine per step.
    Iteration,
    /// The starting rate throughout.
    Constant,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schedule::Epoch => "epoch",
            Schedule::Iteration => "iteration",
            Schedule::Constant => "constant",
        })
    }
}

/// Values kept in TOML as the text they parse from (`FromStr`) and print as (`Display`).
mod text {
    use std::{fmt::Display, str::FromStr};

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// The whole configuration of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of every random choice (weights, data order, sampling, search).
    pub seed: u64,
    /// Compute device: `cpu`, `reference`, `cuda` or `cuda:N`.
    #[serde(with = "text")]
    pub device: Device,
    /// The search space.
    pub space: SpaceSection,
    /// How the space is split into subspaces.
    pub split: SplitSection,
    /// The images.
    pub data: DataSection,
    /// Supernet training.
    pub train: TrainSection,
    /// Accuracy estimation with the supernets.
    pub eval: EvalSection,
    /// Evolutionary search.
    pub search: SearchSection,
    /// Rank correlation against a ground-truth table.
    pub rank: RankSection,
    /// Zero-cost proxies (`fewshot score`, proxy estimators).
    pub proxy: ProxySection,
}

/// `[space]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpaceSection {
    /// Space plugin spec, `name` or `name:key=value,...`.
    pub spec: String,
    /// Activation passed to the space as `activation=...` (none: the space's default).
    pub activation: Option<String>,
}

/// `[split]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitSection {
    /// Counting rule spec.
    pub rule: String,
    /// Splitter spec.
    pub splitter: String,
    /// Count groups passed to the splitter as `groups=...` (none: the space's default).
    pub groups: Option<String>,
    /// Draw trash architectures (no live input-to-output path) for training too.
    pub include_trash: bool,
}

/// `[data]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// CIFAR-10 binary folder or ImageFolder tree; none = the built-in generated dataset.
    pub path: Option<PathBuf>,
    /// Seed of the class-stratified train/validation halves (fixed across run seeds).
    pub split_seed: u64,
    /// Stratified subset of the supernet-training half.
    pub train_images: Option<usize>,
    /// Stratified subset of the validation half (search fitness, `eval --split valid`).
    pub valid_images: Option<usize>,
    /// Stratified subset of the test set (ranking, `eval --split test`).
    pub test_images: Option<usize>,
    /// Training images of the built-in dataset.
    pub builtin_train: usize,
    /// Test images of the built-in dataset.
    pub builtin_test: usize,
    /// Resize every image to this square resolution on load (area averaging), e.g. 16 for
    /// reduced-fidelity supernets; the space's input resolution follows unless its spec sets
    /// one. None keeps the source size.
    pub resolution: Option<usize>,
}

/// `[train]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Sampler spec: `sbs` (EFS-NAS), `uniform` (SPOS), `fair`, `group-uniform`, ...
    pub sampler: String,
    /// Epochs.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Channel divisor `c` of the supernets (paper: 2).
    pub channel_divisor: f64,
    /// BatchNorm of the supernets: `plain` (batch statistics, no parameters, as the reference)
    /// or `affine`.
    #[serde(deserialize_with = "text::deserialize")]
    pub norm: NormMode,
    /// Learning-rate schedule: `epoch` (cosine per epoch, NB201), `iteration` (cosine per
    /// step), `constant`.
    pub schedule: Schedule,
    /// Starting learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine schedules.
    pub lr_min: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// Parameters a step did not use: `frozen` (untouched until used again) or `decay`
    /// (decayed and moved by momentum once used, as the reference code).
    pub idle_params: IdleParams,
    /// Label smoothing ε.
    pub label_smoothing: f64,
    /// Weight decay on convolution and linear weights only (the MobileNet recipes).
    pub decay_weights_only: bool,
    /// Zero padding of the random crop (0 = no crop).
    pub crop_padding: usize,
    /// Random resized crop from this fraction of the image area (e.g. 0.08, the ImageNet
    /// recipe); unset: the padded crop.
    pub resized_crop: Option<f64>,
    /// Colour jitter strength (brightness, contrast, saturation; 0 = none).
    pub jitter: f64,
    /// Random horizontal flips.
    pub flip: bool,
}

/// `[eval]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Images per evaluation batch (BatchNorm uses each batch's statistics; the reference 512).
    pub batch_size: usize,
    /// Recalibrate BatchNorm statistics on this many training batches per architecture
    /// (0 = off).
    pub bn_recalibrate: usize,
    /// What ranks and searches architectures: `supernet`, a proxy (`naswot`, `az`, `synflow`,
    /// `snip`) or an ensemble joined by `+` (`supernet+az`: the sum of log-ranks).
    #[serde(with = "text")]
    pub estimator: Estimator,
}

/// `[search]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSection {
    /// `evolution` or `random` (same evaluation budget).
    pub strategy: Strategy,
    /// Candidates per generation.
    pub population: usize,
    /// Generations after the initial random one.
    pub generations: usize,
    /// Parents kept for mutation and crossover (default: 10, at most the population).
    pub top_k: Option<usize>,
    /// Mutated children per generation (default: half the population).
    pub mutations: Option<usize>,
    /// Per-position mutation probability.
    pub mutation_prob: f64,
    /// Crossover children per generation (default: half the population).
    pub crossovers: Option<usize>,
    /// Largest FLOPs (millions, full width) of a legal candidate.
    pub flops_max: Option<f64>,
    /// Smallest FLOPs (millions, full width) of a legal candidate.
    pub flops_min: Option<f64>,
    /// Largest parameter count (millions, full width) of a legal candidate.
    pub params_max: Option<f64>,
}

/// `[rank]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankSection {
    /// Ground-truth CSV with an `arch` column (e.g. NAS-Bench-201's table); none = no ranking.
    pub truth: Option<PathBuf>,
    /// Column of the ground truth to rank against.
    pub truth_column: String,
    /// Architectures to rank: drawn uniformly from the whole space (trash included, as the
    /// reference protocol); 0 = every architecture.
    pub archs: usize,
    /// Images to estimate accuracies on: `test` (the reference) or `valid`.
    pub split: EvalSplit,
}

/// `[proxy]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// Images in the fixed batch proxies score on (synflow uses one all-ones image).
    pub batch: usize,
    /// Channel divisor of the scored networks (1 = full width, as the proxies' papers).
    pub channel_divisor: f64,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection { batch: 64, channel_divisor: 1.0 }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: defaults::SEED,
            device: Device::Cpu,
            space: SpaceSection::default(),
            split: SplitSection::default(),
            data: DataSection::default(),
            train: TrainSection::default(),
            eval: EvalSection::default(),
            search: SearchSection::default(),
            rank: RankSection::default(),
            proxy: ProxySection::default(),
        }
    }
}

impl Default for SpaceSection {
    fn default() -> Self {
        SpaceSection { spec: defaults::SPACE.into(), activation: None }
    }
}

impl Default for SplitSection {
    fn default() -> Self {
        SplitSection {
            rule: defaults::RULE.into(),
            splitter: defaults::SPLITTER.into(),
            groups: None,
            include_trash: false,
        }
    }
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            path: None,
            split_seed: 0,
            train_images: None,
            valid_images: Some(500),
            test_images: Some(500),
            builtin_train: 2000,
            builtin_test: 500,
            resolution: None,
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            sampler: "sbs".into(),
            epochs: 3,
            batch_size: 64,
            channel_divisor: 2.0,
            norm: NormMode::Plain,
            schedule: Schedule::Epoch,
            lr: 0.025,
            lr_min: 0.001,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            idle_params: IdleParams::Frozen,
            label_smoothing: 0.0,
            decay_weights_only: false,
            crop_padding: 4,
            resized_crop: None,
            jitter: 0.0,
            flip: true,
        }
    }
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection { batch_size: 250, bn_recalibrate: 0, estimator: defaults::ESTIMATOR.parse().expect("the default estimator parses") }
    }
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            strategy: Strategy::Evolution,
            population: 16,
            generations: 4,
            top_k: None,
            mutations: None,
            mutation_prob: 0.1,
            crossovers: None,
            flops_max: None,
            flops_min: None,
            params_max: None,
        }
    }
}

impl Default for RankSection {
    fn default() -> Self {
        RankSection { truth: None, truth_column: defaults::TRUTH_COLUMN.into(), archs: 100, split: EvalSplit::Test }
    }
}

impl RunConfig {
    /// The defaults of a run over the space `spec`: the NB201 recipe, or for `mobilenet` the
    /// paper's MobileNet supernet recipe (efs-nas.md §6.4): SGD 0.12 Nesterov with a cosine per
    /// step to 0, weight decay 4e-5 on convolution and linear weights only, label smoothing
    /// 0.1, random resized crops (0.08–1), flips and colour jitter 0.4, and BatchNorm
    /// recalibrated on 5 training batches for every searched architecture (a CPU budget; the
    /// authors use 200). Its K=6 count groups are the space's own default.
    pub fn for_space(spec: &str) -> RunConfig {
        let mut config = RunConfig { space: SpaceSection { spec: spec.to_string(), activation: None }, ..RunConfig::default() };
        if crate::plugin_host::registry::spec_name(spec) == "mobilenet" {
            let t = &mut config.train;
            t.schedule = Schedule::Iteration;
            (t.lr, t.lr_min, t.weight_decay, t.decay_weights_only) = (0.12, 0.0, 4e-5, true);
            (t.label_smoothing, t.crop_padding, t.resized_crop, t.jitter) = (0.1, 0, Some(0.08), 0.4);
            config.eval.bn_recalibrate = 5;
        }
        config
    }

    /// Reads a TOML file; unknown keys are errors. Keys it leaves out take the defaults of its
    /// space ([`RunConfig::for_space`]; `space` overrides the file's space).
    pub fn read_for(path: &Path, space: Option<&str>) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let spec = space
            .or_else(|| file.get("space").and_then(|s| s.get("spec")).and_then(toml::Value::as_str))
            .unwrap_or(defaults::SPACE);
        let mut merged = toml::Value::try_from(RunConfig::for_space(spec)).map_err(|e| anyhow!("{e}"))?;
        merge(&mut merged, toml::Value::Table(file));
        merged.try_into().map_err(|e: toml::de::Error| anyhow!("{}: {e}", path.display()))
    }

    /// Reads a TOML file written by [`RunConfig::to_toml`] (a run directory's `config.toml`).
    pub fn read(path: &Path) -> Result<RunConfig> {
        RunConfig::read_for(path, None)
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| anyhow!("cannot write the configuration as TOML: {e}"))
    }

    /// Applies `section.key=value` overrides (`--set`), values parsed as TOML (bare words are
    /// strings).
    pub fn apply_sets(&mut self, sets: &[String]) -> Result<()> {
        if sets.is_empty() {
            return Ok(());
        }
        let mut doc = toml::Value::try_from(&*self).map_err(|e| anyhow!("{e}"))?;
        for set in sets {
            let (path, value) = set
                .split_once('=')
                .ok_or_else(|| anyhow!("--set `{set}`: expected `section.key=value`"))?;
            let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
                Ok(mut t) => t.remove("v").expect("parsed key"),
                Err(_) => toml::Value::String(value.to_string()),
            };
            let keys: Vec<&str> = path.trim().split('.').collect();
            let (last, parents) = keys.split_last().expect("split yields one part");
            let mut table = doc.as_table_mut().expect("config is a table");
            for key in parents {
                table = table
                    .get_mut(*key)
                    .and_then(toml::Value::as_table_mut)
                    .ok_or_else(|| anyhow!("--set `{set}`: there is no section `{key}`"))?;
            }
            table.insert(last.to_string(), value);
            // Typed after each setting, so an error names the setting it comes from.
            *self = doc.clone().try_into().map_err(|e: toml::de::Error| {
                anyhow!("--set `{set}`: {}", e.to_string().trim().replace('\n', " "))
            })?;
        }
        Ok(())
    }

    /// Checks values that the stages would otherwise reject late.
    pub fn validate(&self) -> Result<()> {
        if !(self.train.channel_divisor >= 1.0) {
            bail!("train.channel_divisor must be at least 1, got {}", self.train.channel_divisor);
        }
        if self.eval.batch_size < 2 {
            bail!("eval.batch_size must be at least 2 (BatchNorm uses batch statistics)");
        }
        self.train_config().validate().map_err(|e| anyhow!("train: {e}"))?;
        self.search_config().validate().map_err(|e| anyhow!("search: {e}"))?;
        Ok(())
    }

    /// The engine's learning-rate schedule.
    fn schedule(&self) -> LrSchedule {
        let t = &self.train;
        match t.schedule {
            Schedule::Epoch => LrSchedule::CosineEpoch { base: t.lr, min: t.lr_min },
            Schedule::Iteration => LrSchedule::CosineStep { base: t.lr, min: t.lr_min },
            Schedule::Constant => LrSchedule::Constant { lr: t.lr },
        }
    }

    /// The space's plugin spec with the activation folded in, and the data resolution unless
    /// the spec sets its own (a different one is refused when the data is loaded).
    pub fn space_spec(&self) -> String {
        let spec = match &self.space.activation {
            Some(a) => with_param(&self.space.spec, "activation", a),
            None => self.space.spec.clone(),
        };
        match self.data.resolution {
            Some(r) if !has_param(&spec, "resolution") => with_param(&spec, "resolution", &r.to_string()),
            _ => spec,
        }
    }

    /// The splitter's plugin spec with the groups folded in.
    pub fn splitter_spec(&self) -> String {
        match &self.split.groups {
            Some(g) => with_param(&self.split.splitter, "groups", g),
            None => self.split.splitter.clone(),
        }
    }

    /// The engine's training configuration.
    pub fn train_config(&self) -> TrainConfig {
        let t = &self.train;
        TrainConfig {
            epochs: t.epochs,
            batch_size: t.batch_size,
            schedule: self.schedule(),
            sgd: SgdConfig {
                momentum: t.momentum,
                dampening: 0.0,
                nesterov: t.nesterov,
                weight_decay: t.weight_decay,
                idle: t.idle_params,
                decay_weights_only: t.decay_weights_only,
                rmsprop: None,
            },
            label_smoothing: t.label_smoothing,
            augment: Augment { crop_padding: t.crop_padding, flip: t.flip, resized_crop: t.resized_crop, jitter: t.jitter },
            bn_momentum: None,
            seed: self.seed,
        }
    }

    /// The engine's data configuration.
    pub fn data_config(&self) -> DataConfig {
        let d = &self.data;
        DataConfig {
            path: d.path.clone(),
            split_seed: d.split_seed,
            train_images: d.train_images,
            valid_images: d.valid_images,
            test_images: d.test_images,
            builtin_sizes: [d.builtin_train, d.builtin_test],
            cache_dir: None,
            resolution: d.resolution,
        }
    }

    /// The search configuration.
    pub fn search_config(&self) -> SearchConfig {
        let s = &self.search;
        SearchConfig {
            strategy: s.strategy,
            population: s.population,
            generations: s.generations,
            top_k: s.top_k.unwrap_or(s.population.min(10)),
            mutations: s.mutations.unwrap_or(s.population / 2),
            mutation_prob: s.mutation_prob,
            crossovers: s.crossovers.unwrap_or(s.population / 2),
            ..SearchConfig::default()
        }
    }
}

/// Overlays `over` on `base`: tables key by key, any other value replaced.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(base), toml::Value::Table(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobilenet_runs_default_to_the_paper_recipe_and_files_override_it() {
        let m = RunConfig::for_space("mobilenet:classes=10");
        assert_eq!((m.train.lr, m.train.weight_decay, m.train.label_smoothing), (0.12, 4e-5, 0.1));
        assert_eq!((m.train.schedule, m.train.resized_crop, m.eval.bn_recalibrate), (Schedule::Iteration, Some(0.08), 5));
        assert!(m.train.decay_weights_only && m.train_config().sgd.decay_weights_only);
        assert_eq!(RunConfig::for_space("nb201"), RunConfig::default());
        let dir = std::env::temp_dir().join(format!("fewshot-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.toml");
        std::fs::write(&path, "[space]\nspec = \"mobilenet\"\n[train]\nlr = 0.05\n").unwrap();
        let c = RunConfig::read(&path).unwrap();
        assert_eq!((c.train.lr, c.train.label_smoothing), (0.05, 0.1), "the file's keys over the space's defaults");
        assert_eq!(RunConfig::read_for(&path, Some("nb201")).unwrap().train.label_smoothing, 0.0);
        std::fs::write(&path, "[train]\nlr = 0.05\nlearning = 1\n").unwrap();
        assert!(RunConfig::read(&path).unwrap_err().to_string().contains("learning"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn defaults_validate_and_round_trip_through_toml() {
        let config = RunConfig::default();
        config.validate().unwrap();
        let text = config.to_toml().unwrap();
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn sets_override_nested_keys_and_reject_unknown_ones() {
        let mut config = RunConfig::default();
        config
            .apply_sets(&["train.epochs=7".into(), "space.activation=gelu".into(), "search.flops_max=50.5".into()])
            .unwrap();
        assert_eq!(config.train.epochs, 7);
        assert_eq!(config.space.activation.as_deref(), Some("gelu"));
        assert_eq!(config.search.flops_max, Some(50.5));
        assert!(config.apply_sets(&["train.epoch=7".into()]).is_err());
        assert!(config.apply_sets(&["nosuch.key=1".into()]).is_err());
        assert!(config.apply_sets(&["train.epochs=many".into()]).is_err());
    }

    #[test]
    fn typed_values_keep_their_toml_spelling_and_bad_ones_are_named() {
        let text = RunConfig::default().to_toml().unwrap();
        let spelled = ["device = \"cpu\"", "norm = \"plain\"", "schedule = \"epoch\"", "idle_params = \"frozen\""];
        for line in spelled.into_iter().chain(["strategy = \"evolution\"", "split = \"test\""]) {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        let text = "device = \"cuda:1\"\n[train]\nnorm = \"Batch\"\nschedule = \"constant\"\n";
        let c: RunConfig = toml::from_str(text).unwrap();
        assert_eq!((c.device, c.train.norm, c.train.schedule), (Device::Cuda(1), NormMode::Plain, Schedule::Constant));
        let mut config = RunConfig::default();
        let err = config.apply_sets(&["train.schedule=linear".into()]).unwrap_err().to_string();
        assert!(err.contains("train.schedule=linear") && err.contains("linear"), "{err}");
        let err = config.apply_sets(&["device=tpu".into()]).unwrap_err().to_string();
        assert!(err.contains("device=tpu") && err.contains("unknown device `tpu`"), "{err}");
        config.apply_sets(&["search.strategy=random".into(), "rank.split=valid".into()]).unwrap();
        assert_eq!((config.search.strategy, config.rank.split), (Strategy::Random, EvalSplit::Valid));
        let err = toml::from_str::<RunConfig>("[train]\nidle_params = \"sometimes\"\n").unwrap_err().to_string();
        assert!(err.contains("idle_params") && err.contains("sometimes"), "{err}");
        let mut config = RunConfig::default();
        config.train.channel_divisor = 0.5;
        assert!(config.validate().unwrap_err().to_string().contains("train.channel_divisor"));
    }
}
