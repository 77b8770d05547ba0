//! A run directory and the stages of the pipeline on it: plan, train, estimate accuracies,
//! search. The commands `train`, `eval`, `search`, `run` and `compare` are thin layers over
//! [`Run`].
//!
//! Files of a run directory (all written atomically):
//! - `config.toml`: the resolved [`RunConfig`];
//! - `plan.json`: the subspaces (sizes, count and cost ranges);
//! - `checkpoint.safetensors`, `metrics.jsonl`, `train_config.json`: training (fewshot-core);
//! - `predictions.csv`, `rank.json`: ranking against a ground-truth table;
//! - `search_state.json`, `search.csv`, `best.json`: the search;
//! - `report.md`, `plots/*.svg`: the report.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::{
    engine::backend::{run_on, BackendJob, EngineBackend},
    train::checkpoint,
    data::{load_splits, Dataset, Splits},
    eval::{EvalSet, Evaluator},
    util::files::write_atomic,
    plan::{Plan, PlanDrawer, PlanOptions},
    util::rng::Rng,
    search::{Candidates, Evaluated, Fitness, SearchState},
    engine::supernet::SupernetLayout,
    train::{self as engine, StepSource, TrainRun, CHECKPOINT_FILE, METRICS_FILE},
    progress::NoProgress,
};
use fewshot_sdk::{abi_stable::std_types::RStr, ffi::SamplerBox, Arch, PluginKind};
use serde::{Deserialize, Serialize};

use crate::{
    commands::split::{csv_fields, split_report, SplitReport},
    config::{RunConfig, CONFIG_FILE},
    conformance::checked_space,
    progress::Bars,
    registry::{spec_name, Registry},
    report::{read_metrics_jsonl, text_table, EpochRecord},
};

/// Which images accuracies are estimated on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSplit {
    /// The validation half of the training set.
    Valid,
    /// The held-out test set.
    Test,
}

impl std::str::FromStr for EvalSplit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "valid" => Ok(EvalSplit::Valid),
            "test" => Ok(EvalSplit::Test),
            other => Err(format!("unknown split `{other}` (expected valid or test)")),
        }
    }
}

/// A run directory with its configuration and plan.
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    /// The resolved configuration.
    pub config: RunConfig,
    /// The split of the space.
    pub plan: Plan,
    registry: Arc<Registry>,
}

/// One estimated accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The architecture.
    pub arch: Arch,
    /// Its subspace.
    pub subspace: u32,
    /// Estimated top-1 accuracy in percent.
    pub accuracy: f64,
}

impl Run {
    /// Starts or continues a run in `dir` with `config`. A directory that already holds a run
    /// with a different configuration is refused (naming the first difference).
    pub fn create(dir: &Path, config: RunConfig, registry: Arc<Registry>) -> Result<Run> {
        config.validate()?;
        let path = dir.join(CONFIG_FILE);
        if path.exists() {
            let stored = RunConfig::read(&path)?;
            if stored != config {
                bail!(
                    "{} already holds a run with another configuration ({}); resume it with its stored settings (--resume without options that change them), or choose a new directory",
                    dir.display(),
                    first_difference(&stored, &config)?
                );
            }
        }
        let run = Run::with_config(dir, config, registry)?;
        run.registry.sampler(&run.config.train.sampler)?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
        write_atomic(&path, run.config.to_toml()?.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(run)
    }

    /// Opens an existing run directory with its stored configuration.
    pub fn open(dir: &Path, registry: Arc<Registry>) -> Result<Run> {
        let path = dir.join(CONFIG_FILE);
        if !path.exists() {
            bail!("{} is not a fewshot run directory (it has no {CONFIG_FILE})", dir.display());
        }
        let config = RunConfig::read(&path)?;
        config.validate().with_context(|| format!("{}", path.display()))?;
        Run::with_config(dir, config, registry)
    }

    fn with_config(dir: &Path, config: RunConfig, registry: Arc<Registry>) -> Result<Run> {
        let plan = plan(&config, &registry)?;
        Ok(Run { dir: dir.to_path_buf(), config, plan, registry })
    }

    /// Path of a file in the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Number of supernets (= subspaces).
    pub fn supernets(&self) -> usize {
        self.plan.subspaces().len()
    }

    /// The supernet layout at the run's channel divisor.
    pub fn layout(&self) -> Result<Arc<SupernetLayout>> {
        let layout = SupernetLayout::new(
            self.plan.supernet_graph(),
            self.plan.slots(),
            self.config.train.channel_divisor,
            self.config.norm()?,
        )
        .map_err(|e| anyhow!("cannot build the supernets at channel divisor {}: {e}", self.config.train.channel_divisor))?;
        Ok(Arc::new(layout))
    }

    /// Loads the data and applies the NB201 protocol (train / valid halves, test).
    pub fn splits(&self, layout: &SupernetLayout) -> Result<Splits> {
        load_splits(&self.config.data_config(), layout.input_dims(), layout.classes()).map_err(anyhow::Error::msg)
    }

    /// Whether training has written a checkpoint.
    pub fn has_checkpoint(&self) -> bool {
        self.file(CHECKPOINT_FILE).exists()
    }

    /// Trains the supernets (or resumes from the checkpoint); `stop_after` ends after that many
    /// epochs as if interrupted.
    pub fn train(&self, resume: bool, stop_after: Option<usize>, progress: bool) -> Result<()> {
        let layout = self.layout()?;
        let splits = self.splits(&layout)?;
        let sampler = self.registry.sampler(&self.config.train.sampler)?;
        let run = TrainRun {
            layout,
            supernets: self.supernets(),
            config: self.config.train_config(progress)?,
            run_dir: self.dir.clone(),
            data: splits.train.clone(),
            resume,
            stop_after,
            extra: serde_json::json!({ "sampler": self.config.train.sampler }),
        };
        let job = TrainJob { run, source: PlanSteps::new(&self.plan, sampler, self.config.seed)? };
        run_on(self.config.device()?, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))
    }

