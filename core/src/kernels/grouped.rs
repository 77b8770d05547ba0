//! Direct CPU kernels for grouped convolutions (`groups > 1`: depthwise and the like), CNHW.
//!
//! A group with few input channels (depthwise: one) is too narrow for a matrix product to pay.
//! Instead, the input planes of a block of images are copied once into their `k·k` tap rows
//! (row copies out of a zero-padded plane), and the block's output is a sum of `k·k` long,
//! vectorised row updates `y += w[t] · tap[t]` — one vector per tap for the whole block, so
//! tiny deep-layer planes cost no per-row bookkeeping. The backward pass uses the same tap
//! rows: dW as dot products with dY, dX as the tap-row gradients added back into a padded
//! plane. Groups wide enough for a
//! product ([`DENSE_GROUP`] input channels or more) run the dense kernels of [`super::cpu`] on
//! each group's contiguous channel block instead.
//!
//! Work is split by group (the output, dW and dX blocks of a group are contiguous in CNHW), and
//! every sum runs in a fixed order: results do not depend on the number of threads.

use rayon::prelude::*;

use super::ConvSpec;

/// Input channels per group from which a group runs as a dense convolution of its own.
pub(super) const DENSE_GROUP: usize = 16;

/// Shapes of a grouped convolution: x `[cin, n, h, w]`, w `[cout, cin/groups, k, k]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct GroupedGeom {
    pub cin: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub ho: usize,
    pub wo: usize,
    pub spec: ConvSpec,
}

impl GroupedGeom {
    pub fn new(x: [usize; 4], w: [usize; 4], spec: ConvSpec) -> Self {
        GroupedGeom { cin: x[0], n: x[1], h: x[2], w: x[3], cout: w[0], ho: spec.out_size(x[2]), wo: spec.out_size(x[3]), spec }
    }

    /// Input channels of one group.
    pub fn cin_group(&self) -> usize {
        self.cin / self.spec.groups
    }

    /// Output channels of one group.
    pub fn cout_group(&self) -> usize {
        self.cout / self.spec.groups
    }

    fn taps(&self) -> usize {
        self.spec.kernel * self.spec.kernel
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }

    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    /// Width of a zero-padded input plane.
    fn padded_width(&self) -> usize {
        self.w + 2 * self.spec.padding
    }

    /// Size of a zero-padded input plane.
    fn padded_plane(&self) -> usize {
        self.padded_width() * (self.h + 2 * self.spec.padding)
    }

    /// Where output row `oh` of tap `(kh, kw)` starts in a padded plane.
    fn tap_row(&self, kh: usize, kw: usize, oh: usize) -> usize {
        (oh * self.spec.stride + kh) * self.padded_width() + kw
    }
}

/// Floats of one block's tap rows (about a core's L2 share); a block holds at least one image.
const BLOCK_FLOATS: usize = 64 * 1024;

impl GroupedGeom {
    /// Images per block: `k·k · images · out_plane` near [`BLOCK_FLOATS`], so each tap row is
    /// one long vector even when planes are tiny.
    fn block(&self) -> usize {
        (BLOCK_FLOATS / (self.taps() * self.out_plane()).max(1)).clamp(1, self.n)
    }

