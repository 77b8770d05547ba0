//! The retraining stage: the architectures a search found, trained from scratch as stand-alone
//! networks, the check a space without a truth table has.
//!
//! Each network is the space's graph at full width (channel divisor 1) with BatchNorm that has
//! affine parameters and running statistics (PyTorch's momentum 0.1). It trains on the whole
//! training split (both halves of the protocol) with a [`Recipe`] and is evaluated on the test
//! split with its running statistics. Every architecture gets its own folder under the output
//! directory, `arch-<i>/`: `checkpoint.safetensors`, `metrics.jsonl` and `train_config.json`
//! as `train` writes them (so an interrupted retrain resumes), then `model.safetensors` (the
//! weights and running statistics, with the space and architecture in its metadata) and
//! `result.json`. The output directory gets `retrain.csv` and `retrain.md`.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context, Error, Result};
use clap::ValueEnum;
use fewshot_core::{
    data::{load_splits, Augment, DataConfig, Dataset},
    engine::{
        backend::{run_on, BackendJob, EngineBackend},
        supernet::{NormMode, SupernetLayout},
    },
    eval::{EvalSet, Evaluator},
    metrics::kendall_tau_b,
    progress::{NoProgress, Progress},
    train::{
        self as engine, checkpoint,
        optim::{LrSchedule, RmsPropConfig, SgdConfig},
        StepSource, TrainConfig, TrainRun, CHECKPOINT_FILE, METRICS_FILE,
    },
};
use fewshot_sdk::ffi::from_ffi;
use serde::{Deserialize, Serialize};

use super::{costs::costs, Run};
use crate::{
    io::{csv, csv::TruthTable, table::render},
    plugin_host::{conformance::checked_space, registry::Registry},
    progress::Bars,
    report::markdown::{code_span, Markdown},
    run_dir::{read_metrics_jsonl, SEARCH_STATE_FILE},
};

/// A stand-alone training recipe (efs-nas.md §6.6, the NAS-Bench-201 paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// NAS-Bench-201's: SGD 0.1, momentum 0.9, Nesterov, weight decay 5e-4, cosine to 0 per
    /// epoch, batch 256, 200 epochs, padded crop and flip.
    Nb201,
    /// The EFS-NAS paper's MobileNet one: TensorFlow's RMSProp (decay 0.9, eps 1e-3, momentum
    /// 0.9) lr 0.064
    /// ×0.97 every 2.4 epochs, weight decay 1e-5 on conv/linear weights, label smoothing 0.1,
    /// batch 1024, 450 epochs, random resized crop, flip, colour jitter 0.4.
    Mobilenet,
    /// The authors' code's MobileNet one (their released models): SGD 0.5 Nesterov, cosine to 0
    /// per step, weight decay 4e-5 on conv/linear weights, label smoothing 0.1, batch 1024, 240
    /// epochs, the same augmentation.
    MobilenetSgd,
}

impl Recipe {
    /// The recipe of a space: `mobilenet` for the MobileNet space, else `nb201`.
    pub fn for_space(spec: &str) -> Recipe {
        match crate::plugin_host::registry::spec_name(spec) {
            "mobilenet" => Recipe::Mobilenet,
            _ => Recipe::Nb201,
        }
    }

    /// Its name as the command line spells it.
    pub fn name(&self) -> String {
        self.to_possible_value().expect("no skipped values").get_name().to_string()
    }