    /// Estimates the accuracy of every architecture on `split` with the trained supernets.
    pub fn evaluate(&self, archs: &[Arch], split: EvalSplit, progress: bool) -> Result<Vec<Estimate>> {
        let mut pairs = Vec::with_capacity(archs.len());
        for arch in archs {
            let info = self.plan.info(arch).map_err(|e| anyhow!("{}: {e}", self.text(arch).unwrap_or_else(|f| f.to_string())))?;
            pairs.push((info.subspace, arch.as_slice().to_vec()));
        }
        let accuracies = self.with_evaluator(split, |eval| {
            eval.accuracy_many(&pairs, progress)
        })?;
        Ok(archs
            .iter()
            .zip(pairs)
            .zip(accuracies)
            .map(|((arch, (subspace, _)), accuracy)| Estimate { arch: arch.clone(), subspace, accuracy })
            .collect())
    }

    /// Runs the configured search (resuming `search_state.json`), then writes `search.csv` and
    /// `best.json`. Candidates are scored by their own subspace's supernet on the validation
    /// split; constraints use exact costs at full width.
    pub fn search(&self, progress: bool) -> Result<SearchState> {
        let state_path = self.file(SEARCH_STATE_FILE);
        let mut state = self.open_search()?;
        let mut candidates = PlanCandidates { plan: &self.plan, limits: self.limits() };
        let total = state.config().generations + 1;
        self.with_evaluator(EvalSplit::Valid, |eval| {
            let mut fitness = SupernetFitness { plan: &self.plan, eval };
            while !state.is_finished() {
                let generation = state.completed_generations();
                let scored = state.run_generation(&mut candidates, &mut fitness).map_err(|e| e.to_string())?;
                state.save(&state_path).map_err(|e| e.to_string())?;
                if progress {
                    let best = state.best().map_or(String::new(), |b| format!(", best so far {:.2}%", b.fitness));
                    eprintln!("search: generation {}/{total}: {scored} candidates scored{best}", generation + 1);
                }
            }
            Ok(())
        })?;
        self.write_search_results(&state)?;
        Ok(state)
    }

    /// The saved search state (a fresh one where none is saved); an error when the saved one
    /// was started with other settings, seed or space.
    pub fn open_search(&self) -> Result<SearchState> {
        let config = self.config.search_config()?;
        SearchState::open(&self.file(SEARCH_STATE_FILE), config, self.config.seed, self.plan.option_counts().to_vec())
            .map_err(|e| anyhow!("{e}"))
    }

