//! One training step over K supernets (paper Eq. 9): the subnets a step source picked run on
//! the same batch, their losses are summed, one backward pass, one optimizer update.

use burn::{
    backend::Autodiff,
    tensor::{activation::log_softmax, backend::Backend, Tensor, TensorData},
};

use crate::{
    engine::backend::EngineBackend,
    train::{
        optim::{Sgd, SgdConfig},
        TrainError,
    },
    engine::supernet::{forward, tensor_to_vec, BnStats, RunningStats, Supernets},
};

/// The result of one step for one trained (subspace, architecture) pair.
#[derive(Clone, Debug, PartialEq)]
pub struct PairResult {
    /// Subspace (supernet index).
    pub subspace: u32,
    /// Cross-entropy (with label smoothing when configured) on the batch.
    pub loss: f64,
    /// Correctly classified images of the batch.
    pub correct: usize,
}

/// BatchNorm running statistics tracked while training (stand-alone networks): one set per
/// supernet, updated after every step with PyTorch's momentum rule ([`RunningStats::track`]).
pub struct BnTracking<B: Backend> {
    /// Weight of a new batch (PyTorch's default 0.1).
    pub momentum: f64,
    /// Per supernet.
    pub stats: Vec<RunningStats<B>>,
}

/// The K supernets and their optimizer.
pub struct StepEngine<B: Backend> {
    /// The supernets being trained.
    pub nets: Supernets<B>,
    /// Optimizer state.
    pub optim: Sgd<B>,
    /// Label smoothing ε (0 = plain cross-entropy).
    pub label_smoothing: f64,
    /// Running BatchNorm statistics, when tracked (normalisation always uses the batch's).
    pub bn_tracking: Option<BnTracking<B>>,
}

impl<B: EngineBackend> StepEngine<B> {
    /// An engine over `nets` with a fresh optimizer.
    pub fn new(nets: Supernets<B>, sgd: SgdConfig, label_smoothing: f64) -> Self {
        let optim = Sgd::new(sgd, nets.count(), nets.layout().params().len());
        StepEngine { nets, optim, label_smoothing, bn_tracking: None }
    }

    /// Also tracks running BatchNorm statistics with `momentum`, from `stats` (none: fresh).
    pub fn with_bn_tracking(mut self, momentum: f64, stats: Option<Vec<RunningStats<B>>>) -> Self {
        let stats = stats.unwrap_or_else(|| (0..self.nets.count()).map(|_| RunningStats::new()).collect());
        self.bn_tracking = Some(BnTracking { momentum, stats });
        self
    }

    /// Waits until the device has finished all queued work (for timing).
    pub fn sync(&self) {
        let _ = B::sync(self.nets.device());
    }

    /// Trains every pair of `pairs` on the batch (`images` `[N, C, H, W]`, `labels` of length N)
    /// with learning rate `lr`. Fails without updating anything when a loss is not finite or a
    /// pair names a supernet or architecture that does not exist.
    pub fn step(
        &mut self,
        images: Tensor<B, 4>,
        labels: &[u32],
        pairs: &[(u32, Vec<u32>)],
        lr: f64,
    ) -> Result<Vec<PairResult>, TrainError> {
        let (results, grads, recorded) = self.backward(images, labels, pairs, lr)?;
        let Some(grads) = grads else {
            return Ok(results);
        };
        self.optim.update(&mut self.nets, grads, lr);
        if let Some(tracking) = &mut self.bn_tracking {
            for (k, batch) in &recorded {
                tracking.stats[*k].track(batch, tracking.momentum);
            }
        }
        Ok(results)
    }

    /// The gradient of the summed loss of `pairs` on the batch with respect to every parameter,
    /// `[supernet][param]` (None: not used), without changing anything (the gradient-matching
    /// splitter compares them).
    pub fn gradients(
        &self,
        images: Tensor<B, 4>,
        labels: &[u32],
        pairs: &[(u32, Vec<u32>)],
    ) -> Result<Vec<Vec<Option<Tensor<B, 1>>>>, TrainError> {
        let (_, grads, _) = self.backward(images, labels, pairs, 0.0)?;
        let params = self.nets.layout().params().len();
        Ok(grads.unwrap_or_else(|| vec![vec![None; params]; self.nets.count()]))
    }