    /// The engine's configuration of the recipe, seeded with `seed`.
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        let imagenet = Augment { crop_padding: 0, flip: true, resized_crop: Some(0.08), jitter: 0.4 };
        let weights_only = |momentum: f64, weight_decay: f64, nesterov: bool, rmsprop: Option<RmsPropConfig>| SgdConfig {
            momentum,
            nesterov,
            weight_decay,
            decay_weights_only: true,
            rmsprop,
            ..SgdConfig::default()
        };
        let base = TrainConfig { bn_momentum: Some(0.1), seed, ..TrainConfig::default() };
        match self {
            Recipe::Nb201 => TrainConfig {
                epochs: 200,
                batch_size: 256,
                schedule: LrSchedule::CosineEpoch { base: 0.1, min: 0.0 },
                sgd: SgdConfig { weight_decay: 5e-4, ..SgdConfig::default() },
                ..base
            },
            Recipe::Mobilenet => TrainConfig {
                epochs: 450,
                batch_size: 1024,
                schedule: LrSchedule::StepDecay { base: 0.064, factor: 0.97, every: 2.4 },
                sgd: weights_only(0.9, 1e-5, false, Some(RmsPropConfig::default())),
                label_smoothing: 0.1,
                augment: imagenet,
                ..base
            },
            Recipe::MobilenetSgd => TrainConfig {
                epochs: 240,
                batch_size: 1024,
                schedule: LrSchedule::CosineStep { base: 0.5, min: 0.0 },
                sgd: weights_only(0.9, 4e-5, true, None),
                label_smoothing: 0.1,
                augment: imagenet,
                ..base
            },
        }
    }
}

/// Changes to a recipe from the command line.
#[derive(Clone, Debug, Default)]
pub struct RecipeOverrides {
    /// Epochs.
    pub epochs: Option<usize>,
    /// Images per step.
    pub batch: Option<usize>,
    /// Starting learning rate.
    pub lr: Option<f64>,
    /// Weight decay.
    pub weight_decay: Option<f64>,
    /// Label smoothing ε.
    pub label_smoothing: Option<f64>,
}

impl RecipeOverrides {
    /// `config` with the overrides applied. A batch size other than the recipe's scales its
    /// learning rates by the same factor (the linear scaling rule: the MobileNet recipes' rates
    /// are for batch 1024) unless `lr` is given too.
    pub fn apply(&self, mut config: TrainConfig) -> TrainConfig {
        if let Some(e) = self.epochs {
            config.epochs = e;
        }
        let scale = match (self.batch, self.lr) {
            (Some(b), None) => b as f64 / config.batch_size as f64,
            _ => 1.0,
        };
        if let Some(b) = self.batch {
            config.batch_size = b;
        }
        let base = |b: f64| self.lr.unwrap_or(b * scale);
        config.schedule = match config.schedule {
            LrSchedule::CosineEpoch { base: b, min } => LrSchedule::CosineEpoch { base: base(b), min: (min * scale).min(base(b)) },
            LrSchedule::CosineStep { base: b, min } => LrSchedule::CosineStep { base: base(b), min: (min * scale).min(base(b)) },
            LrSchedule::StepDecay { base: b, factor, every } => LrSchedule::StepDecay { base: base(b), factor, every },
            LrSchedule::Constant { lr } => LrSchedule::Constant { lr: base(lr) },
        };
        if let Some(wd) = self.weight_decay {
            config.sgd.weight_decay = wd;
        }
        if let Some(ls) = self.label_smoothing {
            config.label_smoothing = ls;
        }
        config
    }
}

/// What to retrain and how.
#[derive(Clone, Debug)]
pub struct RetrainPlan {
    /// Architectures (text form of the space).
    pub archs: Vec<String>,
    /// Space spec of the stand-alone networks.
    pub space: String,
    /// The recipe's name (for the records).
    pub recipe: String,
    /// The training configuration.
    pub config: TrainConfig,
    /// Output directory.
    pub out: PathBuf,
    /// Continue an interrupted retrain in `out`.
    pub resume: bool,
    /// A class-stratified subset of this many training images (none: the whole split).
    pub train_images: Option<usize>,
    /// A class-stratified subset of this many test images (none: the whole split).
    pub test_images: Option<usize>,
    /// Ground truth and its column, shown beside the retrained accuracies.
    pub truth: Option<(PathBuf, String)>,
}

