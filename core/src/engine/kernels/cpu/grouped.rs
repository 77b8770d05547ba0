//! Direct CPU kernels for grouped convolutions (`groups > 1`: depthwise and the like), CNHW.
//!
//! A group with few input channels (depthwise: one) is too narrow for a matrix product to pay.
//! Two direct schemes instead, by plane width:
//! - **wide rows** (≥ [`WIDE_ROWS`] output columns): every tap is read row by row straight from
//!   a zero-padded copy of the input plane, `y[oh] += w[t] · padded[tap row]`;
//! - **narrow rows** (the small planes of deep layers): the planes of a block of images are
//!   gathered once into their tap rows through an index table built once per call (taps that
//!   only read padding, common on tiny planes with large kernels, are skipped), and
//!   the block's output is `k·k` long, vectorised updates `y += w[t] · tap[t]`, so tiny planes
//!   cost no per-row bookkeeping.
//!
//! The backward passes mirror them: dW as dot products with dY, dX added back through the same
//! rows or table. Groups wide enough for a matrix product ([`DENSE_GROUP`] input channels or
//! more) run the dense kernels of [`super::conv`] on each group's contiguous channel block.
//!
//! Work is split by group (the output, dW and dX blocks of a group are contiguous in CNHW), and
//! every sum runs in a fixed order: results do not depend on the number of threads.

use rayon::prelude::*;

use super::conv::{conv_backward, conv_forward, ConvGeom};
use crate::engine::kernels::ConvSpec;

/// Input channels per group from which a group runs as a dense convolution of its own.
pub(super) const DENSE_GROUP: usize = 16;

/// A grouped convolution: the geometry of a convolution (x `[cin, n, h, w]`, w
/// `[cout, cin/groups, k, k]`, read through `Deref`) with the grouped kernels' own helpers.
#[derive(Clone, Copy)]
pub(super) struct GroupedGeom(ConvGeom);

impl std::ops::Deref for GroupedGeom {
    type Target = ConvGeom;

    fn deref(&self) -> &ConvGeom {
        &self.0
    }
}

impl GroupedGeom {
    pub(super) fn new(x: [usize; 4], w: [usize; 4], spec: ConvSpec) -> Self {
        GroupedGeom(ConvGeom::new(x, w, spec))
    }

    /// Input channels of one group.
    pub(super) fn cin_group(&self) -> usize {
        self.cin / self.spec.groups
    }