    /// Writes `plan.json` (the split, with ground-truth statistics when a truth table is set)
    /// and returns it.
    pub fn write_plan(&self) -> Result<SplitReport> {
        let truth = self.config.rank.truth.as_deref().map(|p| (p, self.config.rank.truth_column.as_str()));
        let report = split_report(&self.plan, &self.config.space_spec(), &self.config.split.rule, &self.config.splitter_spec(), truth)?;
        let json = serde_json::to_string_pretty(&report)?;
        write_atomic(&self.file(PLAN_FILE), json.as_bytes()).context("cannot write plan.json")?;
        Ok(report)
    }

    /// The training records of `metrics.jsonl`.
    pub fn training_records(&self) -> Result<Vec<EpochRecord>> {
        read_metrics_jsonl(&self.file(METRICS_FILE))
    }

    /// Per supernet: steps received over the whole run, and last-epoch loss and accuracy.
    pub fn training_summary(&self) -> Result<String> {
        let records = self.training_records()?;
        let Some(last) = records.last() else {
            return Ok("no epoch trained yet".into());
        };
        let headers: Vec<String> = ["supernet", "subspace", "trainable archs", "steps", "loss", "train acc (%)"].map(String::from).to_vec();
        let rows: Vec<Vec<String>> = self
            .plan
            .subspaces()
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let steps: u64 = records.iter().filter_map(|r| r.supernets.get(k)).map(|e| e.steps).sum();
                let (loss, acc) = match last.supernets.get(k) {
                    Some(e) if e.steps > 0 => (format!("{:.4}", e.loss), format!("{:.2}", e.accuracy)),
                    _ => ("-".to_string(), "-".to_string()),
                };
                vec![k.to_string(), s.label.clone(), s.trainable.to_string(), steps.to_string(), loss, acc]
            })
            .collect();
        Ok(format!(
            "trained {} epoch(s) in {}; last epoch:\n{}",
            last.epoch,
            self.dir.display(),
            text_table(&headers, &rows)
        ))
    }

    /// The `n` best candidates of a search as a table, with ground truth when a truth table is
    /// set.
    pub fn search_summary(&self, state: &SearchState, n: usize) -> Result<String> {
        let truth = self.truth_table()?;
        let mut headers: Vec<String> = ["rank", "arch", "subspace", "accuracy (%)", "FLOPs (M)", "params (M)"].map(String::from).to_vec();
        if truth.is_some() {
            headers.push(format!("truth {}", self.config.rank.truth_column));
        }
        let mut rows = Vec::new();
        for (i, row) in state.ranked().into_iter().take(n).enumerate() {
            let (arch, info) = self.describe(row)?;
            let mut cells = vec![
                (i + 1).to_string(),
                arch.clone(),
                self.plan.subspaces()[info.subspace as usize].label.clone(),
                format!("{:.2}", row.fitness),
                format!("{:.2}", info.flops_m),
                format!("{:.3}", info.params_m),
            ];
            if let Some(t) = &truth {
                cells.push(t.value(&arch, &self.config.rank.truth_column).map_or("-".into(), |v| format!("{v:.2}")));
            }
            rows.push(cells);
        }
        Ok(format!(
            "{} search: {} candidates scored; best:\n{}",
            self.config.search.strategy,
            state.history().len(),
            text_table(&headers, &rows)
        ))
    }

    /// The run's ground-truth table, if one is set.
    pub fn truth_table(&self) -> Result<Option<TruthTable>> {
        self.config.rank.truth.as_deref().map(TruthTable::read).transpose()
    }

    fn limits(&self) -> Limits {
        let s = &self.config.search;
        Limits { flops_max: s.flops_max, flops_min: s.flops_min, params_max: s.params_max }
    }

    /// `search.csv` (every scored candidate) and `best.json`.
    fn write_search_results(&self, state: &SearchState) -> Result<()> {
        let mut csv = String::from("generation,arch,subspace,accuracy,flops_m,params_m\n");
        for row in state.history() {
            let (arch, info) = self.describe(row)?;
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                row.generation, arch, info.subspace, row.fitness, info.flops_m, info.params_m
            ));
        }
        write_atomic(&self.file(SEARCH_CSV), csv.as_bytes()).context("cannot write search.csv")?;
        let best = state.best().ok_or_else(|| anyhow!("the search scored no candidate"))?;
        let (arch, info) = self.describe(best)?;
        let record = BestRecord {
            arch,
            subspace: info.subspace,
            subspace_label: self.plan.subspaces()[info.subspace as usize].label.clone(),
            accuracy: best.fitness,
            flops_m: info.flops_m,
            params_m: info.params_m,
            count: info.count,
            generation: best.generation,
            strategy: self.config.search.strategy.clone(),
            scored: state.history().len(),
        };
        let json = serde_json::to_string_pretty(&record)?;
        write_atomic(&self.file(BEST_FILE), json.as_bytes()).context("cannot write best.json")?;
        Ok(())
    }

    fn describe(&self, row: &Evaluated) -> Result<(String, fewshot_core::plan::ArchInfo)> {
        let arch = Arch::new(row.arch.clone());
        let info = self.plan.info(&arch).map_err(|e| anyhow!(e))?;
        Ok((self.text(&arch)?, info))
    }

    /// The architecture's text form; an error names the space plugin and the option indices.
    pub fn text(&self, arch: &Arch) -> Result<String> {
        self.plan.format(arch).map_err(|e| anyhow!("{}: format {:?}: {e}", self.space_label(), arch.as_slice()))
    }

    /// Parses an architecture of the space; an error is prefixed `space `name` (origin): `, as
    /// for every message from plugin code.
    pub fn parse(&self, text: &str) -> Result<Arch> {
        self.plan.parse(text).map_err(|e| anyhow!("{}: {e}", self.space_label()))
    }

    /// How messages name the run's space plugin: `space `name` (origin)`.
    fn space_label(&self) -> String {
        let spec = self.config.space_spec();
        let name = spec_name(&spec);
        self.registry.find(PluginKind::Space, name).map_or_else(|| format!("space `{name}`"), |p| p.label())
    }

    /// Loads the checkpoint and the evaluation images, and runs `work` with an evaluator.
    fn with_evaluator<T>(
        &self,
        split: EvalSplit,
        work: impl for<'e> FnOnce(&dyn EvaluatorDyn) -> Result<T, String>,
    ) -> Result<T> {
        if !self.has_checkpoint() {
            bail!("{} has no trained supernets yet (run `fewshot train` or `fewshot run` first)", self.dir.display());
        }
        let layout = self.layout()?;
        let splits = self.splits(&layout)?;
        let images = match split {
            EvalSplit::Valid => splits.valid.clone(),
            EvalSplit::Test => splits.test.clone(),
        };
        let job = EvalJob {
            layout,
            supernets: self.supernets(),
            checkpoint: self.file(CHECKPOINT_FILE),
            images,
            recalibrate: (self.config.eval.bn_recalibrate > 0).then(|| splits.train.clone()),
            recalibrate_batches: self.config.eval.bn_recalibrate,
            batch_size: self.config.eval.batch_size,
            train_batch_size: self.config.train.batch_size,
            seed: self.config.seed,
            work,
        };
        run_on(self.config.device()?, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))
    }
}