/// One retrained architecture (`result.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retrained {
    /// The architecture.
    pub arch: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Training accuracy of the last epoch, percent.
    pub train_accuracy: f64,
    /// Test accuracy with the running statistics, percent.
    pub test_accuracy: f64,
    /// Test accuracy with BatchNorm statistics recomputed on 10 training batches instead (a
    /// cross-check of the running statistics), percent.
    pub test_accuracy_recalibrated: f64,
    /// Test images.
    pub test_images: usize,
    /// Parameters in millions.
    pub params_m: f64,
    /// FLOPs in millions.
    pub flops_m: f64,
    /// Wall-clock seconds of training.
    pub seconds: f64,
}

/// The folder of architecture `i` inside the output directory.
fn arch_dir(out: &Path, i: usize) -> PathBuf {
    out.join(format!("arch-{i}"))
}

/// The `top` best architectures of a run's search, in the search's own order (higher fitness,
/// ties by option indices), so `--top 1` is `best.json`'s architecture.
pub fn top_archs(run: &Run, top: usize) -> Result<Vec<String>> {
    if !run.dir.file(SEARCH_STATE_FILE).exists() {
        bail!("{} has no search results ({SEARCH_STATE_FILE}); run `fewshot search` on it first, or give --arch", run.dir.path().display());
    }
    let state = super::search::open(run)?;
    state.ranked().into_iter().take(top).map(|e| run.text(&fewshot_sdk::Arch::new(e.arch.clone()))).collect()
}

/// The stand-alone network of `plan`'s space (full width, affine BatchNorm) and its
/// architectures as option indices, each checked by the space.
fn stand_alone(registry: &Registry, plan: &RetrainPlan) -> Result<(Arc<SupernetLayout>, Vec<(String, Vec<u32>)>)> {
    let space = checked_space(registry, &plan.space, 1.0)?;
    let slots = from_ffi(space.slots()).map_err(Error::msg)?.into_vec();
    let graph = from_ffi(space.supernet_graph()).map_err(Error::msg)?;
    let layout = SupernetLayout::new(&graph, &slots, 1.0, NormMode::Affine).map_err(|e| anyhow!("cannot build `{}`: {e}", plan.space))?;
    let mut archs = Vec::with_capacity(plan.archs.len());
    for text in &plan.archs {
        let arch = from_ffi(space.parse(text.as_str().into())).map_err(|e| anyhow!("`{text}` in space `{}`: {e}", plan.space))?;
        arch.check_against(&slots).map_err(|e| anyhow!("{text}: {e}"))?;
        from_ffi(space.validate(&arch)).map_err(|e| anyhow!("{text} is not in space `{}`: {e}", plan.space))?;
        archs.push((text.clone(), arch.as_slice().to_vec()));
    }
    Ok((Arc::new(layout), archs))
}

/// The run's images at the network's resolution: the whole training split (both halves, or a
/// stratified subset of them) and the test split.
fn retrain_data(run: &Run, plan: &RetrainPlan, layout: &SupernetLayout) -> Result<(Arc<Dataset>, Arc<Dataset>)> {
    let side = layout.input_dims()[1];
    let data = DataConfig {
        train_images: None,
        valid_images: None,
        test_images: plan.test_images,
        resolution: Some(side),
        ..run.config.data_config()
    };
    let splits = load_splits(&data, layout.input_dims(), layout.classes()).map_err(Error::msg)?;
    let both = splits.train.concat(&splits.valid);
    let train = match plan.train_images {
        Some(n) => both.stratified_subset(n, data.split_seed, "training").map_err(Error::msg)?,
        None => both.mixed(data.split_seed),
    };
    Ok((Arc::new(train), splits.test))
}