    /// Tap rows `[k·k, nb·out_plane]` of images `n0..n0+nb` of input channel `ci`:
    /// `rows[t][j·P + oh·wo + ow] = relu?(x[ci, n0+j])[oh·s + kh − p, ow·s + kw − p]`, zero in
    /// the padding; each output row is one (strided) copy out of a zero-padded plane.
    fn gather(&self, x: &[f32], ci: usize, n0: usize, nb: usize, padded: &mut Vec<f32>, rows: &mut [f32]) {
        let (plane, width, k, s, pad, pw) =
            (self.out_plane(), nb * self.out_plane(), self.spec.kernel, self.spec.stride, self.spec.padding, self.padded_width());
        padded.clear();
        padded.resize(self.padded_plane(), 0.0);
        for j in 0..nb {
            let src = &x[(ci * self.n + n0 + j) * self.in_plane()..][..self.in_plane()];
            for (r, row) in src.chunks_exact(self.w).enumerate() {
                let dst = &mut padded[(r + pad) * pw + pad..][..self.w];
                if self.spec.relu_input {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = v.max(0.0);
                    }
                } else {
                    dst.copy_from_slice(row);
                }
            }
            for kh in 0..k {
                for kw in 0..k {
                    let tap = &mut rows[(kh * k + kw) * width + j * plane..][..plane];
                    for (oh, out) in tap.chunks_exact_mut(self.wo).enumerate() {
                        let from = &padded[self.tap_row(kh, kw, oh)..];
                        if s == 1 {
                            out.copy_from_slice(&from[..self.wo]);
                        } else {
                            for (o, v) in out.iter_mut().zip(from.iter().step_by(s)) {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds tap-row gradients `drows[t][j·P + …]` of image `j` back into its input plane
    /// `dst` (the adjoint of [`GroupedGeom::gather`]), through the padded plane `padded`.
    fn scatter(&self, drows: &[f32], j: usize, width: usize, padded: &mut Vec<f32>, dst: &mut [f32]) {
        let (plane, k, s, pad, pw) = (self.out_plane(), self.spec.kernel, self.spec.stride, self.spec.padding, self.padded_width());
        padded.clear();
        padded.resize(self.padded_plane(), 0.0);
        for kh in 0..k {
            for kw in 0..k {
                let tap = &drows[(kh * k + kw) * width + j * plane..][..plane];
                for (oh, grads) in tap.chunks_exact(self.wo).enumerate() {
                    let to = &mut padded[self.tap_row(kh, kw, oh)..];
                    if s == 1 {
                        for (o, &d) in to.iter_mut().zip(grads) {
                            *o += d;
                        }
                    } else {
                        for (o, &d) in to.iter_mut().step_by(s).zip(grads) {
                            *o += d;
                        }
                    }
                }
            }
        }
        for (r, row) in dst.chunks_exact_mut(self.w).enumerate() {
            row.copy_from_slice(&padded[(r + pad) * pw + pad..][..self.w]);
        }
    }
}

/// `y += a · x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// `Σ a·b` in 8 lanes (a fixed order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The image blocks `(n0, nb)` of a call.
fn blocks(g: &GroupedGeom) -> impl Iterator<Item = (usize, usize)> + '_ {
    let nb = g.block();
    (0..g.n).step_by(nb).map(move |n0| (n0, nb.min(g.n - n0)))
}

/// Forward: `[cout, n, ho, wo]`.
pub(super) fn forward(x: &[f32], w: &[f32], g: GroupedGeom) -> Vec<f32> {
    let (cin_g, cout_g, taps, plane) = (g.cin_group(), g.cout_group(), g.taps(), g.out_plane());
    let mut y = vec![0f32; g.cout * g.n * plane];
    y.par_chunks_mut(cout_g * g.n * plane).enumerate().for_each(|(group, out)| {
        let (mut padded, mut rows) = (Vec::new(), vec![0f32; taps * g.block() * plane]);
        for cl in 0..cin_g {
            for (n0, nb) in blocks(&g) {
                let width = nb * plane;
                g.gather(x, group * cin_g + cl, n0, nb, &mut padded, &mut rows);
                for ol in 0..cout_g {
                    let dst = &mut out[(ol * g.n + n0) * plane..][..width];
                    let weights = &w[((group * cout_g + ol) * cin_g + cl) * taps..][..taps];
                    for (t, &wv) in weights.iter().enumerate() {
                        axpy(dst, wv, &rows[t * width..][..width]);
                    }
                }
            }
        }
    });
    y
}

/// Backward: (dX `[cin, n, h, w]` when `need_dx`, dW `[cout, cin/groups, k, k]`).
pub(super) fn backward(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let (cin_g, cout_g, taps, plane, in_plane) = (g.cin_group(), g.cout_group(), g.taps(), g.out_plane(), g.in_plane());
    let mut dw = vec![0f32; g.cout * cin_g * taps];
    let mut dx = if need_dx { vec![0f32; g.cin * g.n * in_plane] } else { Vec::new() };
    let work = |group: usize, dw: &mut [f32], dx: &mut [f32]| {
        let size = taps * g.block() * plane;
        let (mut padded, mut rows, mut drows) = (Vec::new(), vec![0f32; size], vec![0f32; size]);
        for cl in 0..cin_g {
            let ci = group * cin_g + cl;
            for (n0, nb) in blocks(&g) {
                let width = nb * plane;
                g.gather(x, ci, n0, nb, &mut padded, &mut rows);
                drows[..taps * width].fill(0.0);
                for ol in 0..cout_g {
                    let co = group * cout_g + ol;
                    let grad = &dy[(co * g.n + n0) * plane..][..width];
                    let base = (ol * cin_g + cl) * taps;
                    for t in 0..taps {
                        dw[base + t] += dot(grad, &rows[t * width..][..width]);
                    }
                    if need_dx {
                        let weights = &w[(co * cin_g + cl) * taps..][..taps];
                        for (t, &wv) in weights.iter().enumerate() {
                            axpy(&mut drows[t * width..][..width], wv, grad);
                        }
                    }
                }
                if need_dx {
                    for j in 0..nb {
                        let dst = &mut dx[(cl * g.n + n0 + j) * in_plane..][..in_plane];
                        g.scatter(&drows, j, width, &mut padded, dst);
                        if g.spec.relu_input {
                            let src = &x[(ci * g.n + n0 + j) * in_plane..][..in_plane];
                            for (o, &v) in dst.iter_mut().zip(src) {
                                if v <= 0.0 {
                                    *o = 0.0;
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let dw_blocks = dw.par_chunks_mut(cout_g * cin_g * taps);
    if need_dx {
        let dx_blocks = dx.par_chunks_mut(cin_g * g.n * in_plane);
        dw_blocks.zip(dx_blocks).enumerate().for_each(|(group, (dw, dx))| work(group, dw, dx));
    } else {
        dw_blocks.enumerate().for_each(|(group, dw)| work(group, dw, &mut []));
    }
    (need_dx.then_some(dx), dw)
}
