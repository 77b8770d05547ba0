//! The evaluation stage: accuracy estimates of architectures with a run's trained supernets, on
//! the validation or the test images ([`evaluate`]), through one object-safe evaluator for
//! every backend ([`EvaluatorDyn`], used by the search too); and the architectures to estimate
//! (every one of the space, or a listed file).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::{
    data::Dataset,
    engine::{
        backend::{run_on, BackendJob, EngineBackend},
        supernet::SupernetLayout,
    },
    eval::{EvalSet, Evaluator},
    plan::Plan,
    progress::NoProgress,
    space::odometer::Odometer,
    train::{checkpoint, CHECKPOINT_FILE},
};
use fewshot_sdk::Arch;

use super::Run;
use crate::{config::EvalSplit, io::csv::read_arch_list, progress::Bars};

/// Largest number of architectures [`all_architectures`] lists.
pub const ALL_LIMIT: u128 = 1_000_000;

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

/// Estimates the accuracy of every architecture on `split` with the run's trained supernets.
pub fn evaluate(run: &Run, archs: &[Arch], split: EvalSplit, progress: bool) -> Result<Vec<Estimate>> {
    let mut pairs = Vec::with_capacity(archs.len());
    for arch in archs {
        let info = run.plan.info(arch).map_err(|e| anyhow!("{}: {e}", run.text(arch).unwrap_or_else(|f| f.to_string())))?;
        pairs.push((info.subspace, arch.as_slice().to_vec()));
    }
    let accuracies = with_evaluator(run, split, |eval| eval.accuracy_many(&pairs, progress))?;
    Ok(archs
        .iter()
        .zip(pairs)
        .zip(accuracies)
        .map(|((arch, (subspace, _)), accuracy)| Estimate { arch: arch.clone(), subspace, accuracy })
        .collect())
}

/// Every architecture of the plan's space that the space accepts (spaces of up to
/// [`ALL_LIMIT`] architectures).
pub fn all_architectures(plan: &Plan) -> Result<Vec<Arch>> {
    let total = plan.total();
    if total > ALL_LIMIT {
        bail!("the space has {total} architectures; --all takes at most {ALL_LIMIT} (give --archs FILE)");
    }
    let mut archs = Vec::with_capacity(total as usize);
    let mut odometer = Odometer::new(plan.option_counts());
    while let Some(choices) = odometer.advance() {
        let arch = Arch::new(choices.to_vec());
        if plan.info(&arch).is_ok() {
            archs.push(arch);
        }
    }
    Ok(archs)
}

/// The architectures a file lists (see [`read_arch_list`]), each read with `parse`; an error
/// names the file and line.
pub fn listed_architectures(path: &Path, parse: impl Fn(&str) -> Result<Arch>) -> Result<Vec<Arch>> {
    read_arch_list(path)?
        .into_iter()
        .map(|(line, text)| parse(&text).with_context(|| format!("{} line {line}", path.display())))
        .collect()
}

/// Accuracy estimation, object-safe so work can be written once for every backend.
pub trait EvaluatorDyn {
    /// Accuracies of (subspace, architecture) pairs.
    fn accuracy_many(&self, pairs: &[(u32, Vec<u32>)], progress: bool) -> Result<Vec<f64>, String>;
    /// Images each architecture is evaluated on.
    fn images(&self) -> usize;
}

impl<B: EngineBackend> EvaluatorDyn for Evaluator<'_, B> {
    fn accuracy_many(&self, pairs: &[(u32, Vec<u32>)], progress: bool) -> Result<Vec<f64>, String> {
        let bars = Bars::new();
        Evaluator::accuracy_many(self, pairs, if progress { &bars } else { &NoProgress }).map_err(|e| e.to_string())
    }

    fn images(&self) -> usize {
        Evaluator::images(self)
    }
}

/// Loads the run's checkpoint and the images of `split`, and runs `work` with an evaluator on
/// the run's device.
pub fn with_evaluator<T>(
    run: &Run,
    split: EvalSplit,
    work: impl for<'e> FnOnce(&dyn EvaluatorDyn) -> Result<T, String>,
) -> Result<T> {
    if !run.dir.has_checkpoint() {
        bail!("{} has no trained supernets yet (run `fewshot train` or `fewshot run` first)", run.dir.path().display());
    }
    let layout = run.layout()?;
    let splits = run.splits(&layout)?;
    let images = match split {
        EvalSplit::Valid => splits.valid.clone(),
        EvalSplit::Test => splits.test.clone(),
    };
    let c = &run.config;
    let job = EvalJob {
        layout,
        supernets: run.supernets(),
        checkpoint: run.dir.file(CHECKPOINT_FILE),
        images,
        recalibrate: (c.eval.bn_recalibrate > 0).then(|| splits.train.clone()),
        recalibrate_batches: c.eval.bn_recalibrate,
        batch_size: c.eval.batch_size,
        train_batch_size: c.train.batch_size,
        seed: c.seed,
        work,
    };
    run_on(c.device, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))
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