/// Retrains every architecture of `plan` with the data of `run`; writes `retrain.csv` and
/// `retrain.md` and returns the results (those finished before, on resume, included) with the
/// table to print.
pub fn retrain(run: &Run, registry: &Registry, plan: &RetrainPlan, progress: bool) -> Result<(Vec<Retrained>, String)> {
    plan.config.validate().map_err(|e| anyhow!("retrain recipe: {e}"))?;
    if plan.archs.is_empty() {
        bail!("no architectures to retrain");
    }
    let (layout, archs) = stand_alone(registry, plan)?;
    if !plan.resume && arch_dir(&plan.out, 0).exists() {
        bail!("{} already holds a retrain (continue it with --resume, or choose another --out)", plan.out.display());
    }
    let (train, test) = retrain_data(run, plan, &layout)?;
    let mut results = Vec::with_capacity(archs.len());
    for (i, (text, choices)) in archs.iter().enumerate() {
        let dir = arch_dir(&plan.out, i);
        let done = dir.join(RESULT_FILE);
        if plan.resume && done.exists() {
            let result: Retrained = serde_json::from_str(&fs::read_to_string(&done)?).with_context(|| format!("{}", done.display()))?;
            if result.arch != *text || result.epochs != plan.config.epochs {
                bail!("{} holds {} for {} epochs, not {text} for {}", dir.display(), result.arch, result.epochs, plan.config.epochs);
            }
            results.push(result);
            continue;
        }
        let resume = plan.resume && dir.join(CHECKPOINT_FILE).exists();
        if resume {
            let state = checkpoint::read_state(&dir.join(CHECKPOINT_FILE)).map_err(Error::msg)?;
            if state.extra.get("arch").and_then(|a| a.as_str()) != Some(text) {
                bail!("{} holds the retrain of another architecture than {text}", dir.display());
            }
        }
        let cost = costs(registry, &plan.space, Some(text), 1.0)?.remove(0);
        eprintln!("retraining {}/{}: {text} ({:.3}M params, {:.1}M FLOPs)", i + 1, archs.len(), cost.params_mb, cost.flops_m);
        let about = serde_json::json!({ "arch": text, "space": plan.space, "recipe": plan.recipe });
        let train_run = TrainRun {
            layout: layout.clone(),
            supernets: 1,
            config: plan.config.clone(),
            run_dir: dir.clone(),
            data: train.clone(),
            resume,
            stop_after: None,
            extra: about.clone(),
        };
        let job = RetrainJob { run: train_run, arch: choices.clone(), test: test.clone(), about, progress };
        let (train_accuracy, [test_accuracy, test_accuracy_recalibrated], seconds) =
            run_on(run.config.device, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))?;
        let result = Retrained {
            arch: text.clone(),
            epochs: plan.config.epochs,
            train_accuracy,
            test_accuracy,
            test_accuracy_recalibrated,
            test_images: test.len(),
            params_m: cost.params_mb,
            flops_m: cost.flops_m,
            seconds,
        };
        fewshot_core::util::files::write_atomic(&done, serde_json::to_string_pretty(&result)?.as_bytes())?;
        results.push(result);
    }
    let truth = plan.truth.as_ref().map(|(path, column)| TruthTable::read(path).map(|t| (t, column.clone()))).transpose()?;
    let table = write_tables(plan, &results, truth.as_ref())?;
    if plan.out == run.dir.path().join(DEFAULT_DIR) {
        update_run_report(run)?;
    }
    Ok((results, table))
}

/// Training batches the cross-check recomputes BatchNorm statistics on.
const RECALIBRATION_BATCHES: usize = 10;

/// File of one architecture's result inside its folder.
pub const RESULT_FILE: &str = "result.json";
/// The table of all retrained architectures in the output directory.
pub const TABLE_FILE: &str = "retrain.csv";
/// The report section in the output directory.
pub const REPORT_FILE: &str = "retrain.md";
/// The output directory inside the run directory unless `--out` says otherwise.
pub const DEFAULT_DIR: &str = "retrain";
/// The model file inside an architecture's folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// The rows of the retrain table, with the truth column when given.
fn rows(results: &[Retrained], truth: Option<&(TruthTable, String)>) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers: Vec<String> =
        ["rank", "arch", "epochs", "params_m", "flops_m", "train_acc", "test_acc", "test_acc_recal"].iter().map(|s| s.to_string()).collect();
    if let Some((_, column)) = truth {
        headers.push(format!("truth ({column})"));
    }
    let rows = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = vec![
                (i + 1).to_string(),
                r.arch.clone(),
                r.epochs.to_string(),
                format!("{:.3}", r.params_m),
                format!("{:.1}", r.flops_m),
                format!("{:.2}", r.train_accuracy),
                format!("{:.2}", r.test_accuracy),
                format!("{:.2}", r.test_accuracy_recalibrated),
            ];
            if let Some((table, column)) = truth {
                row.push(table.value(&r.arch, column).map_or("-".into(), |v| format!("{v:.2}")));
            }
            row
        })
        .collect();
    (headers, rows)
}