    /// Forward and backward of `pairs`: per-pair results, the gradients (None without pairs)
    /// and the batch statistics recorded when running statistics are tracked.
    #[allow(clippy::type_complexity)]
    fn backward(
        &self,
        images: Tensor<B, 4>,
        labels: &[u32],
        pairs: &[(u32, Vec<u32>)],
        lr: f64,
    ) -> Result<(Vec<PairResult>, Option<Vec<Vec<Option<Tensor<B, 1>>>>>, Vec<(usize, RunningStats<B>)>), TrainError> {
        let layout = self.nets.layout().clone();
        let k_count = self.nets.count();
        for (k, arch) in pairs {
            if *k as usize >= k_count {
                return Err(TrainError::NoSuchSupernet { supernet: *k, count: k_count });
            }
            layout.check_arch(arch)?;
        }
        let classes = layout.classes();
        let n = labels.len();
        let targets = smoothed_targets::<B>(labels, classes, self.label_smoothing, self.nets.device())?;
        let targets = Tensor::<Autodiff<B>, 2>::from_inner(targets);
        let x = Tensor::<Autodiff<B>, 4>::from_inner(images);

        let params = layout.params().len();
        let mut leaves: Vec<Vec<Option<Tensor<Autodiff<B>, 1>>>> = vec![vec![None; params]; k_count];
        let mut total: Option<Tensor<Autodiff<B>, 1>> = None;
        let mut results = Vec::with_capacity(pairs.len());
        let mut recorded = Vec::new();
        for (k, arch) in pairs {
            let k = *k as usize;
            let nets = &self.nets;
            let net_leaves = &mut leaves[k];
            let mut bn = match self.bn_tracking {
                Some(_) => BnStats::Record(RunningStats::new()),
                None => BnStats::Batch,
            };
            let logits = forward(
                &layout,
                x.clone(),
                arch,
                |id| {
                    net_leaves[id]
                        .get_or_insert_with(|| Tensor::from_inner(nets.param(k, id).clone()).require_grad())
                        .clone()
                },
                &mut bn,
            );
            if let BnStats::Record(stats) = bn {
                recorded.push((k, stats.inner()));
            }
            let loss = (log_softmax(logits.clone(), 1) * targets.clone()).sum().neg().div_scalar(n as f64);
            let loss_value = tensor_to_vec(loss.clone().inner())[0] as f64;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged { supernet: k, loss: loss_value, lr });
            }
            let correct = count_correct(&tensor_to_vec(logits.inner()), labels, classes);
            results.push(PairResult { subspace: k as u32, loss: loss_value, correct });
            total = Some(match total {
                None => loss,
                Some(t) => t + loss,
            });
        }
        let Some(total) = total else {
            return Ok((results, None, recorded));
        };
        let grads = total.backward();
        let grads = leaves
            .into_iter()
            .map(|net| net.into_iter().map(|leaf| leaf.and_then(|l| l.grad(&grads))).collect())
            .collect();
        Ok((results, Some(grads), recorded))
    }
}

/// Target distributions `[N, classes]`: one-hot with label smoothing ε
/// (`1 − ε + ε/classes` on the label, `ε/classes` elsewhere).
pub fn smoothed_targets<B: Backend>(
    labels: &[u32],
    classes: usize,
    smoothing: f64,
    device: &B::Device,
) -> Result<Tensor<B, 2>, TrainError> {
    let off = (smoothing / classes as f64) as f32;
    let on = (1.0 - smoothing + smoothing / classes as f64) as f32;
    let mut values = vec![off; labels.len() * classes];
    for (i, &label) in labels.iter().enumerate() {
        if label as usize >= classes {
            return Err(TrainError::Label { label, classes });
        }
        values[i * classes + label as usize] = on;
    }
    Ok(Tensor::from_data(TensorData::new(values, [labels.len(), classes]), device))
}

/// Number of rows of `logits` (row-major `[N, classes]`) whose arg-max is the label.
pub fn count_correct(logits: &[f32], labels: &[u32], classes: usize) -> usize {
    logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            best == label as usize
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backend::CpuBackend;

    #[test]
    fn label_smoothing_targets_and_accuracy() {
        let t = smoothed_targets::<CpuBackend>(&[2, 0], 4, 0.1, &Default::default()).unwrap();
        let v = tensor_to_vec(t);
        let (on, off) = (0.9 + 0.025, 0.025);
        let want = [off, off, on, off, on, off, off, off];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
        assert!(smoothed_targets::<CpuBackend>(&[4], 4, 0.0, &Default::default()).is_err());
        assert_eq!(count_correct(&[0.1, 0.9, 0.5, 0.2], &[1, 1], 2), 1);
    }
}
