//! The supernet's compute kernels, with hand-written backward passes.
//!
//! Feature maps inside a supernet are **channel-major**, `[C, N, H, W]` ("CNHW"): every
//! channel's values over the whole batch are contiguous, so a convolution is one large matrix
//! product per block of images and batch statistics are contiguous row reductions.
//!
//! [`Kernels`] is implemented by each inner backend. Every method has a generic default written
//! with burn's plain tensor and module ops — backward passes included (burn's own convolution
//! and pooling backward ops, closed-form activation derivatives), never a nested autodiff
//! pass, which would block on burn-autodiff's graph lock inside the outer backward. The CUDA
//! backend uses these defaults (module `generic`), and so does the `reference` backend (burn's
//! ndarray, on the CPU), which is how CI trains through exactly the GPU's code path. The flex
//! CPU backend overrides all of them with direct kernels (module `cpu`) because burn-flex's
//! generic ops are several times slower than PyTorch on these small, channel-poor tensors.
//!
//! [`SupernetOps`] is the tensor-level interface the supernet forward pass is written against.
//! It is implemented for the inner backends (evaluation) and for `Autodiff<B>` (training),
//! where each kernel becomes one autodiff node whose backward calls the matching backward
//! kernel (module `autodiff`).

mod autodiff;
mod cpu;
pub(crate) mod generic;

use burn::tensor::{
    backend::Backend,
    ops::{ConvOptions, FloatTensor},
    Tensor, TensorPrimitive,
};
use fewshot_sdk::Activation;

use generic::{
    generic_act, generic_act_backward, generic_bn, generic_conv, generic_conv_backward, generic_gap, generic_pool,
    generic_pool_backward,
};

/// BatchNorm epsilon (PyTorch's default).
pub(crate) const BN_EPS: f64 = 1e-5;

/// A convolution: square kernel, stride, zero padding, groups; optionally a ReLU applied to
/// the input on the fly (the ReLU of a ReLU→Conv pair, fused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Channel groups.
    pub groups: usize,
    /// Apply ReLU to the input first.
    pub relu_input: bool,
}

impl ConvSpec {
    /// Output size for input size `size`.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], self.groups)
    }
}

/// A pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Average (`true`) or max pooling.
    pub average: bool,
    /// Window size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
    /// Average pooling: whether padded zeros count in the divisor.
    pub count_include_pad: bool,
}

impl PoolSpec {
    /// Output size for input size `size`.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

/// A backend primitive as a tensor.
pub(crate) fn from_prim<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// A tensor's backend primitive.
pub(crate) fn into_prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// Gradients of `sum(f(inputs) · dy)` with respect to each input: the vector-Jacobian product
/// of `f` at `inputs` through burn's autodiff — the independent reference the tests hold the
/// hand-written backward passes against (never called inside a backward pass).
#[cfg(test)]
pub(crate) fn vjp<B: Backend, const D: usize, const N: usize>(
    inputs: [FloatTensor<B>; N],
    dy: FloatTensor<B>,
    f: impl FnOnce(&[Tensor<burn::backend::Autodiff<B>, 4>]) -> Tensor<burn::backend::Autodiff<B>, D>,
) -> [FloatTensor<B>; N] {
    use burn::backend::Autodiff;
    let leaves: Vec<Tensor<Autodiff<B>, 4>> = inputs
        .into_iter()
        .map(|x| Tensor::from_inner(from_prim::<B, 4>(x)).require_grad())
        .collect();
    let y = f(&leaves);
    let dy = Tensor::<Autodiff<B>, D>::from_inner(from_prim(dy));
    let grads = (y * dy).sum().backward();
    let out: Vec<FloatTensor<B>> = leaves
        .iter()
        .map(|l| into_prim(l.grad(&grads).unwrap_or_else(|| l.clone().inner().zeros_like())))
        .collect();
    out.try_into().unwrap_or_else(|_| unreachable!("one gradient per input"))
}

/// Kernels of one inner backend, on raw tensor primitives, feature maps in CNHW.
pub trait Kernels: Backend {
    /// `conv(relu?(x), w)`: x `[Cin, N, H, W]`, w `[Cout, Cin/groups, k, k]` → `[Cout, N, Ho, Wo]`.
    fn conv_forward(x: FloatTensor<Self>, w: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        into_prim(generic_conv::<Self>(from_prim(x), from_prim(w), spec))
    }

    /// Gradients of the convolution: (dx when `need_dx`, dw).
    fn conv_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        spec: ConvSpec,
        need_dx: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        generic_conv_backward::<Self>(x, w, dy, spec, need_dx)
    }

    /// Batch-statistics BatchNorm: (y, mean `[C]`, 1/√(var+eps) `[C]`), biased variance.
    fn bn_forward(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (y, mean, inv_std) = generic_bn::<Self>(from_prim(x));
        (into_prim(y), into_prim(mean), into_prim(inv_std))
    }

    /// BatchNorm backward from its output `y` and `inv_std`:
    /// `dx = inv_std · (dy − mean(dy) − y · mean(dy · y))` per channel.
    fn bn_backward(y: FloatTensor<Self>, inv_std: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let y = from_prim::<Self, 4>(y);
        let dy = from_prim::<Self, 4>(dy);
        let [c, _, _, _] = y.dims();
        let inv_std = from_prim::<Self, 1>(inv_std).reshape([c, 1, 1, 1]);
        let mean_dy = dy.clone().mean_dims(&[1, 2, 3]);
        let mean_dy_y = (dy.clone() * y.clone()).mean_dims(&[1, 2, 3]);
        into_prim((dy - mean_dy - y * mean_dy_y) * inv_std)
    }

