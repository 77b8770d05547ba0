//! Estimating subnet accuracy with trained supernets.
//!
//! [`EvalSet`] turns a dataset into tensors once (in the dataset's seeded class-mixed order,
//! [`Dataset::mixed_order`], no augmentation, normalised),
//! so that evaluating thousands of architectures only runs forward passes. Evaluation uses the
//! inner backend (no autodiff) and, like the reference, BatchNorm with the statistics of each
//! evaluation batch (the reference uses batches of 512). With BN recalibration, each
//! architecture first runs `N` training batches to accumulate per-BN-node statistics (mean of
//! the batch means and of the unbiased batch variances), and is then evaluated with those.

use burn::tensor::{Tensor, TensorData};

use crate::{
    engine::{backend::EngineBackend, EngineError},
    data::{batch_indices, make_batch, Dataset},
    train::step::count_correct,
    engine::supernet::{tensor_to_vec, BnStats, RunningStats, Supernets},
    progress::{Job, Progress},
};

/// Why an architecture could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A subspace without a supernet.
    #[error("subspace {subspace} does not exist (there are {supernets} supernets)")]
    NoSuchSubspace {
        /// The subspace asked for.
        subspace: u32,
        /// Supernets there are.
        supernets: usize,
    },
    /// An architecture the supernets cannot run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No image to evaluate on.
    #[error("the evaluation set is empty")]
    EmptySet,
}

/// A dataset as ready-made batches on a device.
pub struct EvalSet<B: EngineBackend> {
    batches: Vec<(Tensor<B, 4>, Vec<u32>)>,
    images: usize,
}

impl<B: EngineBackend> EvalSet<B> {
    /// All of `data` in its class-mixed order for `seed` ([`Dataset::mixed_order`]: the same
    /// for every architecture, every run with that seed and every source of the same images),
    /// in batches of `batch_size` (a final single image is dropped: batch statistics need two).
    pub fn new(data: &Dataset, batch_size: usize, seed: u64, device: &B::Device) -> Self {
        Self::from_indices(data, &data.mixed_order(seed), batch_size, device)
    }

    /// The first `batches` batches of `data` in a seeded order (for BN recalibration).
    pub fn sample(data: &Dataset, batches: usize, batch_size: usize, seed: u64, device: &B::Device) -> Self {
        let mut order = crate::data::epoch_order(data.len(), seed, usize::MAX);
        order.truncate(batches * batch_size);
        Self::from_indices(data, &order, batch_size, device)
    }

    fn from_indices(data: &Dataset, order: &[usize], batch_size: usize, device: &B::Device) -> Self {
        let batches: Vec<(Tensor<B, 4>, Vec<u32>)> = batch_indices(order, batch_size)
            .into_iter()
            .map(|indices| {
                let batch = make_batch(data, &indices, None);
                (Tensor::from_data(TensorData::new(batch.pixels, batch.dims), device), batch.labels)
            })
            .collect();
        let images = batches.iter().map(|b| b.1.len()).sum();
        EvalSet { batches, images }
    }

    /// Images evaluated.
    pub fn images(&self) -> usize {
        self.images
    }

    /// Number of batches.
    pub fn batches(&self) -> usize {
        self.batches.len()
    }
}

/// Evaluates subnets of trained supernets.
pub struct Evaluator<'a, B: EngineBackend> {
    nets: &'a Supernets<B>,
    data: &'a EvalSet<B>,
    norm: EvalNorm<'a, B>,
}