/// The τ-b between retrained and true accuracies, when at least three have a truth.
fn truth_tau(results: &[Retrained], truth: &(TruthTable, String)) -> Option<(f64, usize)> {
    let pairs: Vec<(f64, f64)> =
        results.iter().filter_map(|r| truth.0.value(&r.arch, &truth.1).map(|t| (r.test_accuracy, t))).collect();
    if pairs.len() < 3 {
        return None;
    }
    let (pred, real): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    kendall_tau_b(&pred, &real).map(|t| (t, pairs.len()))
}

/// `retrain.csv` and `retrain.md` in the output directory; returns the same table as text to print.
fn write_tables(plan: &RetrainPlan, results: &[Retrained], truth: Option<&(TruthTable, String)>) -> Result<String> {
    let (headers, rows) = rows(results, truth);
    let tau = truth.and_then(|t| truth_tau(results, t));
    csv::write(&plan.out.join(TABLE_FILE), &headers, &rows)?;
    let mut md = Markdown::new("Retrained architectures");
    md.paragraph(&format!(
        "Stand-alone networks of space {} at full width, trained from scratch with the `{}` recipe for {} epochs on \
         the whole training split ({}), BatchNorm with running statistics; test accuracy on {} test images.",
        code_span(&plan.space),
        plan.recipe,
        plan.config.epochs,
        plan.train_images.map_or("all images".into(), |n| format!("a stratified {n}")),
        results.first().map_or(0, |r| r.test_images),
    ));
    md.table(&headers, &rows);
    md.paragraph(&format!(
        "`test_acc` normalises with the running statistics; `test_acc_recal` with statistics recomputed on \
         {RECALIBRATION_BATCHES} training batches, a cross-check of them."
    ));
    if let Some((tau, n)) = tau {
        md.paragraph(&format!("Kendall τ-b of the retrained against the true accuracies over these {n}: {tau:.3}."));
    }
    md.write(&plan.out.join(REPORT_FILE))?;
    let mut text = render(&headers, &rows);
    if let Some((tau, n)) = tau {
        text.push_str(&format!("Kendall tau-b against the truth over {n}: {tau:.3}\n"));
    }
    text.push_str(&format!("models, metrics and {TABLE_FILE} in {}\n", plan.out.display()));
    Ok(text)
}

/// The retrain section of a run's report: `RUN/retrain/retrain.md` one heading level down, when
/// the run has been retrained into its default folder.
pub fn report_section(run_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(run_dir.join(DEFAULT_DIR).join(REPORT_FILE)).ok()?;
    Some(text.lines().map(|l| if l.starts_with('#') { format!("#{l}") } else { l.to_string() }).collect::<Vec<_>>().join("\n"))
}