/// The split plan.
pub const PLAN_FILE: &str = "plan.json";
/// The search state (resumable).
pub const SEARCH_STATE_FILE: &str = "search_state.json";
/// Every scored candidate.
pub const SEARCH_CSV: &str = "search.csv";
/// The best candidate.
pub const BEST_FILE: &str = "best.json";

/// `best.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BestRecord {
    /// The architecture.
    pub arch: String,
    /// Its subspace.
    pub subspace: u32,
    /// The subspace's label.
    pub subspace_label: String,
    /// Supernet-estimated accuracy (%) on the validation split.
    pub accuracy: f64,
    /// FLOPs in millions at full width.
    pub flops_m: f64,
    /// Parameters in millions at full width.
    pub params_m: f64,
    /// The counting rule's count.
    pub count: u32,
    /// Generation that found it.
    pub generation: usize,
    /// `evolution` or `random`.
    pub strategy: String,
    /// Candidates scored in all.
    pub scored: usize,
}

/// A ground-truth CSV: every numeric column of every architecture.
pub struct TruthTable {
    columns: Vec<String>,
    rows: HashMap<String, Vec<f64>>,
}

impl TruthTable {
    /// Reads a CSV with an `arch` column; non-numeric cells are kept as NaN.
    pub fn read(path: &Path) -> Result<TruthTable> {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read truth table {}", path.display()))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = csv_fields(lines.next().ok_or_else(|| anyhow!("truth table {} is empty", path.display()))?);
        let arch = header
            .iter()
            .position(|h| h == "arch")
            .ok_or_else(|| anyhow!("truth table {} has no `arch` column", path.display()))?;
        let mut rows = HashMap::new();
        for line in lines {
            let cells = csv_fields(line);
            let values = (0..header.len()).map(|c| cells.get(c).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN)).collect();
            rows.insert(cells.get(arch).cloned().unwrap_or_default(), values);
        }
        Ok(TruthTable { columns: header, rows })
    }

    /// The value of `column` for an architecture, if the table has both and it is a number.
    pub fn value(&self, arch: &str, column: &str) -> Option<f64> {
        let c = self.columns.iter().position(|h| h == column)?;
        self.rows.get(arch).map(|r| r[c]).filter(|v| v.is_finite())
    }

    /// Every numeric value of an architecture except its row index, as (column, value).
    pub fn values(&self, arch: &str) -> Vec<(String, f64)> {
        match self.rows.get(arch) {
            Some(row) => self
                .columns
                .iter()
                .zip(row)
                .filter(|(c, v)| v.is_finite() && !matches!(c.as_str(), "index" | "id"))
                .map(|(c, v)| (c.clone(), *v))
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Plans the split of a configuration.
pub fn plan(config: &RunConfig, registry: &Registry) -> Result<Plan> {
    let space = checked_space(registry, &config.space_spec(), config.train.channel_divisor)?;
    let rule = registry.rule(&config.split.rule)?;
    let splitter = registry.splitter(&config.splitter_spec())?;
    let options = PlanOptions { seed: config.seed, include_trash: config.split.include_trash, method: None };
    Plan::build(space, rule, splitter, options).map_err(|e| anyhow!("cannot plan the split: {e}"))
}

/// The first key whose value differs between two configurations, as `key: old → new`.
fn first_difference(old: &RunConfig, new: &RunConfig) -> Result<String> {
    let flatten = |c: &RunConfig| -> Result<HashMap<String, String>> {
        let value = toml::Value::try_from(c).map_err(|e| anyhow!("{e}"))?;
        let mut out = HashMap::new();
        flatten_toml("", &value, &mut out);
        Ok(out)
    };
    let (a, b) = (flatten(old)?, flatten(new)?);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let none = "(unset)".to_string();
    Ok(keys
        .into_iter()
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none)))
        .unwrap_or_else(|| "they differ".to_string()))
}

