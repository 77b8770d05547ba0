//! SNIP (Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR
//! 2019), as the zero-cost baseline of Abdelfattah et al. (ICLR 2021).
//!
//! The cross-entropy `L` of the subnet on the batch (PyTorch's default initialisation,
//! batch-statistics BatchNorm), and the score `Σ |θ · ∂L/∂θ|` over the convolution and linear
//! weights.

use burn::{
    backend::Autodiff,
    tensor::{activation::log_softmax, Tensor},
};

use super::Scorer;
use crate::{
    engine::{
        backend::EngineBackend,
        supernet::{forward, tensor_to_vec, BnStats, ParamRole},
    },
    train::step::smoothed_targets,
};

/// The SNIP score of `arch`.
pub(super) fn score<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32]) -> f64 {
    let layout = &scorer.layout;
    let used = layout.used_params(arch);
    let leaves: Vec<Option<Tensor<Autodiff<B>, 1>>> = scorer
        .params
        .iter()
        .zip(&used)
        .map(|(p, &used)| used.then(|| Tensor::from_inner(p.clone()).require_grad()))
        .collect();
    let device = scorer.images.device();
    let n = scorer.labels.len();
    let targets = smoothed_targets::<B>(&scorer.labels, layout.classes(), 0.0, &device)
        .expect("the dataset's labels fit the space's classes");
    let x = Tensor::<Autodiff<B>, 4>::from_inner(scorer.images.clone());
    let logits = forward(layout, x, arch, |id| leaves[id].clone().expect("forward reads used parameters only"), &mut BnStats::Batch);
    let loss = (log_softmax(logits, 1) * Tensor::from_inner(targets)).sum().neg().div_scalar(n as f64);
    let grads = loss.backward();
    let mut total = 0.0;
    for (id, leaf) in leaves.iter().enumerate() {
        let (Some(leaf), ParamRole::ConvWeight | ParamRole::LinearWeight) = (leaf, layout.params()[id].role) else {
            continue;
        };
        if let Some(g) = leaf.grad(&grads) {
            total += tensor_to_vec((leaf.clone().inner() * g).abs().sum())[0] as f64;
        }
    }
    total
}
