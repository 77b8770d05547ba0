//! NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).
//!
//! Every activation that runs in the subnet gives each image of the batch a binary code: one bit
//! per unit, set when the activation's input is positive. With `c_i` the code of image `i` over
//! all activations, the kernel is `K[i][j] = Σ c_i·c_j + (1 − c_i)·(1 − c_j)` — the number of
//! units on which images `i` and `j` agree — and the score is `log|det K|` (`-inf` when `K` is
//! singular). An activation whose input is identically zero (a dead cell node) still counts, with
//! every bit clear, as in the reference. The batch uses batch-statistics BatchNorm and PyTorch's
//! default initialisation, as the reference does.
//!
//! Linear regions are defined for piecewise-linear activations (ReLU, ReLU6). For smooth ones
//! (tanh, GELU, SiLU, sigmoid) fewshot keeps the same rule — a unit's bit is the sign of its
//! input, the side of the activation's centre it falls on — so the score is defined for every
//! space; it no longer counts linear regions there, and the EFS-NAS paper's remark that NASWOT
//! "cannot be applied" to such activations is about exactly this.

use burn::tensor::{backend::Backend, Tensor};
use fewshot_sdk::Activation;

use super::{linalg::log_abs_det, Scorer};
use crate::engine::{
    backend::EngineBackend,
    supernet::{forward_observed, tensor_to_vec, ActInput, BnStats, Observer},
};

/// The NASWOT score of `arch`.
pub(super) fn score<B: EngineBackend>(scorer: &Scorer<B>, arch: &[u32]) -> f64 {
    let n = scorer.labels.len();
    let mut kernel = Kernel { n, agree: vec![0.0; n * n] };
    forward_observed(&scorer.layout, scorer.images.clone(), arch, |id| scorer.params[id].clone(), &mut BnStats::Batch, &mut kernel);
    log_abs_det(&kernel.agree, n)
}

/// The kernel being accumulated: `agree[i·n + j]` counts the units where images i and j agree.
struct Kernel {
    n: usize,
    agree: Vec<f64>,
}

impl Kernel {
    /// Adds the codes of one activation's input `x` `[N, D]`: with signs `s = 2c − 1`, the
    /// images agree on `(D + s_i·s_j) / 2` of its units.
    fn add<B: Backend>(&mut self, x: Tensor<B, 2>) {
        let [n, d] = x.dims();
        let signs = x.greater_elem(0.0).float().mul_scalar(2.0).sub_scalar(1.0);
        let dots = tensor_to_vec(signs.clone().matmul(signs.transpose()));
        for (a, dot) in self.agree.iter_mut().zip(dots) {
            *a += (d as f64 + dot as f64) / 2.0;
        }
        debug_assert_eq!(n, self.n);
    }
}

impl<B: Backend> Observer<B> for Kernel {
    fn activation_input(&mut self, _node: usize, _kind: Activation, input: ActInput<'_, B>) {
        match input {
            ActInput::Map(x) => {
                let [c, n, h, w] = x.dims();
                self.add(x.clone().swap_dims(0, 1).reshape([n, c * h * w]));
            }
            ActInput::Vec(x) => self.add(x.clone()),
            ActInput::Zero { features } => self.agree.iter_mut().for_each(|a| *a += features as f64),
        }
    }
}
