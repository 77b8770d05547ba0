//! AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
//! CVPR 2024), after its public code.
//!
//! Weights are kaiming-normal (fan-in), BatchNorm uses batch statistics, and the input is a
//! batch of standard-normal noise (the reference scores NB201 on `torch.randn` inputs). The features are the
//! values of the space's block outputs ([`SupernetLayout::block_outputs`](crate::engine::supernet::SupernetLayout::block_outputs):
//! for NB201 the stem, every cell and both residual blocks, as in the reference).
//! - **Expressivity** of a feature map `[C, N, H, W]`: the entropy `−Σ p log(p + 1e-8)` of the
//!   normalised eigenvalues `p = λ / Σλ` of its channel covariance over all `N·H·W` positions;
//!   summed over the blocks.
//! - **Progressivity**: the smallest increase of that entropy from one block to the next.
//! - **Trainability**: for every pair of consecutive blocks, a Rademacher (±1) gradient `g_out`
//!   at the later one is pulled back to the earlier one (`g_in`, a vector-Jacobian product
//!   through the engine's backward kernels); when the resolution halves, `g_in` is
//!   pixel-unshuffled to the later resolution. With `M = g_inᵀ g_out / (N·H·W)` and σ its
//!   largest singular value, the pair scores `−σ − 1/(σ + 1e-6) + 2` (largest, 0, at σ = 1);
//!   a pair whose block is the identity (`g_in = g_out`) scores `-inf`. Trainability is the
//!   mean over the pairs.
//! - **Complexity**: the subnet's FLOPs (millions, at the layout's channel divisor).
//!
//! Eigenvalues below zero, which only rounding produces in a covariance, count as zero (left
//! negative, they would make the entropy NaN, as they can in the reference's `float32` code).
//! A component that is NaN (e.g. a block whose features vanish, so `Σλ = 0`) is `-inf`.
//! The Rademacher draws come from the seed and the architecture, so a score does not depend on
//! the order of scoring.

use std::collections::HashMap;

use burn::{
    backend::Autodiff,
    tensor::{backend::Backend, Tensor, TensorData},
};

use super::{
    linalg::{largest_singular_value, symmetric_eigenvalues},
    Scorer,
};
use crate::{
    engine::{
        backend::EngineBackend,
        supernet::{forward_observed, forward_segment, tensor_to_vec, BnStats, Observer},
    },
    util::{hash::fnv1a, rng::Rng},
};

/// Expressivity, progressivity, trainability and complexity of `arch`.
pub(super) fn components<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32]) -> Vec<f64> {
    let mut features = Features { wanted: scorer.blocks.clone(), values: HashMap::new() };
    forward_observed(&scorer.layout, scorer.images.clone(), arch, |id| scorer.params[id].clone(), &mut BnStats::Batch, &mut features);
    let blocks: Vec<Option<Tensor<B, 4>>> = scorer.blocks.iter().map(|b| features.values.remove(b).flatten()).collect();
    let entropies: Vec<f64> = blocks.iter().map(|f| f.as_ref().map_or(f64::NAN, |f| entropy(f.clone()))).collect();
    let expressivity = entropies.iter().sum::<f64>();
    let progressivity = entropies.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    let progressivity = if entropies.len() < 2 { f64::NAN } else { progressivity };
    let trainability = trainability(scorer, arch, &blocks);
    let complexity = scorer.costs.cost(arch).flops_m();
    [expressivity, progressivity, trainability, complexity]
        .into_iter()
        .map(|v| if v.is_nan() { f64::NEG_INFINITY } else { v })
        .collect()
}

/// Collects the values of the block outputs during a forward pass.
struct Features<B: Backend> {
    wanted: Vec<usize>,
    values: HashMap<usize, Option<Tensor<B, 4>>>,
}

impl<B: Backend> Observer<B> for Features<B> {
    fn map_output(&mut self, node: usize, value: Option<&Tensor<B, 4>>) {
        if self.wanted.contains(&node) {
            self.values.insert(node, value.cloned());
        }
    }
}

/// The entropy of the normalised eigenvalues of the channel covariance of `f` `[C, N, H, W]`.
fn entropy<B: Backend>(f: Tensor<B, 4>) -> f64 {
    let [c, n, h, w] = f.dims();
    let m = n * h * w;
    let x = f.reshape([c, m]);
    let centred = x.clone() - x.mean_dim(1);
    let cov = tensor_to_vec(centred.clone().matmul(centred.transpose()).div_scalar(m as f64));
    let cov: Vec<f64> = cov.into_iter().map(f64::from).collect();
    // The covariance is positive semi-definite: a negative eigenvalue is rounding.
    let eig: Vec<f64> = symmetric_eigenvalues(&cov, c).into_iter().map(|l| l.max(0.0)).collect();
    let total: f64 = eig.iter().sum();
    eig.iter().map(|&l| l / total).map(|p| -p * (p + 1e-8).ln()).sum()
}

