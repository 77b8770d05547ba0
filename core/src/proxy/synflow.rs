//! SynFlow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
//! synaptic flow", NeurIPS 2020), as the zero-cost baseline of Abdelfattah et al. (ICLR 2021).
//!
//! Every parameter of the subnet is replaced by its absolute value, BatchNorm is left out (the
//! reference scores a copy of the network without it), and a single all-ones image runs through;
//! with `R` the sum of the logits, the score is `Σ θ · ∂R/∂θ` over the convolution and linear
//! weights. The products of absolute weights along deep paths grow fast (NB201's scores reach
//! about 1e36, near `f32`'s limit of 3e38; deeper spaces pass it), so the score is computed in
//! `f32` on the scorer's backend and, when anything on the way is not finite, again in double
//! precision on the CPU ([`DoubleBackend`], the generic kernels). One image keeps both cheap.

use burn::{
    backend::Autodiff,
    tensor::{backend::Backend, Tensor, TensorData},
};

use super::Scorer;
use crate::engine::{
    backend::{DoubleBackend, EngineBackend},
    kernels::SupernetOps,
    supernet::{forward, BnStats, ParamRole},
};

/// The SynFlow score of `arch`.
pub(super) fn score<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32]) -> f64 {
    let fast = flow::<Autodiff<B>>(scorer, arch, &scorer.images.device());
    if fast.is_finite() {
        fast
    } else {
        flow::<Autodiff<DoubleBackend>>(scorer, arch, &Default::default())
    }
}

/// The synaptic flow of `arch` computed on the autodiff backend `A` (non-finite when a value
/// on the way overflowed).
fn flow<A: SupernetOps + burn::tensor::backend::AutodiffBackend>(
    scorer: &Scorer<impl EngineBackend>,
    arch: &[u32],
    device: &A::Device,
) -> f64 {
    let layout = &scorer.layout;
    let used = layout.used_params(arch);
    let leaves: Vec<Option<Tensor<A, 1>>> = scorer
        .host
        .iter()
        .zip(&used)
        .map(|(values, &used)| {
            used.then(|| {
                let abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
                Tensor::<A, 1>::from_data(TensorData::new(abs, [values.len()]), device).require_grad()
            })
        })
        .collect();
    let [c, h, w] = layout.input_dims();
    let ones = Tensor::<A, 4>::ones([c, 1, h, w], device);
    let logits = forward(layout, ones, arch, |id| leaves[id].clone().expect("forward reads used parameters only"), &mut BnStats::Off);
    let grads = logits.sum().backward();
    let mut total = 0.0;
    for (id, leaf) in leaves.iter().enumerate() {
        let (Some(leaf), ParamRole::ConvWeight | ParamRole::LinearWeight) = (leaf, layout.params()[id].role) else {
            continue;
        };
        if let Some(g) = leaf.grad(&grads) {
            let product = (leaf.clone().inner() * g).sum();
            total += first_value::<A::InnerBackend>(product);
        }
    }
    total
}

/// The single value of a one-element tensor, as `f64`.
fn first_value<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data().convert::<f64>().into_vec::<f64>().expect("a float tensor")[0]
}