/// The statistics BatchNorm normalises with in an evaluation.
enum EvalNorm<'a, B: EngineBackend> {
    /// Each evaluation batch's own.
    Batch,
    /// Recalibrated on these training batches per architecture.
    Recalibrate(&'a EvalSet<B>),
    /// Running statistics tracked in training, per supernet.
    Running(&'a [RunningStats<B>]),
}

impl<'a, B: EngineBackend> Evaluator<'a, B> {
    /// Evaluation on `data` with batch statistics.
    pub fn new(nets: &'a Supernets<B>, data: &'a EvalSet<B>) -> Self {
        Evaluator { nets, data, norm: EvalNorm::Batch }
    }

    /// Recalibrates BatchNorm statistics on `train` batches for every architecture first.
    pub fn with_recalibration(mut self, train: &'a EvalSet<B>) -> Self {
        self.norm = EvalNorm::Recalibrate(train);
        self
    }

    /// Normalises with the running statistics tracked in training (`stats[k]` for supernet
    /// `k`), as a stand-alone network in evaluation mode.
    pub fn with_running_stats(mut self, stats: &'a [RunningStats<B>]) -> Self {
        self.norm = EvalNorm::Running(stats);
        self
    }

    /// Images each architecture is evaluated on.
    pub fn images(&self) -> usize {
        self.data.images()
    }

    /// Top-1 accuracy (%) of architecture `arch` of subspace `subspace`.
    pub fn accuracy(&self, subspace: u32, arch: &[u32]) -> Result<f64, EvalError> {
        let k = subspace as usize;
        if k >= self.nets.count() {
            return Err(EvalError::NoSuchSubspace { subspace, supernets: self.nets.count() });
        }
        self.nets.layout().check_arch(arch)?;
        if self.data.images == 0 {
            return Err(EvalError::EmptySet);
        }
        let mut bn = match self.norm {
            EvalNorm::Batch => BnStats::Batch,
            EvalNorm::Running(stats) => BnStats::Fixed(stats[k].clone()),
            EvalNorm::Recalibrate(train) => {
                let mut record = BnStats::Record(RunningStats::new());
                for (x, _) in &train.batches {
                    let _ = self.nets.logits(k, arch, x.clone(), &mut record);
                }
                match record {
                    BnStats::Record(stats) => BnStats::Fixed(stats),
                    _ => unreachable!(),
                }
            }
        };
        let classes = self.nets.layout().classes();
        let mut correct = 0;
        for (x, labels) in &self.data.batches {
            let logits = tensor_to_vec(self.nets.logits(k, arch, x.clone(), &mut bn));
            correct += count_correct(&logits, labels, classes);
        }
        Ok(100.0 * correct as f64 / self.data.images as f64)
    }

    /// Accuracies of many (subspace, architecture) pairs, in order, reporting each pair done to
    /// `progress`.
    pub fn accuracy_many(&self, pairs: &[(u32, Vec<u32>)], progress: &dyn Progress) -> Result<Vec<f64>, EvalError> {
        progress.start(Job::Evaluation, pairs.len() as u64);
        let mut out = Vec::with_capacity(pairs.len());
        for (k, arch) in pairs {
            out.push(self.accuracy(*k, arch)?);
            progress.advance(1);
        }
        progress.finish();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        engine::backend::CpuBackend,
        data::builtin,
        progress::NoProgress,
        train::{tests::{source, tiny_run}, train, Trained, TrainRun},
    };

    type B = CpuBackend;

    /// Supernets of the small test space trained for 4 epochs on 600 built-in images, and 200
    /// test images.
    fn trained(name: &str) -> (Trained<B>, Dataset, Dataset) {
        let (train_set, test_set) = builtin(600, 200, [3, 8, 8]).unwrap();
        let dir = std::env::temp_dir().join(format!("fewshot-eval-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut run = TrainRun { ..tiny_run(&dir, 4, Arc::new(train_set.clone())) };
        run.config.schedule = crate::train::optim::LrSchedule::CosineEpoch { base: 0.1, min: 0.01 };
        let trained = train::<B>(run, &mut source(3), &Default::default(), &NoProgress).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (trained, train_set, test_set)
    }

    #[test]
    fn trained_supernets_beat_chance_on_the_built_in_data() {
        let (trained, _, test_set) = trained("chance");
        let test = EvalSet::<B>::new(&test_set, 100, 0, &Default::default());
        assert_eq!((test.images(), test.batches()), (200, 2));
        let evaluator = Evaluator::new(&trained.engine.nets, &test);
        let pairs: Vec<(u32, Vec<u32>)> = vec![(0, vec![0, 0]), (1, vec![1, 1]), (0, vec![0, 1])];
        let accuracies = evaluator.accuracy_many(&pairs, &NoProgress).unwrap();
        assert!(accuracies.iter().all(|&a| a > 25.0), "well above the 10% of chance: {accuracies:?}");
        assert_eq!(evaluator.accuracy(0, &[0, 0]).unwrap(), accuracies[0], "deterministic");
        assert!(evaluator.accuracy(5, &[0, 0]).unwrap_err().to_string().contains("subspace 5"));
        assert!(evaluator.accuracy(0, &[9, 0]).is_err());
    }

    #[test]
    fn recalibration_evaluates_with_the_statistics_of_the_training_batches() {
        let (trained, train_set, test_set) = trained("recalibrate");
        let device = Default::default();
        let nets = &trained.engine.nets;
        // Architecture [0, 0] of supernet 0: three BatchNorms on its path.
        let arch = [0u32, 0];
        let calibration = EvalSet::<B>::sample(&train_set, 3, 50, 0, &device);
        assert_eq!((calibration.images(), calibration.batches()), (150, 3));
        let (large, small) = (EvalSet::<B>::new(&test_set, 100, 0, &device), EvalSet::<B>::new(&test_set, 4, 0, &device));
        let plain = |set| Evaluator::new(nets, set).accuracy(0, &arch).unwrap();
        let recalibrated = |set| Evaluator::new(nets, set).with_recalibration(&calibration).accuracy(0, &arch).unwrap();

        // The statistics recorded over the calibration batches are not an evaluation batch's.
        let mut record = BnStats::Record(RunningStats::new());
        for (x, _) in &calibration.batches {
            let _ = nets.logits(0, &arch, x.clone(), &mut record);
        }
        let BnStats::Record(stats) = record else { unreachable!() };
        let mut fixed = BnStats::Fixed(stats);
        let mut correct = 0;
        let mut largest_change = 0f32;
        for (x, labels) in &small.batches {
            let with_batch = tensor_to_vec(nets.logits(0, &arch, x.clone(), &mut BnStats::Batch));
            let with_fixed = tensor_to_vec(nets.logits(0, &arch, x.clone(), &mut fixed));
            largest_change = with_batch.iter().zip(&with_fixed).map(|(a, b)| (a - b).abs()).fold(largest_change, f32::max);
            correct += count_correct(&with_fixed, labels, nets.layout().classes());
        }
        assert!(largest_change > 0.1, "recorded statistics give the logits of batch statistics (max change {largest_change})");
        // The recalibrating evaluator scores exactly with those statistics.
        assert_eq!(recalibrated(&small), 100.0 * correct as f64 / small.images() as f64);

        // Batch statistics make the estimate depend on the evaluation batch size; fixed ones do
        // not, so recalibration changes the estimate where the batches are small.
        assert_ne!(plain(&small), plain(&large), "4-image batch statistics are not 100-image ones");
        assert_eq!(recalibrated(&small), recalibrated(&large));
        assert_ne!(recalibrated(&small), plain(&small));
    }
}