    /// Output channels of one group.
    pub(super) fn cout_group(&self) -> usize {
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

/// See [`GroupedGeom::table`]: the live taps, and their input positions.
struct Table {
    live: Vec<usize>,
    index: Vec<u32>,
}

/// Floats of one block's tap rows (about a core's L2 share); a block holds at least one image.
const BLOCK_FLOATS: usize = 64 * 1024;

impl GroupedGeom {
    /// Images per block: `k·k · images · out_plane` near [`BLOCK_FLOATS`], so each tap row is
    /// one long vector even when planes are tiny.
    fn block(&self) -> usize {
        (BLOCK_FLOATS / (self.taps() * self.out_plane()).max(1)).clamp(1, self.n)
    }

    /// `padded = relu?(plane)` inside a border of `padding` zeros.
    fn pad(&self, plane: &[f32], padded: &mut Vec<f32>) {
        let (pad, pw) = (self.spec.padding, self.padded_width());
        padded.clear();
        padded.resize(self.padded_plane(), 0.0);
        for (r, row) in plane.chunks_exact(self.w).enumerate() {
            let dst = &mut padded[(r + pad) * pw + pad..][..self.w];
            if self.spec.relu_input {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v.max(0.0);
                }
            } else {
                dst.copy_from_slice(row);
            }
        }
    }

    /// The index table of the narrow-row scheme: for every *live* tap (one that reads at least
    /// one input value; on tiny planes most taps of a large kernel fall into the padding and
    /// are skipped) and every output position, the input position it reads, or `in_plane`
    /// where it falls into the padding (a zero is appended to each copied plane). Built once
    /// per call and shared by all its planes.
    fn table(&self) -> Table {
        let (k, s, pad) = (self.spec.kernel as isize, self.spec.stride as isize, self.spec.padding as isize);
        let outside = self.in_plane() as u32;
        let (mut live, mut index) = (Vec::new(), Vec::with_capacity(self.taps() * self.out_plane()));
        for kh in 0..k {
            for kw in 0..k {
                let start = index.len();
                for oh in 0..self.ho as isize {
                    let ih = oh * s + kh - pad;
                    for ow in 0..self.wo as isize {
                        let iw = ow * s + kw - pad;
                        let inside = (0..self.h as isize).contains(&ih) && (0..self.w as isize).contains(&iw);
                        index.push(if inside { (ih * self.w as isize + iw) as u32 } else { outside });
                    }
                }
                if index[start..].iter().all(|&i| i == outside) {
                    index.truncate(start);
                } else {
                    live.push((kh * k + kw) as usize);
                }
            }
        }
        Table { live, index }
    }

    /// Rows of the live taps `[live, nb·out_plane]` of images `n0..n0+nb` of input channel
    /// `ci`: `rows[l][j·P + p] = relu?(x[ci, n0+j])[index[l][p]]`, zero in the padding.
    fn gather(&self, x: &[f32], ci: usize, n0: usize, nb: usize, table: &Table, copy: &mut Vec<f32>, rows: &mut [f32]) {
        let (plane, width) = (self.out_plane(), nb * self.out_plane());
        for j in 0..nb {
            let src = &x[(ci * self.n + n0 + j) * self.in_plane()..][..self.in_plane()];
            copy.clear();
            if self.spec.relu_input {
                copy.extend(src.iter().map(|v| v.max(0.0)));
            } else {
                copy.extend_from_slice(src);
            }
            copy.push(0.0);
            let copy = copy.as_slice();
            for l in 0..table.live.len() {
                let dst = &mut rows[l * width + j * plane..][..plane];
                for (d, &i) in dst.iter_mut().zip(&table.index[l * plane..][..plane]) {
                    debug_assert!((i as usize) < copy.len());
                    // SAFETY: every table entry is an input position (< in_plane) or in_plane,
                    // the appended zero: always inside `copy` (in_plane + 1 values).
                    *d = unsafe { *copy.get_unchecked(i as usize) };
                }
            }
        }
    }

    /// Adds tap-row gradients `drows[t][j·P + …]` of image `j` back into its input plane
    /// `dst` (the adjoint of [`GroupedGeom::gather`]).
    fn scatter(&self, drows: &[f32], j: usize, width: usize, table: &Table, acc: &mut Vec<f32>, dst: &mut [f32]) {
        let plane = self.out_plane();
        acc.clear();
        acc.resize(self.in_plane() + 1, 0.0);
        for l in 0..table.live.len() {
            let grads = &drows[l * width + j * plane..][..plane];
            for (&i, &d) in table.index[l * plane..][..plane].iter().zip(grads) {
                debug_assert!((i as usize) < acc.len());
                // SAFETY: as in `gather`, every entry indexes `acc` (in_plane + 1 values); the
                // last one collects the padding's share and is dropped.
                unsafe { *acc.get_unchecked_mut(i as usize) += d };
            }
        }
        dst.copy_from_slice(&acc[..self.in_plane()]);
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
    if g.wo >= WIDE_ROWS {
        return forward_wide(x, w, g);
    }
    let table = g.table();
    let (cin_g, cout_g, taps, plane) = (g.cin_group(), g.cout_group(), g.taps(), g.out_plane());
    let mut y = vec![0f32; g.cout * g.n * plane];
    y.par_chunks_mut(cout_g * g.n * plane).enumerate().for_each(|(group, out)| {
        let (mut copy, mut rows) = (Vec::new(), vec![0f32; taps * g.block() * plane]);
        for cl in 0..cin_g {
            for (n0, nb) in blocks(&g) {
                let width = nb * plane;
                g.gather(x, group * cin_g + cl, n0, nb, &table, &mut copy, &mut rows);
                for ol in 0..cout_g {
                    let dst = &mut out[(ol * g.n + n0) * plane..][..width];
                    let weights = &w[((group * cout_g + ol) * cin_g + cl) * taps..][..taps];
                    for (l, &t) in table.live.iter().enumerate() {
                        axpy(dst, weights[t], &rows[l * width..][..width]);
                    }
                }
            }
        }
    });
    y
}

/// Backward: (dX `[cin, n, h, w]` when `need_dx`, dW `[cout, cin/groups, k, k]`).
pub(super) fn backward(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    if g.wo >= WIDE_ROWS {
        return backward_wide(x, w, dy, g, need_dx);
    }
    let table = g.table();
    let (cin_g, cout_g, taps, plane, in_plane) = (g.cin_group(), g.cout_group(), g.taps(), g.out_plane(), g.in_plane());
    let mut dw = vec![0f32; g.cout * cin_g * taps];
    let mut dx = if need_dx { vec![0f32; g.cin * g.n * in_plane] } else { Vec::new() };
    let work = |group: usize, dw: &mut [f32], dx: &mut [f32]| {
        let size = taps * g.block() * plane;
        let (mut copy, mut rows, mut drows) = (Vec::new(), vec![0f32; size], vec![0f32; size]);
        for cl in 0..cin_g {
            let ci = group * cin_g + cl;
            for (n0, nb) in blocks(&g) {
                let width = nb * plane;
                g.gather(x, ci, n0, nb, &table, &mut copy, &mut rows);
                drows[..table.live.len() * width].fill(0.0);
                for ol in 0..cout_g {
                    let co = group * cout_g + ol;
                    let grad = &dy[(co * g.n + n0) * plane..][..width];
                    let base = (ol * cin_g + cl) * taps;
                    let weights = &w[(co * cin_g + cl) * taps..][..taps];
                    for (l, &t) in table.live.iter().enumerate() {
                        dw[base + t] += dot(grad, &rows[l * width..][..width]);
                        if need_dx {
                            axpy(&mut drows[l * width..][..width], weights[t], grad);
                        }
                    }
                }
                if need_dx {
                    for j in 0..nb {
                        let dst = &mut dx[(cl * g.n + n0 + j) * in_plane..][..in_plane];
                        g.scatter(&drows, j, width, &table, &mut copy, dst);
                        if g.spec.relu_input {
                            relu_mask(dst, &x[(ci * g.n + n0 + j) * in_plane..][..in_plane]);
                        }
                    }
                }
            }
        }
    };
    for_each_group(&g, &mut dw, &mut dx, work);
    (need_dx.then_some(dx), dw)
}

/// Output rows from which taps are read straight from the padded plane, row by row, instead of
/// being copied into tap rows first (a row is then long enough to amortise its bookkeeping).
const WIDE_ROWS: usize = 8;

/// [`forward`] for wide rows: `y[oh] += w[t] · padded[tap row]`, no tap-row copies.
fn forward_wide(x: &[f32], w: &[f32], g: GroupedGeom) -> Vec<f32> {
    let (cin_g, cout_g, taps, plane, k, s) = (g.cin_group(), g.cout_group(), g.taps(), g.out_plane(), g.spec.kernel, g.spec.stride);
    let mut y = vec![0f32; g.cout * g.n * plane];
    y.par_chunks_mut(cout_g * g.n * plane).enumerate().for_each(|(group, out)| {
        let mut padded = Vec::new();
        for cl in 0..cin_g {
            for n in 0..g.n {
                g.pad(&x[((group * cin_g + cl) * g.n + n) * g.in_plane()..][..g.in_plane()], &mut padded);
                for ol in 0..cout_g {
                    let dst = &mut out[(ol * g.n + n) * plane..][..plane];
                    let weights = &w[((group * cout_g + ol) * cin_g + cl) * taps..][..taps];
                    for (oh, row) in dst.chunks_exact_mut(g.wo).enumerate() {
                        for kh in 0..k {
                            for kw in 0..k {
                                strided_axpy(row, weights[kh * k + kw], &padded[g.tap_row(kh, kw, oh)..], s);
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

/// [`backward`] for wide rows: dW as row dot products with the padded plane, dX accumulated
/// row by row into a padded gradient plane.
fn backward_wide(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let (cin_g, cout_g, taps, plane, in_plane, k, s) =
        (g.cin_group(), g.cout_group(), g.taps(), g.out_plane(), g.in_plane(), g.spec.kernel, g.spec.stride);
    let (pad, pw) = (g.spec.padding, g.padded_width());
    let mut dw = vec![0f32; g.cout * cin_g * taps];
    let mut dx = if need_dx { vec![0f32; g.cin * g.n * in_plane] } else { Vec::new() };
    let work = |group: usize, dw: &mut [f32], dx: &mut [f32]| {
        let (mut padded, mut dpadded) = (Vec::new(), vec![0f32; g.padded_plane()]);
        for cl in 0..cin_g {
            let ci = group * cin_g + cl;
            for n in 0..g.n {
                let src = &x[(ci * g.n + n) * in_plane..][..in_plane];
                g.pad(src, &mut padded);
                dpadded.fill(0.0);
                for ol in 0..cout_g {
                    let co = group * cout_g + ol;
                    let grad = &dy[(co * g.n + n) * plane..][..plane];
                    let base = (ol * cin_g + cl) * taps;
                    let weights = &w[(co * cin_g + cl) * taps..][..taps];
                    for (oh, grow) in grad.chunks_exact(g.wo).enumerate() {
                        for kh in 0..k {
                            for kw in 0..k {
                                let t = kh * k + kw;
                                let start = g.tap_row(kh, kw, oh);
                                dw[base + t] += strided_dot(grow, &padded[start..], s);
                                if need_dx {
                                    strided_add(&mut dpadded[start..], s, weights[t], grow);
                                }
                            }
                        }
                    }
                }
                if need_dx {
                    let dst = &mut dx[(cl * g.n + n) * in_plane..][..in_plane];
                    for (r, row) in dst.chunks_exact_mut(g.w).enumerate() {
                        row.copy_from_slice(&dpadded[(r + pad) * pw + pad..][..g.w]);
                    }
                    if g.spec.relu_input {
                        relu_mask(dst, src);
                    }
                }
            }
        }
    };
    for_each_group(&g, &mut dw, &mut dx, work);
    (need_dx.then_some(dx), dw)
}

/// `y += a · x[0], x[s], x[2s], …`.
#[inline]
fn strided_axpy(y: &mut [f32], a: f32, x: &[f32], s: usize) {
    if s == 1 {
        axpy(y, a, &x[..y.len()]);
    } else {
        for (o, v) in y.iter_mut().zip(x.iter().step_by(s)) {
            *o += a * v;
        }
    }
}

/// `Σ g[i] · x[i·s]`.
#[inline]
fn strided_dot(g: &[f32], x: &[f32], s: usize) -> f32 {
    if s == 1 {
        dot(g, &x[..g.len()])
    } else {
        g.iter().zip(x.iter().step_by(s)).map(|(a, b)| a * b).sum()
    }
}

/// `y[i·s] += a · x[i]`.
#[inline]
fn strided_add(y: &mut [f32], s: usize, a: f32, x: &[f32]) {
    if s == 1 {
        axpy(&mut y[..x.len()], a, x);
    } else {
        for (o, v) in y.iter_mut().step_by(s).zip(x) {
            *o += a * v;
        }
    }
}

/// Runs a backward pass's `work(group, dW block, dX block)` for every group in parallel (an
/// empty dX block where dX is not needed: `dx` is then empty).
fn for_each_group(g: &GroupedGeom, dw: &mut [f32], dx: &mut [f32], work: impl Fn(usize, &mut [f32], &mut [f32]) + Sync) {
    let dw_blocks = dw.par_chunks_mut(dw.len() / g.spec.groups);
    if dx.is_empty() {
        dw_blocks.enumerate().for_each(|(group, dw)| work(group, dw, &mut []));
    } else {
        let dx_blocks = dx.par_chunks_mut(dx.len() / g.spec.groups);
        dw_blocks.zip(dx_blocks).enumerate().for_each(|(group, (dw, dx))| work(group, dw, dx));
    }
}

/// Zeroes the gradient where the fused ReLU's input was not positive.
fn relu_mask(dx: &mut [f32], x: &[f32]) {
    for (d, &v) in dx.iter_mut().zip(x) {
        if v <= 0.0 {
            *d = 0.0;
        }
    }
}

/// A grouped convolution wide enough per group for the dense kernels: each group's contiguous
/// channel block of x, w and y as a convolution of its own.
pub(super) fn grouped_dense_forward(x: &[f32], w: &[f32], g: GroupedGeom) -> Vec<f32> {
    let groups = g.spec.groups;
    let dense = dense_geom(g);
    let (x_len, w_len) = (x.len() / groups, w.len() / groups);
    (0..groups).flat_map(|i| conv_forward(&x[i * x_len..][..x_len], &w[i * w_len..][..w_len], dense)).collect()
}

/// Backward of [`grouped_dense_forward`].
pub(super) fn grouped_dense_backward(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let groups = g.spec.groups;
    let dense = dense_geom(g);
    let (x_len, w_len, dy_len) = (x.len() / groups, w.len() / groups, dy.len() / groups);
    let (mut dx, mut dw) = (Vec::with_capacity(if need_dx { x.len() } else { 0 }), Vec::with_capacity(w.len()));
    for i in 0..groups {
        let (dxi, dwi) = conv_backward(&x[i * x_len..][..x_len], &w[i * w_len..][..w_len], &dy[i * dy_len..][..dy_len], dense, need_dx);
        dx.extend(dxi.unwrap_or_default());
        dw.extend(dwi);
    }
    (need_dx.then_some(dx), dw)
}

/// One group of a grouped convolution as a dense one.
fn dense_geom(g: GroupedGeom) -> ConvGeom {
    ConvGeom { cin: g.cin_group(), cout: g.cout_group(), spec: ConvSpec { groups: 1, ..g.spec }, ..g.0 }
}
