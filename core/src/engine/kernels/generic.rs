//! The backend-generic kernels: burn's plain tensor and module ops, backward passes included
//! (burn's convolution and pooling backward ops, closed-form activation derivatives). They are
//! the defaults of [`Kernels`](super::Kernels), run by the GPU backends and the `reference`
//! backend.

use burn::tensor::{
    activation,
    backend::Backend,
    module::{avg_pool2d, conv2d, max_pool2d},
    ops::FloatTensor,
    Tensor,
};
use fewshot_sdk::Activation;

use super::{from_prim, into_prim, ConvSpec, PoolSpec, BN_EPS};

/// Generic conv in CNHW via burn's NCHW conv.
pub(crate) fn generic_conv<B: Backend>(x: Tensor<B, 4>, w: Tensor<B, 4>, spec: ConvSpec) -> Tensor<B, 4> {
    let x = if spec.relu_input { activation::relu(x) } else { x };
    conv2d(x.swap_dims(0, 1), w, None, spec.options()).swap_dims(0, 1)
}

/// Generic batch-statistics normalisation in CNHW: (y, mean [C], 1/std [C]).
pub(crate) fn generic_bn<B: Backend>(x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
    let [c, _, _, _] = x.dims();
    let mean = x.clone().mean_dims(&[1, 2, 3]);
    let centred = x - mean.clone();
    let var = centred.clone().square().mean_dims(&[1, 2, 3]);
    let inv_std = var.add_scalar(BN_EPS).sqrt().recip();
    let y = centred * inv_std.clone();
    (y, mean.reshape([c]), inv_std.reshape([c]))
}

pub(crate) fn generic_pool<B: Backend>(x: Tensor<B, 4>, s: PoolSpec) -> Tensor<B, 4> {
    let x = x.swap_dims(0, 1);
    let y = if s.average {
        avg_pool2d(x, [s.kernel; 2], [s.stride; 2], [s.padding; 2], s.count_include_pad, false)
    } else {
        max_pool2d(x, [s.kernel; 2], [s.stride; 2], [s.padding; 2], [1, 1], false)
    };
    y.swap_dims(0, 1)
}

/// Gradients of [`generic_conv`] with burn's convolution backward ops: (dx when `need_dx`, dw).
pub(crate) fn generic_conv_backward<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    dy: FloatTensor<B>,
    spec: ConvSpec,
    need_dx: bool,
) -> (Option<FloatTensor<B>>, FloatTensor<B>) {
    let x = from_prim::<B, 4>(x);
    let input = if spec.relu_input { activation::relu(x.clone()) } else { x.clone() };
    let input = into_prim(input.swap_dims(0, 1));
    let dy = into_prim(from_prim::<B, 4>(dy).swap_dims(0, 1));
    let dw = B::conv2d_weight_backward(input.clone(), w.clone(), dy.clone(), spec.options());
    let dx = need_dx.then(|| {
        let dx = from_prim::<B, 4>(B::conv2d_x_backward(input, w, dy, spec.options())).swap_dims(0, 1);
        into_prim(if spec.relu_input { dx.mask_fill(x.lower_equal_elem(0.0), 0.0) } else { dx })
    });
    (dx, dw)
}

/// Gradient of [`generic_pool`] with burn's pooling backward ops.
pub(crate) fn generic_pool_backward<B: Backend>(x: FloatTensor<B>, dy: FloatTensor<B>, s: PoolSpec) -> FloatTensor<B> {
    let x = into_prim(from_prim::<B, 4>(x).swap_dims(0, 1));
    let dy = into_prim(from_prim::<B, 4>(dy).swap_dims(0, 1));
    let (k, stride, pad) = ([s.kernel; 2], [s.stride; 2], [s.padding; 2]);
    let dx = if s.average {
        B::avg_pool2d_backward(x, dy, k, stride, pad, s.count_include_pad, false)
    } else {
        let indices = B::max_pool2d_with_indices(x.clone(), k, stride, pad, [1, 1], false).indices;
        B::max_pool2d_with_indices_backward(x, k, stride, pad, [1, 1], false, dy, indices).x_grad
    };
    into_prim(from_prim::<B, 4>(dx).swap_dims(0, 1))
}

/// Gradient of [`generic_act`] from its input, in closed form (the derivatives the CPU
/// kernels use: ReLU and ReLU6 pass the gradient strictly inside their linear range).
pub(crate) fn generic_act_backward<B: Backend, const D: usize>(
    kind: Activation,
    x: Tensor<B, D>,
    dy: Tensor<B, D>,
) -> Tensor<B, D> {
    match kind {
        Activation::Relu => dy.mask_fill(x.lower_equal_elem(0.0), 0.0),
        Activation::Relu6 => dy.mask_fill(x.clone().lower_equal_elem(0.0).bool_or(x.greater_equal_elem(6.0)), 0.0),
        Activation::Tanh => dy * activation::tanh(x).square().neg().add_scalar(1.0),
        Activation::Gelu => {
            let cdf = x.clone().mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0).mul_scalar(0.5);
            let pdf = x.clone().square().mul_scalar(-0.5).exp().mul_scalar(0.398_942_280_401_432_7);
            dy * (cdf + x * pdf)
        }
        Activation::Sigmoid => {
            let s = activation::sigmoid(x);
            dy * (s.clone() * s.neg().add_scalar(1.0))
        }
        Activation::Silu => {
            let s = activation::sigmoid(x.clone());
            let one_minus = s.clone().neg().add_scalar(1.0);
            dy * (s * (x * one_minus).add_scalar(1.0))
        }
        other => unreachable!("activation {other:?} is rejected when the layout is built"),
    }
}

pub(crate) fn generic_act<B: Backend, const D: usize>(kind: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match kind {
        Activation::Relu => activation::relu(x),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Tanh => activation::tanh(x),
        Activation::Gelu => activation::gelu(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Silu => activation::silu(x),
        other => unreachable!("activation {other:?} is rejected when the layout is built"),
    }
}

pub(crate) fn generic_gap<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [c, n, h, w] = x.dims();
    x.reshape([c, n, h * w]).mean_dim(2).reshape([c, n]).transpose()
}