fn flatten_toml(prefix: &str, value: &toml::Value, out: &mut HashMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_toml(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The training step source over a plan: a sampler plugin drawing through the plan's drawer.
/// Its state (the drawer's generator and the sampler's own state) goes into checkpoints.
struct PlanSteps<'a> {
    plan: &'a Plan,
    drawer: PlanDrawer<'a>,
    sampler: SamplerBox,
    /// The sampler's state after the last step (saved eagerly, so saving cannot fail later).
    sampler_state: String,
}

#[derive(Serialize, Deserialize)]
struct StepsState {
    rng: Rng,
    sampler: String,
}

impl<'a> PlanSteps<'a> {
    fn new(plan: &'a Plan, sampler: SamplerBox, seed: u64) -> Result<PlanSteps<'a>> {
        let sampler_state = sampler.save_state().into_result().map_err(|e| anyhow!("{e}"))?.into_string();
        Ok(PlanSteps { plan, drawer: plan.drawer(Rng::stream(seed, "sampler")), sampler, sampler_state })
    }
}

impl StepSource for PlanSteps<'_> {
    fn next_step(&mut self) -> Result<Vec<(u32, Vec<u32>)>, String> {
        let picks = self.drawer.draw_step(&mut self.sampler).map_err(|e| e.to_string())?;
        self.sampler_state = self.sampler.save_state().into_result().map_err(|e| e.into_string())?.into_string();
        Ok(picks.into_iter().map(|p| (p.subspace, p.arch.choices.into_vec())).collect())
    }

    fn save_state(&self) -> String {
        let state = StepsState { rng: self.drawer.rng().clone(), sampler: self.sampler_state.clone() };
        serde_json::to_string(&state).expect("plain data serialises")
    }

    fn load_state(&mut self, state: &str) -> Result<(), String> {
        let state: StepsState =
            serde_json::from_str(state).map_err(|e| format!("the checkpoint's sampler state is unreadable: {e}"))?;
        self.sampler.load_state(RStr::from_str(&state.sampler)).into_result().map_err(|e| e.into_string())?;
        self.sampler_state = state.sampler;
        self.drawer = self.plan.drawer(state.rng);
        Ok(())
    }
}

struct TrainJob<'a> {
    run: TrainRun,
    source: PlanSteps<'a>,
}