    /// BatchNorm with given per-channel statistics: `(x − mean) · inv_std`.
    fn bn_normalize(x: FloatTensor<Self>, mean: FloatTensor<Self>, inv_std: FloatTensor<Self>) -> FloatTensor<Self> {
        let mean = from_prim::<Self, 1>(mean);
        let c = mean.dims()[0];
        let inv_std = from_prim::<Self, 1>(inv_std).reshape([c, 1, 1, 1]);
        into_prim((from_prim::<Self, 4>(x) - mean.reshape([c, 1, 1, 1])) * inv_std)
    }

    /// Pooling.
    fn pool_forward(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        into_prim(generic_pool::<Self>(from_prim(x), spec))
    }

    /// Pooling backward (from the input `x`).
    fn pool_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        generic_pool_backward::<Self>(x, dy, spec)
    }

    /// Element-wise activation.
    fn act_forward(kind: Activation, x: FloatTensor<Self>) -> FloatTensor<Self> {
        into_prim(generic_act::<Self, 4>(kind, from_prim(x)))
    }

    /// Activation backward (from the input `x`).
    fn act_backward(kind: Activation, x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        into_prim(generic_act_backward::<Self, 4>(kind, from_prim(x), from_prim(dy)))
    }

    /// Global average pooling `[C, N, H, W]` → `[N, C]`.
    fn gap_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        into_prim(generic_gap::<Self>(from_prim(x)))
    }

    /// Global average pooling backward: `dy` `[N, C]` → `[C, N, H, W]`.
    fn gap_backward(dy: FloatTensor<Self>, dims: [usize; 4]) -> FloatTensor<Self> {
        let [c, n, h, w] = dims;
        let dy = from_prim::<Self, 2>(dy).transpose().reshape([c, n, 1]).div_scalar((h * w) as f64);
        into_prim(dy.expand([c, n, h * w]).reshape([c, n, h, w]))
    }
}

/// The supernet ops on tensors of backend `Self` (feature maps CNHW).
pub trait SupernetOps: Backend {
    /// Convolution (no bias; add it separately).
    fn conv(x: Tensor<Self, 4>, w: Tensor<Self, 4>, spec: ConvSpec) -> Tensor<Self, 4>;
    /// Batch-statistics BatchNorm without affine parameters.
    fn batch_norm(x: Tensor<Self, 4>) -> Tensor<Self, 4>;
    /// [`SupernetOps::batch_norm`] that also returns the batch statistics (mean, biased
    /// variance), for BN recalibration (no gradient flows through them).
    fn batch_norm_stats(x: Tensor<Self, 4>) -> (Tensor<Self, 4>, Tensor<Self, 1>, Tensor<Self, 1>) {
        let [c, _, _, _] = x.dims();
        let mean = x.clone().mean_dims(&[1, 2, 3]);
        let var = (x.clone() - mean.clone()).square().mean_dims(&[1, 2, 3]);
        (Self::batch_norm(x), mean.reshape([c]).detach(), var.reshape([c]).detach())
    }
    /// BatchNorm with fixed statistics: `(x − mean) / √(var + eps)`.
    fn batch_norm_fixed(x: Tensor<Self, 4>, mean: Tensor<Self, 1>, var: Tensor<Self, 1>) -> Tensor<Self, 4> {
        let c = mean.dims()[0];
        let inv_std = var.add_scalar(BN_EPS).sqrt().recip().reshape([c, 1, 1, 1]);
        (x - mean.reshape([c, 1, 1, 1])) * inv_std
    }
    /// Pooling.
    fn pool(x: Tensor<Self, 4>, spec: PoolSpec) -> Tensor<Self, 4>;
    /// Activation.
    fn act(kind: Activation, x: Tensor<Self, 4>) -> Tensor<Self, 4>;
    /// Global average pooling `[C, N, H, W]` → `[N, C]`.
    fn global_pool(x: Tensor<Self, 4>) -> Tensor<Self, 2>;
}

/// Every inner backend runs the supernet ops through its kernels directly (under autodiff, each
/// becomes one node, see module `autodiff`).
impl<B: Kernels> SupernetOps for B {
    fn conv(x: Tensor<Self, 4>, w: Tensor<Self, 4>, spec: ConvSpec) -> Tensor<Self, 4> {
        from_prim(B::conv_forward(into_prim(x), into_prim(w), spec))
    }
    fn batch_norm(x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        from_prim(B::bn_forward(into_prim(x)).0)
    }
    fn batch_norm_stats(x: Tensor<Self, 4>) -> (Tensor<Self, 4>, Tensor<Self, 1>, Tensor<Self, 1>) {
        let (y, mean, inv_std) = B::bn_forward(into_prim(x));
        let inv_std = from_prim::<Self, 1>(inv_std);
        let var = inv_std.square().recip().sub_scalar(BN_EPS);
        (from_prim(y), from_prim(mean), var)
    }
    fn batch_norm_fixed(x: Tensor<Self, 4>, mean: Tensor<Self, 1>, var: Tensor<Self, 1>) -> Tensor<Self, 4> {
        let inv_std = var.add_scalar(BN_EPS).sqrt().recip();
        from_prim(B::bn_normalize(into_prim(x), into_prim(mean), into_prim(inv_std)))
    }
    fn pool(x: Tensor<Self, 4>, spec: PoolSpec) -> Tensor<Self, 4> {
        from_prim(B::pool_forward(into_prim(x), spec))
    }
    fn act(kind: Activation, x: Tensor<Self, 4>) -> Tensor<Self, 4> {
        from_prim(B::act_forward(kind, into_prim(x)))
    }
    fn global_pool(x: Tensor<Self, 4>) -> Tensor<Self, 2> {
        from_prim(B::gap_forward(into_prim(x)))
    }
}
