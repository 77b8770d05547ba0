//! SynFlow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
//! synaptic flow", NeurIPS 2020), as the zero-cost baseline of Abdelfattah et al. (ICLR 2021).
//!
//! Every parameter of the subnet is replaced by its absolute value, BatchNorm is left out (the
//! reference scores a copy of the network without it), and a single all-ones image runs through;
//! with `R` the sum of the logits, the score is `Σ θ · ∂R/∂θ` over the convolution and linear
//! weights. The products of absolute weights along deep paths leave `f32`'s range (NB201's
//! reach about 1e40), so synflow computes in double precision on the CPU
//! ([`DoubleBackend`], the generic kernels), whatever the device; one image keeps that cheap.

use burn::{
    backend::Autodiff,
    tensor::{Tensor, TensorData},
};

use super::Scorer;
use crate::engine::{
    backend::{DoubleBackend, EngineBackend},
    supernet::{forward, BnStats, ParamRole},
};

type D = Autodiff<DoubleBackend>;

/// The SynFlow score of `arch`.
pub(super) fn score<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32]) -> f64 {
    let layout = &scorer.layout;
    let device = Default::default();
    let used = layout.used_params(arch);
    let leaves: Vec<Option<Tensor<D, 1>>> = scorer
        .host
        .iter()
        .zip(&used)
        .map(|(values, &used)| {
            used.then(|| {
                let abs: Vec<f64> = values.iter().map(|v| f64::from(v.abs())).collect();
                Tensor::<D, 1>::from_data(TensorData::new(abs, [values.len()]), &device).require_grad()
            })
        })
        .collect();
    let [c, h, w] = layout.input_dims();
    let ones = Tensor::<D, 4>::ones([c, 1, h, w], &device);
    let logits = forward(layout, ones, arch, |id| leaves[id].clone().expect("forward reads used parameters only"), &mut BnStats::Off);
    let grads = logits.sum().backward();
    let mut total = 0.0;
    for (id, leaf) in leaves.iter().enumerate() {
        let (Some(leaf), ParamRole::ConvWeight | ParamRole::LinearWeight) = (leaf, layout.params()[id].role) else {
            continue;
        };
        if let Some(g) = leaf.grad(&grads) {
            let product = (leaf.clone().inner() * g).sum();
            total += product.into_data().convert::<f64>().into_vec::<f64>().expect("a float")[0];
        }
    }
    total
}