impl BackendJob for TrainJob<'_> {
    type Output = Result<(), String>;

    fn run<B: EngineBackend>(mut self, device: B::Device) -> Result<(), String> {
        engine::train::<B>(self.run, &mut self.source, &device, &Bars::new()).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Accuracy estimation, object-safe so work can be written once for every backend.
pub trait EvaluatorDyn {
    /// Accuracies of (subspace, architecture) pairs.
    fn accuracy_many(&self, pairs: &[(u32, Vec<u32>)], progress: bool) -> Result<Vec<f64>, String>;
}

impl<B: EngineBackend> EvaluatorDyn for Evaluator<'_, B> {
    fn accuracy_many(&self, pairs: &[(u32, Vec<u32>)], progress: bool) -> Result<Vec<f64>, String> {
        let bars = Bars::new();
        Evaluator::accuracy_many(self, pairs, if progress { &bars } else { &NoProgress }).map_err(|e| e.to_string())
    }
}

struct EvalJob<W> {
    layout: Arc<SupernetLayout>,
    supernets: usize,
    checkpoint: PathBuf,
    images: Arc<Dataset>,
    recalibrate: Option<Arc<Dataset>>,
    recalibrate_batches: usize,
    batch_size: usize,
    train_batch_size: usize,
    seed: u64,
    work: W,
}

impl<T, W> BackendJob for EvalJob<W>
where
    W: for<'e> FnOnce(&dyn EvaluatorDyn) -> Result<T, String>,
{
    type Output = Result<T, String>;

    fn run<B: EngineBackend>(self, device: B::Device) -> Result<T, String> {
        let loaded = checkpoint::load::<B>(&self.checkpoint, self.layout, self.supernets, &device).map_err(|e| e.to_string())?;
        let set = EvalSet::<B>::new(&self.images, self.batch_size, self.seed, &device);
        let calibration = self
            .recalibrate
            .as_ref()
            .map(|train| EvalSet::<B>::sample(train, self.recalibrate_batches, self.train_batch_size, self.seed, &device));
        let mut evaluator = Evaluator::new(&loaded.nets, &set);
        if let Some(calibration) = &calibration {
            evaluator = evaluator.with_recalibration(calibration);
        }
        (self.work)(&evaluator)
    }
}

/// Search constraints at full width.
#[derive(Clone, Copy, Debug, Default)]
struct Limits {
    flops_max: Option<f64>,
    flops_min: Option<f64>,
    params_max: Option<f64>,
}

/// Candidates of the search: uniform over the slot product; legal = valid in the space, not
/// trash, within the cost limits.
struct PlanCandidates<'a> {
    plan: &'a Plan,
    limits: Limits,
}

impl Candidates for PlanCandidates<'_> {
    fn option_counts(&self) -> Vec<u32> {
        self.plan.option_counts().to_vec()
    }

    fn random(&mut self, rng: &mut Rng) -> Result<Vec<u32>, String> {
        Ok(self.plan.option_counts().iter().map(|&n| rng.below(u64::from(n)) as u32).collect())
    }

    fn legal(&mut self, arch: &[u32]) -> Result<bool, String> {
        let Ok(info) = self.plan.info(&Arch::new(arch.to_vec())) else {
            return Ok(false);
        };
        let l = self.limits;
        Ok(!info.trash
            && l.flops_max.is_none_or(|m| info.flops_m <= m)
            && l.flops_min.is_none_or(|m| info.flops_m >= m)
            && l.params_max.is_none_or(|m| info.params_m <= m))
    }
}

/// Fitness of a candidate: its own subspace's supernet accuracy on the validation split.
struct SupernetFitness<'a> {
    plan: &'a Plan,
    eval: &'a dyn EvaluatorDyn,
}

impl Fitness for SupernetFitness<'_> {
    fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
        let pairs = archs
            .iter()
            .map(|a| self.plan.info(&Arch::new(a.clone())).map(|info| (info.subspace, a.clone())).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, String>>()?;
        self.eval.accuracy_many(&pairs, false)
    }
}