/// Puts the retrain section into the run's `report.md` (before its configuration), replacing
/// an older one; a run without a report is left alone.
fn update_run_report(run: &Run) -> Result<()> {
    let path = run.dir.file(crate::run_dir::REPORT_FILE);
    let (Ok(report), Some(section)) = (fs::read_to_string(&path), report_section(run.dir.path())) else { return Ok(()) };
    let heading = format!("\n{}", section.lines().next().unwrap_or_default());
    let mut kept = report.clone();
    if let Some(start) = kept.find(&heading) {
        let end = kept[start + 1..].find("\n## ").map_or(kept.len(), |e| start + 1 + e);
        kept.replace_range(start..end, "");
    }
    let at = kept.find("\n## Configuration").unwrap_or(kept.len());
    kept.insert_str(at, &format!("\n{}\n", section.trim_end()));
    fewshot_core::util::files::write_atomic(&path, kept.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// Always the one architecture being retrained, in network 0.
struct FixedArch(Vec<u32>);

impl StepSource for FixedArch {
    fn next_step(&mut self) -> Result<Vec<(u32, Vec<u32>)>, String> {
        Ok(vec![(0, self.0.clone())])
    }
    fn save_state(&self) -> String {
        String::new()
    }
    fn load_state(&mut self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

struct RetrainJob {
    run: TrainRun,
    arch: Vec<u32>,
    test: Arc<Dataset>,
    about: serde_json::Value,
    progress: bool,
}

impl BackendJob for RetrainJob {
    /// Last-epoch training accuracy, test accuracy (running statistics, recalibrated ones),
    /// training seconds.
    type Output = Result<(f64, [f64; 2], f64), String>;

    fn run<B: EngineBackend>(self, device: B::Device) -> Self::Output {
        let bars = Bars::new();
        let progress: &dyn Progress = if self.progress { &bars } else { &NoProgress };
        let dir = self.run.run_dir.clone();
        let batch = self.run.config.batch_size.min(256);
        let seed = self.run.config.seed;
        let mut source = FixedArch(self.arch.clone());
        let train = self.run.data.clone();
        let trained = engine::train::<B>(self.run, &mut source, &device, progress).map_err(|e| e.to_string())?;
        let records = read_metrics_jsonl(&dir.join(METRICS_FILE)).map_err(|e| format!("{e:#}"))?;
        let train_accuracy = records.last().map_or(0.0, |m| m.accuracy);
        let seconds = records.iter().map(|m| m.seconds).sum();
        let tracking = trained.engine.bn_tracking.as_ref().expect("retraining tracks running statistics");
        let test = EvalSet::<B>::new(&self.test, batch, seed, &device);
        let nets = &trained.engine.nets;
        let accuracy = Evaluator::new(nets, &test).with_running_stats(&tracking.stats).accuracy(0, &self.arch);
        let calibration = EvalSet::<B>::sample(&train, RECALIBRATION_BATCHES, batch, seed, &device);
        let recalibrated = Evaluator::new(nets, &test).with_recalibration(&calibration).accuracy(0, &self.arch);
        checkpoint::save_model(&dir.join(MODEL_FILE), &trained.engine, 0, self.about).map_err(|e| e.to_string())?;
        Ok((train_accuracy, [accuracy.map_err(|e| e.to_string())?, recalibrated.map_err(|e| e.to_string())?], seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_batch_scales_the_recipe_learning_rate_unless_one_is_given() {
        let paper = Recipe::Mobilenet.train_config(0);
        let small = RecipeOverrides { batch: Some(64), ..Default::default() }.apply(paper.clone());
        assert_eq!(small.batch_size, 64);
        assert_eq!(small.schedule, LrSchedule::StepDecay { base: 0.064 / 16.0, factor: 0.97, every: 2.4 });
        let given = RecipeOverrides { batch: Some(64), lr: Some(0.01), ..Default::default() }.apply(paper);
        assert_eq!(given.schedule, LrSchedule::StepDecay { base: 0.01, factor: 0.97, every: 2.4 });
        let nb201 = RecipeOverrides { batch: Some(64), epochs: Some(2), ..Default::default() }.apply(Recipe::Nb201.train_config(0));
        assert_eq!((nb201.epochs, nb201.schedule), (2, LrSchedule::CosineEpoch { base: 0.025, min: 0.0 }));
        assert_eq!(Recipe::for_space("mobilenet:classes=10"), Recipe::Mobilenet);
        assert_eq!(Recipe::MobilenetSgd.name(), "mobilenet-sgd");
    }
}
