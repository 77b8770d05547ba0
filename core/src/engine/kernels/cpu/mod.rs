//! Direct CPU kernels for the flex backend (f32, CNHW feature maps).
//!
//! Convolutions are im2col + `gemm` over blocks of images: one matrix product per block, the
//! block sized so its column buffer stays in cache. Blocks run in parallel on rayon's pool.
//! Every reduction (weight gradients, batch statistics) is split the same way whatever the
//! number of threads and summed in a fixed order, so results are bit-for-bit reproducible.

mod activation;
mod conv;
mod grouped;
mod matmul;
mod norm;
mod pool;

use std::{borrow::Cow, cell::RefCell, mem::MaybeUninit};

use burn::tensor::{ops::FloatTensor, DType, TensorData};
use burn_flex::FlexTensor;
use fewshot_sdk::Activation;
use rayon::prelude::*;

use super::{ConvSpec, Kernels, PoolSpec};
use activation::{act_backward, act_forward};
use conv::{conv_backward, conv_forward, ConvGeom};
use grouped::{grouped_dense_backward, grouped_dense_forward, GroupedGeom, DENSE_GROUP};
use norm::{bn_backward, bn_forward};
use pool::{pool_backward, pool_forward};

/// The backend these kernels serve: burn-flex on the CPU.
type Flex = burn::backend::Flex;

/// A vector of `n` floats that `fill` initialises completely (every kernel writes its whole
/// output), without zeroing it first.
fn filled(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: `fill` wrote all `n` elements (the callers below write every output element).
    unsafe { v.set_len(n) };
    v
}

thread_local! {
    /// Per-thread scratch buffers (column matrices), kept between calls so they are neither
    /// reallocated nor zeroed for every block.
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { col: Vec::new(), dcol: Vec::new(), plane: Vec::new() }) };
}

/// A thread's scratch buffers.
struct Scratch {
    /// Packed column matrix.
    col: Vec<f32>,
    /// Column-matrix gradient.
    dcol: Vec<f32>,
    /// One tap plane.
    plane: Vec<f32>,
}

/// Runs `f` with this thread's scratch buffers.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch { col: Vec::new(), dcol: Vec::new(), plane: Vec::new() }),
    })
}

/// The first `len` elements of a scratch buffer, grown (never shrunk, so never re-zeroed) to
/// hold them. Callers overwrite what they use.
fn grow(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(t.dtype(), DType::F32, "fewshot kernels compute in f32");
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous").to_vec()),
    }
}

fn dims<const D: usize>(t: &FlexTensor) -> [usize; D] {
    let shape = t.layout().shape();
    let mut out = [0; D];
    for (i, o) in out.iter_mut().enumerate() {
        *o = shape[i];
    }
    out
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Sum of a slice, in f32 lanes within 1024-element blocks and f64 across blocks (fast and
/// accurate on long rows).
fn sum(xs: &[f32]) -> f64 {
    xs.chunks(1024).map(|b| block_sum(b) as f64).sum()
}

/// Sum of a short block in 16 f32 lanes.
fn block_sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    let mut total: f32 = chunks.remainder().iter().sum();
    for a in acc {
        total += a;
    }
    total
}

/// (Σ a, Σ a·b) in one pass, blocked like [`sum`].
fn sum_and_dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let mut total = (0f64, 0f64);
    for (x, y) in a.chunks(1024).zip(b.chunks(1024)) {
        let mut acc_a = [0f32; 16];
        let mut acc_ab = [0f32; 16];
        let mut cx = x.chunks_exact(16);
        let mut cy = y.chunks_exact(16);
        for (p, q) in (&mut cx).zip(&mut cy) {
            for i in 0..16 {
                acc_a[i] += p[i];
                acc_ab[i] += p[i] * q[i];
            }
        }
        let mut block = (0f32, 0f32);
        for (&p, &q) in cx.remainder().iter().zip(cy.remainder()) {
            block.0 += p;
            block.1 += p * q;
        }
        for i in 0..16 {
            block.0 += acc_a[i];
            block.1 += acc_ab[i];
        }
        total.0 += block.0 as f64;
        total.1 += block.1 as f64;
    }
    total
}

/// (Σ x, Σ x²) in one pass.
fn sum_and_squares(x: &[f32]) -> (f64, f64) {
    sum_and_dot(x, x)
}