/// The mean trainability score over the pairs of consecutive blocks.
fn trainability<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32], blocks: &[Option<Tensor<B, 4>>]) -> f64 {
    let device = scorer.images.device();
    let mut rng = Rng::stream(scorer.seed ^ fnv1a(format!("{arch:?}").as_bytes()), "az:trainability");
    let shapes = scorer.layout.shapes();
    let mut total = 0.0;
    let pairs = scorer.blocks.len().saturating_sub(1);
    if pairs == 0 {
        return f64::NAN;
    }
    for i in (1..scorer.blocks.len()).rev() {
        let (from, to) = (scorer.blocks[i - 1], scorer.blocks[i]);
        let n = scorer.labels.len();
        let [ci, hi, wi] = map_dims(&shapes[from]);
        let [co, ho, wo] = map_dims(&shapes[to]);
        let signs: Vec<f32> = (0..co * n * ho * wo).map(|_| if rng.chance(0.5) { 1.0 } else { -1.0 }).collect();
        let g_out = Tensor::<B, 4>::from_data(TensorData::new(signs, [co, n, ho, wo]), &device);
        let f_in = blocks[i - 1].clone().unwrap_or_else(|| Tensor::zeros([ci, n, hi, wi], &device));
        let g_in = pull_back(scorer, arch, from, f_in, to, g_out.clone());
        let score = match g_in {
            Some(g_in) if g_in.dims() == g_out.dims() && identical(&g_in, &g_out) => f64::NEG_INFINITY,
            Some(g_in) => {
                let sigma = coupling(g_in, g_out, [ho, wo]);
                -sigma - 1.0 / (sigma + 1e-6) + 2.0
            }
            None => -1.0 / 1e-6 + 2.0,
        };
        total += score;
    }
    total / pairs as f64
}

/// The gradient at block `from` of `Σ f_out · g_out`, where `f_out` is block `to` computed from
/// `f_in`; `None` when `to` does not depend on `from` in this subnet.
fn pull_back<B: EngineBackend>(
    scorer: &Scorer<B>,
    arch: &[u32],
    from: usize,
    f_in: Tensor<B, 4>,
    to: usize,
    g_out: Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let x = Tensor::<Autodiff<B>, 4>::from_inner(f_in).require_grad();
    let f_out = forward_segment(
        &scorer.layout,
        arch,
        from,
        x.clone(),
        to,
        |id| Tensor::from_inner(scorer.params[id].clone()),
        &mut BnStats::Batch,
    )?;
    let grads = (f_out * Tensor::from_inner(g_out)).sum().backward();
    x.grad(&grads)
}

/// Whether two tensors are equal everywhere.
fn identical<B: Backend>(a: &Tensor<B, 4>, b: &Tensor<B, 4>) -> bool {
    tensor_to_vec((a.clone() - b.clone()).abs().max())[0] == 0.0
}

/// The largest singular value of `g_inᵀ g_out / (N·H·W)`, with `g_in` pixel-unshuffled to the
/// resolution `[ho, wo]` of `g_out` first when it is larger (cropped to a multiple of it).
fn coupling<B: Backend>(g_in: Tensor<B, 4>, g_out: Tensor<B, 4>, [ho, wo]: [usize; 2]) -> f64 {
    let [ci, n, hi, wi] = g_in.dims();
    let co = g_out.dims()[0];
    let s = (hi / ho).max(1);
    let g_in = if s > 1 || wi != wo {
        let cropped = g_in.slice([0..ci, 0..n, 0..s * ho, 0..s * wo]);
        cropped.reshape([ci, n, ho, s, wo, s]).permute([0, 3, 5, 1, 2, 4]).reshape([ci * s * s, n * ho * wo])
    } else {
        g_in.reshape([ci, n * ho * wo])
    };
    let m = n * ho * wo;
    let mat = tensor_to_vec(g_in.matmul(g_out.reshape([co, m]).transpose()).div_scalar(m as f64));
    let mat: Vec<f64> = mat.into_iter().map(f64::from).collect();
    largest_singular_value(&mat, ci * s * s, co)
}

/// `[C, H, W]` of a feature-map shape.
fn map_dims(shape: &fewshot_sdk::Shape) -> [usize; 3] {
    match *shape {
        fewshot_sdk::Shape::Map { channels, height, width } => [channels as usize, height as usize, width as usize],
        fewshot_sdk::Shape::Vector { .. } => unreachable!("block outputs are feature maps"),
    }
}