impl Kernels for Flex {
    fn conv_forward(x: FloatTensor<Self>, w: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        let (xd, wd): ([usize; 4], [usize; 4]) = (dims(&x), dims(&w));
        if spec.groups != 1 {
            let g = GroupedGeom::new(xd, wd, spec);
            let y = if g.cin_group() >= DENSE_GROUP {
                grouped_dense_forward(&values(&x), &values(&w), g)
            } else {
                grouped::forward(&values(&x), &values(&w), g)
            };
            return tensor(y, [g.cout, g.n, g.ho, g.wo]);
        }
        let g = ConvGeom::new(xd, wd, spec);
        let y = conv_forward(&values(&x), &values(&w), g);
        tensor(y, [g.cout, g.n, g.ho, g.wo])
    }

    fn conv_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        spec: ConvSpec,
        need_dx: bool,
    ) -> (Option<FloatTensor<Self>>, FloatTensor<Self>) {
        let (xd, wd): ([usize; 4], [usize; 4]) = (dims(&x), dims(&w));
        let (dx, dw) = if spec.groups != 1 {
            let g = GroupedGeom::new(xd, wd, spec);
            if g.cin_group() >= DENSE_GROUP {
                grouped_dense_backward(&values(&x), &values(&w), &values(&dy), g, need_dx)
            } else {
                grouped::backward(&values(&x), &values(&w), &values(&dy), g, need_dx)
            }
        } else {
            conv_backward(&values(&x), &values(&w), &values(&dy), ConvGeom::new(xd, wd, spec), need_dx)
        };
        (dx.map(|dx| tensor(dx, xd)), tensor(dw, wd))
    }

    fn bn_forward(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let d: [usize; 4] = dims(&x);
        let (y, mean, inv_std) = bn_forward(&values(&x), d[0]);
        (tensor(y, d), tensor(mean, [d[0]]), tensor(inv_std, [d[0]]))
    }

    fn bn_backward(y: FloatTensor<Self>, inv_std: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let d: [usize; 4] = dims(&y);
        tensor(bn_backward(&values(&y), &values(&inv_std), &values(&dy)), d)
    }

    fn bn_normalize(x: FloatTensor<Self>, mean: FloatTensor<Self>, inv_std: FloatTensor<Self>) -> FloatTensor<Self> {
        let d: [usize; 4] = dims(&x);
        let (x, mean, inv_std) = (values(&x), values(&mean), values(&inv_std));
        let len = x.len() / d[0];
        let y = filled(x.len(), |y| {
            y.par_chunks_mut(len).zip(x.par_chunks(len)).enumerate().for_each(|(c, (y, x))| {
                for (o, &v) in y.iter_mut().zip(x) {
                    o.write((v - mean[c]) * inv_std[c]);
                }
            });
        });
        tensor(y, d)
    }

    fn pool_forward(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        let [c, n, h, w] = dims(&x);
        let y = pool_forward(&values(&x), c * n, h, w, spec);
        tensor(y, [c, n, spec.out_size(h), spec.out_size(w)])
    }

    fn pool_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        let d @ [c, n, h, w] = dims(&x);
        tensor(pool_backward(&values(&x), &values(&dy), c * n, h, w, spec), d)
    }

    fn act_forward(kind: Activation, x: FloatTensor<Self>) -> FloatTensor<Self> {
        let d: [usize; 4] = dims(&x);
        tensor(act_forward(kind, &values(&x)), d)
    }

    fn act_backward(kind: Activation, x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let d: [usize; 4] = dims(&x);
        tensor(act_backward(kind, &values(&x), &values(&dy)), d)
    }

    fn gap_forward(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let [c, n, h, w] = dims(&x);
        let x = values(&x);
        let plane = h * w;
        let mut y = vec![0f32; n * c];
        for ci in 0..c {
            for ni in 0..n {
                y[ni * c + ci] = (sum(&x[(ci * n + ni) * plane..][..plane]) / plane as f64) as f32;
            }
        }
        tensor(y, [n, c])
    }

    fn gap_backward(dy: FloatTensor<Self>, d: [usize; 4]) -> FloatTensor<Self> {
        let [c, n, h, w] = d;
        let dy = values(&dy);
        let plane = h * w;
        let mut dx = vec![0f32; c * n * plane];
        for ci in 0..c {
            for ni in 0..n {
                dx[(ci * n + ni) * plane..][..plane].fill(dy[ni * c + ci] / plane as f32);
            }
        }
        tensor(dx, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
        let mut rng = crate::util::rng::Rng::new(seed);
        let n = shape.iter().product();
        tensor((0..n).map(|_| rng.normal() as f32).collect(), shape)
    }

    pub(super) fn close(a: &FlexTensor, b: &FlexTensor, what: &str) {
        assert_eq!(a.layout().shape(), b.layout().shape(), "{what}: shapes");
        let (a, b) = (values(a), values(b));
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert!((x - y).abs() <= 2e-4 * scale, "{what}: element {i}: {x} vs {y}");
        }
    }
}
