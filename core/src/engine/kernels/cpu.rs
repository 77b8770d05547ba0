//! Direct CPU kernels for the flex backend (f32, CNHW feature maps).
//!
//! Convolutions are im2col + `gemm` over blocks of images: one matrix product per block, the
//! block sized so its column buffer stays in cache. Blocks run in parallel on rayon's pool.
//! Every reduction (weight gradients, batch statistics) is split the same way whatever the
//! number of threads and summed in a fixed order, so results are bit-for-bit reproducible.

use std::{borrow::Cow, cell::RefCell, mem::MaybeUninit};

use burn::tensor::{ops::FloatTensor, DType, TensorData};
use burn_flex::FlexTensor;
use fewshot_sdk::Activation;
use rayon::prelude::*;

use super::{
    grouped::{self, GroupedGeom, DENSE_GROUP},
    matmul::{broadcast, dot_grid, Packed, Taps, View, ViewMut, PANEL},
    ConvSpec, Kernels, PoolSpec,
};
use crate::engine::backend::CpuBackend;

type Flex = CpuBackend;

/// Target size of one block's column buffer, in floats (256 KiB: about one core's L2 share).
const BLOCK_FLOATS: usize = 64 * 1024;

/// A raw output pointer shared by parallel blocks that write disjoint parts.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every parallel user writes a disjoint region.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

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


/// The output columns `ow` whose input column `ow·stride + offset` lies in `0..width`.
pub(super) fn valid_range(out: usize, width: usize, stride: usize, offset: isize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 { 0 } else { ((-offset) + s - 1) / s };
    let hi = (width as isize - offset + s - 1).div_euclid(s).clamp(0, out as isize);
    (lo.min(hi) as usize, hi as usize)
}

/// `out = relu?(src)`.
fn relu_copy(src: &[f32], out: &mut [f32], relu: bool) {
    if relu {
        for (o, &v) in out.iter_mut().zip(src) {
            *o = v.max(0.0);
        }
    } else {
        out.copy_from_slice(src);
    }
}

/// Writes `values` into row `row` of a packed matrix with `rows` rows, from column `first`,
/// one panel-sized piece at a time.
#[inline]
fn pack_run(packed: &mut [f32], rows: usize, row: usize, first: usize, values: &[f32]) {
    let mut col = first;
    let mut rest = values;
    while !rest.is_empty() {
        let take = (PANEL - col % PANEL).min(rest.len());
        let at = Packed::index(rows, row, col);
        if take == PANEL {
            packed[at..at + PANEL].copy_from_slice(&rest[..PANEL]);
        } else {
            packed[at..at + take].copy_from_slice(&rest[..take]);
        }
        col += take;
        rest = &rest[take..];
    }
}

/// Copies the taps of one zero-padded input plane into a packed column matrix.
struct TapCopy {
    /// Rows of the packed matrix.
    rows: usize,
    /// Kernel size.
    k: usize,
    /// Input channel (selects the matrix rows `ci·k²..`).
    ci: usize,
    /// Plane width.
    w: usize,
    /// Padded plane width.
    padded_w: usize,
}

impl TapCopy {
    /// Panel by panel, for panel-aligned planes whose rows are `SEG`-float pieces of a panel
    /// (`SEG` = [`PANEL`] when the width is a multiple of it, else the width itself): constant-
    /// size copies only.
    #[inline(always)]
    fn panels<const SEG: usize>(&self, col: &mut [f32], padded: &[f32], first: usize, out_plane: usize) {
        // Source offsets of the pieces of the current panel (at most PANEL / 4 = 4 pieces).
        let mut starts = [0usize; 4];
        let (mut oh, mut ow) = (0, 0);
        for panel in 0..out_plane / PANEL {
            for start in starts.iter_mut().take(PANEL / SEG) {
                *start = oh * self.padded_w + ow;
                ow += SEG;
                if ow == self.w {
                    ow = 0;
                    oh += 1;
                }
            }
            let base = (first / PANEL + panel) * self.rows * PANEL;
            for kh in 0..self.k {
                for kw in 0..self.k {
                    let row = (self.ci * self.k + kh) * self.k + kw;
                    let dst = &mut col[base + row * PANEL..][..PANEL];
                    let shift = kh * self.padded_w + kw;
                    for (piece, &start) in starts.iter().take(PANEL / SEG).enumerate() {
                        dst[piece * SEG..][..SEG].copy_from_slice(&padded[start + shift..][..SEG]);
                    }
                }
            }
        }
    }

    /// Row by row, for any width.
    fn runs(&self, col: &mut [f32], padded: &[f32], first: usize, h: usize) {
        for kh in 0..self.k {
            for kw in 0..self.k {
                let row = (self.ci * self.k + kh) * self.k + kw;
                for oh in 0..h {
                    let src = &padded[(oh + kh) * self.padded_w + kw..][..self.w];
                    pack_run(col, self.rows, row, first + oh * self.w, src);
                }
            }
        }
    }
}

/// Geometry of one convolution.
#[derive(Clone, Copy)]
struct ConvGeom {
    cin: usize,
    n: usize,
    h: usize,
    w: usize,
    cout: usize,
    ho: usize,
    wo: usize,
    spec: ConvSpec,
}

impl ConvGeom {
    fn new(x: [usize; 4], w: [usize; 4], spec: ConvSpec) -> Self {
        ConvGeom {
            cin: x[0],
            n: x[1],
            h: x[2],
            w: x[3],
            cout: w[0],
            ho: spec.out_size(x[2]),
            wo: spec.out_size(x[3]),
            spec,
        }
    }

    /// Rows of the column matrix.
    fn rows(&self) -> usize {
        self.cin * self.spec.kernel * self.spec.kernel
    }

    fn out_plane(&self) -> usize {
        self.ho * self.wo
    }

    fn in_plane(&self) -> usize {
        self.h * self.w
    }

    /// A 1×1, stride-1, unpadded convolution reads its input as the column matrix itself.
    fn pointwise(&self) -> bool {
        self.spec.kernel == 1 && self.spec.stride == 1 && self.spec.padding == 0
    }

    /// Images per block: the column buffer near [`BLOCK_FLOATS`], and at least 4 blocks when
    /// the batch allows (for parallelism). Depends only on shapes, never on thread count.
    fn block(&self) -> usize {
        let per_image = (self.rows() * self.out_plane()).max(1);
        let by_cache = (BLOCK_FLOATS / per_image).max(1);
        by_cache.min(self.n.div_ceil(4)).max(1)
    }

    /// Same-size stride-1 convolution (`out = in`): shifted input planes are flat copies.
    fn same_size(&self) -> bool {
        self.spec.stride == 1 && self.ho == self.h && self.wo == self.w
    }

    /// Fills `col`, the packed column matrix (`rows × nb·out_plane`, see [`Packed`]) of
    /// images `n0..n0+nb` of `x`. A same-size convolution copies its taps out of one
    /// zero-padded, ReLU-applied copy of each input plane; others go through one tap plane at
    /// a time.
    fn im2col(&self, x: &[f32], n0: usize, nb: usize, col: &mut [f32], plane_buf: &mut Vec<f32>) {
        let k = self.spec.kernel;
        let rows = self.rows();
        let out_plane = self.out_plane();
        let pad = self.spec.padding;
        let padded_w = self.w + 2 * pad;
        for ci in 0..self.cin {
            for nl in 0..nb {
                let plane = &x[(ci * self.n + n0 + nl) * self.in_plane()..][..self.in_plane()];
                let first = nl * out_plane;
                if self.pointwise() {
                    let tap = grow(plane_buf, out_plane);
                    relu_copy(plane, tap, self.spec.relu_input);
                    pack_run(col, rows, ci, first, tap);
                } else if self.same_size() {
                    let padded = grow(plane_buf, padded_w * (self.h + 2 * pad));
                    self.pad_plane(plane, padded);
                    let taps = TapCopy { rows, k, ci, w: self.w, padded_w };
                    if first.is_multiple_of(PANEL) && out_plane.is_multiple_of(PANEL) {
                        match self.w {
                            w if w % PANEL == 0 => taps.panels::<PANEL>(col, padded, first, out_plane),
                            8 => taps.panels::<8>(col, padded, first, out_plane),
                            4 => taps.panels::<4>(col, padded, first, out_plane),
                            _ => taps.runs(col, padded, first, self.h),
                        }
                    } else {
                        taps.runs(col, padded, first, self.h);
                    }
                } else {
                    let tap = grow(plane_buf, out_plane);
                    for kh in 0..k {
                        for kw in 0..k {
                            self.gathered_plane(plane, tap, kh, kw);
                            pack_run(col, rows, (ci * k + kh) * k + kw, first, tap);
                        }
                    }
                }
            }
        }
    }

    /// `padded = relu?(plane)` surrounded by `padding` zeros on every side.
    fn pad_plane(&self, plane: &[f32], padded: &mut [f32]) {
        let pad = self.spec.padding;
        let padded_w = self.w + 2 * pad;
        padded[..pad * padded_w].fill(0.0);
        padded[(pad + self.h) * padded_w..].fill(0.0);
        for (r, src) in plane.chunks_exact(self.w).enumerate() {
            let row = &mut padded[(r + pad) * padded_w..][..padded_w];
            if pad == 1 {
                // Single stores: a one-element fill would be a memset call.
                row[0] = 0.0;
                row[padded_w - 1] = 0.0;
            } else {
                row[..pad].fill(0.0);
                row[pad + self.w..].fill(0.0);
            }
            relu_copy(src, &mut row[pad..pad + self.w], self.spec.relu_input);
        }
    }

    /// One tap plane of a strided or size-changing convolution: `out[oh, ow] =
    /// relu?(x[oh·s + kh − p, ow·s + kw − p])`, zero outside.
    fn gathered_plane(&self, x: &[f32], out: &mut [f32], kh: usize, kw: usize) {
        let (s, pad) = (self.spec.stride, self.spec.padding as isize);
        let relu = self.spec.relu_input;
        let (lo, hi) = valid_range(self.wo, self.w, s, kw as isize - pad);
        for oh in 0..self.ho {
            let out = &mut out[oh * self.wo..][..self.wo];
            let ih = (oh * s) as isize + kh as isize - pad;
            if ih < 0 || ih >= self.h as isize || lo >= hi {
                out.fill(0.0);
                continue;
            }
            let src = &x[ih as usize * self.w..][..self.w];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            let first = ((lo * s) as isize + kw as isize - pad) as usize;
            for (j, o) in out[lo..hi].iter_mut().enumerate() {
                let v = src[first + j * s];
                *o = if relu { v.max(0.0) } else { v };
            }
        }
    }

    /// Adds `col` (`rows × nb·out_plane`) back into images `n0..n0+nb` of `dx`.
    ///
    /// # Safety
    /// `dx` must point at a full `[cin, n, h, w]` buffer; the images `n0..n0+nb` must not be
    /// written concurrently by anyone else.
    unsafe fn col2im(&self, col: &[f32], n0: usize, nb: usize, dx: SharedMut) {
        let (k, s, pad) = (self.spec.kernel, self.spec.stride, self.spec.padding as isize);
        let width = nb * self.out_plane();
        for ci in 0..self.cin {
            for kh in 0..k {
                for kw in 0..k {
                    let row = &col[((ci * k + kh) * k + kw) * width..][..width];
                    let (lo, hi) = valid_range(self.wo, self.w, s, kw as isize - pad);
                    if lo >= hi {
                        continue;
                    }
                    for nl in 0..nb {
                        let plane = dx.ptr().add((ci * self.n + n0 + nl) * self.in_plane());
                        for oh in 0..self.ho {
                            let ih = (oh * s) as isize + kh as isize - pad;
                            if ih < 0 || ih >= self.h as isize {
                                continue;
                            }
                            let src = &row[(nl * self.ho + oh) * self.wo..][lo..hi];
                            let first = ((lo * s) as isize + kw as isize - pad) as usize;
                            let dst = plane.add(ih as usize * self.w + first);
                            if s == 1 {
                                let dst = std::slice::from_raw_parts_mut(dst, hi - lo);
                                for (d, &v) in dst.iter_mut().zip(src) {
                                    *d += v;
                                }
                            } else {
                                for (j, &v) in src.iter().enumerate() {
                                    *dst.add(j * s) += v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether the forward product reads its column matrix straight from padded planes
    /// ([`Taps`]): same-size convolutions whose rows split into whole panels.
    fn reads_taps(&self) -> bool {
        self.same_size() && !self.pointwise() && self.w.is_multiple_of(PANEL)
    }

    /// The zero-padded (and ReLU-applied) input planes of a block, built in `buffer`, as the
    /// column matrix of the convolution. The returned offsets table backs the operand and must
    /// outlive its use.
    fn taps(&self, x: &[f32], n0: usize, nb: usize, buffer: &mut Vec<f32>) -> (Taps, Vec<isize>) {
        let (k, pad) = (self.spec.kernel, self.spec.padding);
        let padded_width = self.w + 2 * pad;
        let padded_plane = padded_width * (self.h + 2 * pad);
        let planes = grow(buffer, self.cin * nb * padded_plane);
        for ci in 0..self.cin {
            for nl in 0..nb {
                let plane = &x[(ci * self.n + n0 + nl) * self.in_plane()..][..self.in_plane()];
                self.pad_plane(plane, &mut planes[(ci * nb + nl) * padded_plane..][..padded_plane]);
            }
        }
        let mut offsets = Vec::with_capacity(self.rows());
        for ci in 0..self.cin {
            for kh in 0..k {
                for kw in 0..k {
                    offsets.push((ci * nb * padded_plane + kh * padded_width + kw) as isize);
                }
            }
        }
        let taps = Taps {
            ptr: planes.as_ptr(),
            offsets: offsets.as_ptr(),
            plane: self.out_plane(),
            width: self.w,
            padded_plane,
            padded_width,
        };
        (taps, offsets)
    }

    /// The packed column matrix of a block (built in `col`).
    fn columns(&self, x: &[f32], n0: usize, nb: usize, col: &mut Vec<f32>, plane_buf: &mut Vec<f32>) -> Packed {
        let rows = self.rows();
        let col = grow(col, Packed::len(rows, nb * self.out_plane()));
        self.im2col(x, n0, nb, col, plane_buf);
        Packed { ptr: col.as_ptr(), rows }
    }
}

fn conv_forward(x: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
    let plane = g.out_plane();
    filled(g.cout * g.n * plane, |y| {
        let out = SharedMut(y.as_mut_ptr() as *mut f32);
        let nb = g.block();
        let blocks: Vec<usize> = (0..g.n).step_by(nb).collect();
        blocks.par_iter().for_each(|&n0| {
            let nb = nb.min(g.n - n0);
            with_scratch(|scratch| {
                let dst = ViewMut { ptr: out.ptr().wrapping_add(n0 * plane), row_stride: g.n * plane };
                let weights = View { ptr: w.as_ptr(), row_stride: g.rows() };
                // SAFETY: block n0 writes (all of) columns n0·plane..(n0+nb)·plane of every
                // output row, and nothing else; the operands cover the block.
                unsafe {
                    if g.reads_taps() {
                        let (taps, _offsets) = g.taps(x, n0, nb, &mut scratch.col);
                        broadcast(g.cout, nb * plane, g.rows(), dst, weights, taps, false);
                    } else {
                        let cols = g.columns(x, n0, nb, &mut scratch.col, &mut scratch.plane);
                        broadcast(g.cout, nb * plane, g.rows(), dst, weights, cols, false);
                    }
                }
            })
        });
    })
}

/// The kernel of the transposed convolution: `w'[ci, co, kh, kw] = w[co, ci, k−1−kh, k−1−kw]`.
fn flipped_transpose(w: &[f32], cout: usize, cin: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for kh in 0..k {
                for kw in 0..k {
                    out[((ci * cout + co) * k + kh) * k + kw] = w[((co * cin + ci) * k + (k - 1 - kh)) * k + (k - 1 - kw)];
                }
            }
        }
    }
    out
}

/// How a conv backward pass produces dX.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DxPath {
    /// Not needed (the input is not trained, e.g. the images).
    Skip,
    /// Same-size stride-1 odd kernel: the forward conv of dY with the flipped, transposed
    /// kernel (no scatter-add).
    Flip,
    /// 1×1 stride 1: `Wᵀ · dY`, written by each block.
    Pointwise,
    /// Otherwise: `Wᵀ · dY` into a column buffer, scattered back (col2im).
    Scatter,
}

fn conv_backward(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let plane = g.out_plane();
    let rows = g.rows();
    let k = g.spec.kernel;
    let path = if !need_dx {
        DxPath::Skip
    } else if g.pointwise() {
        DxPath::Pointwise
    } else if g.same_size() && k % 2 == 1 && g.spec.padding == k / 2 {
        DxPath::Flip
    } else {
        DxPath::Scatter
    };
    let dx_len = g.cin * g.n * g.in_plane();
    let mut dx: Vec<f32> = match path {
        DxPath::Skip => Vec::new(),
        DxPath::Flip => {
            let flip_geom = ConvGeom { cin: g.cout, cout: g.cin, spec: ConvSpec { relu_input: false, ..g.spec }, ..g };
            conv_forward(dy, &flipped_transpose(w, g.cout, g.cin, k), flip_geom)
        }
        DxPath::Pointwise => Vec::with_capacity(dx_len),
        DxPath::Scatter => vec![0f32; dx_len],
    };
    let dx_ptr = SharedMut(dx.as_mut_ptr());
    let nb = g.block();
    let blocks: Vec<usize> = (0..g.n).step_by(nb).collect();
    // Wᵀ as a row-major [rows, cout] matrix.
    let wt: Vec<f32> = (0..rows * g.cout).map(|i| w[(i % g.cout) * rows + i / g.cout]).collect();
    let partials: Vec<Vec<f32>> = blocks
        .par_iter()
        .map(|&n0| {
            with_scratch(|scratch| {
                let nb = nb.min(g.n - n0);
                let width = nb * plane;
                let dy_block = View { ptr: dy[n0 * plane..].as_ptr(), row_stride: g.n * plane };
                let mut dw = vec![0f32; g.cout * rows];
                // SAFETY: all views lie inside their buffers; dw and dcol are private to this
                // block; dx is written only for this block's images, and the pointwise path
                // writes all of them before the ReLU mask reads them.
                unsafe {
                    let cols = g.columns(x, n0, nb, &mut scratch.col, &mut scratch.plane);
                    // dW = dY · colᵀ
                    dot_grid(g.cout, rows, width, ViewMut { ptr: dw.as_mut_ptr(), row_stride: rows }, dy_block, cols, false);
                    let wt = View { ptr: wt.as_ptr(), row_stride: g.cout };
                    match path {
                        DxPath::Pointwise => {
                            let dst = ViewMut { ptr: dx_ptr.ptr().add(n0 * g.in_plane()), row_stride: g.n * g.in_plane() };
                            broadcast(g.cin, width, g.cout, dst, wt, dy_block, false);
                        }
                        DxPath::Scatter => {
                            let dcol = grow(&mut scratch.dcol, rows * width);
                            let dst = ViewMut { ptr: dcol.as_mut_ptr(), row_stride: width };
                            broadcast(rows, width, g.cout, dst, wt, dy_block, false);
                            g.col2im(dcol, n0, nb, dx_ptr);
                        }
                        DxPath::Flip | DxPath::Skip => {}
                    }
                    if g.spec.relu_input && path != DxPath::Skip {
                        for ci in 0..g.cin {
                            let start = (ci * g.n + n0) * g.in_plane();
                            let len = nb * g.in_plane();
                            relu_mask(std::slice::from_raw_parts_mut(dx_ptr.ptr().add(start), len), &x[start..start + len]);
                        }
                    }
                }
                dw
            })
        })
        .collect();
    if path == DxPath::Pointwise {
        // SAFETY: the blocks wrote every element of dx.
        unsafe { dx.set_len(dx_len) };
    }
    let mut dw = vec![0f32; g.cout * rows];
    for part in partials {
        for (a, b) in dw.iter_mut().zip(part) {
            *a += b;
        }
    }
    ((path != DxPath::Skip).then_some(dx), dw)
}

/// Zeroes the gradient where the ReLU input was not positive.
#[inline(never)]
fn relu_mask(dx: &mut [f32], x: &[f32]) {
    for (d, &v) in dx.iter_mut().zip(x) {
        *d = if v > 0.0 { *d } else { 0.0 };
    }
}


/// Batch statistics per channel row: (y, mean, 1/std).
fn bn_forward(x: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let len = x.len() / channels;
    let mut stats: Vec<(f32, f32)> = Vec::new();
    let y = filled(x.len(), |y| {
        stats = y.par_chunks_mut(len).zip(x.par_chunks(len)).map(|(y, x)| bn_row_forward(x, y)).collect();
    });
    let (mean, inv_std) = stats.into_iter().unzip();
    (y, mean, inv_std)
}

/// Normalises one channel row; returns (mean, 1/std).
#[inline(never)]
fn bn_row_forward(x: &[f32], y: &mut [MaybeUninit<f32>]) -> (f32, f32) {
    let len = x.len() as f64;
    let (total, squares) = sum_and_squares(x);
    let mean64 = total / len;
    let var = (squares / len - mean64 * mean64).max(0.0);
    let mean = mean64 as f32;
    let inv_std = (1.0 / (var + crate::engine::supernet::BN_EPS).sqrt()) as f32;
    for (o, &v) in y.iter_mut().zip(x) {
        o.write((v - mean) * inv_std);
    }
    (mean, inv_std)
}

/// `dx = inv_std · (dy − mean(dy) − y · mean(dy · y))` per channel row.
fn bn_backward(y: &[f32], inv_std: &[f32], dy: &[f32]) -> Vec<f32> {
    let channels = inv_std.len();
    let len = y.len() / channels;
    filled(y.len(), |dx| {
        dx.par_chunks_mut(len)
            .zip(y.par_chunks(len).zip(dy.par_chunks(len)))
            .zip(inv_std.par_iter())
            .for_each(|((dx, (y, dy)), &inv_std)| bn_row_backward(y, dy, inv_std, dx));
    })
}

#[inline(never)]
fn bn_row_backward(y: &[f32], dy: &[f32], inv_std: f32, dx: &mut [MaybeUninit<f32>]) {
    let len = y.len() as f64;
    let (sum_dy, dot_dy_y) = sum_and_dot(dy, y);
    let (mean_dy, mean_dy_y) = ((sum_dy / len) as f32, (dot_dy_y / len) as f32);
    for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(y) {
        d.write(inv_std * (g - mean_dy - v * mean_dy_y));
    }
}

/// Splits an element-wise job into fixed 64 Ki-element pieces run in parallel.
const PIECE: usize = 64 * 1024;

fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
    cdf + x * pdf
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn act_forward(kind: Activation, x: &[f32]) -> Vec<f32> {
    filled(x.len(), |y| {
        y.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE)).for_each(|(y, x)| {
            let it = y.iter_mut().zip(x);
            match kind {
                Activation::Relu => it.for_each(|(o, &v)| _ = o.write(v.max(0.0))),
                Activation::Relu6 => it.for_each(|(o, &v)| _ = o.write(v.clamp(0.0, 6.0))),
                Activation::Tanh => it.for_each(|(o, &v)| _ = o.write(v.tanh())),
                Activation::Gelu => it.for_each(|(o, &v)| _ = o.write(gelu(v))),
                Activation::Sigmoid => it.for_each(|(o, &v)| _ = o.write(sigmoid(v))),
                Activation::Silu => it.for_each(|(o, &v)| _ = o.write(v * sigmoid(v))),
                other => unreachable!("activation {other:?} is rejected when the layout is built"),
            }
        });
    })
}

fn act_backward(kind: Activation, x: &[f32], dy: &[f32]) -> Vec<f32> {
    filled(x.len(), |dx| {
        dx.par_chunks_mut(PIECE).zip(x.par_chunks(PIECE).zip(dy.par_chunks(PIECE))).for_each(|(dx, (x, dy))| {
            let it = dx.iter_mut().zip(x.iter().zip(dy));
            let grad: fn(f32) -> f32 = match kind {
                Activation::Relu => |v| if v > 0.0 { 1.0 } else { 0.0 },
                Activation::Relu6 => |v| if v > 0.0 && v < 6.0 { 1.0 } else { 0.0 },
                Activation::Tanh => |v| {
                    let t = v.tanh();
                    1.0 - t * t
                },
                Activation::Gelu => gelu_grad,
                Activation::Sigmoid => |v| {
                    let s = sigmoid(v);
                    s * (1.0 - s)
                },
                Activation::Silu => |v| {
                    let s = sigmoid(v);
                    s * (1.0 + v * (1.0 - s))
                },
                other => unreachable!("activation {other:?} is rejected when the layout is built"),
            };
            if kind == Activation::Relu {
                it.for_each(|(d, (&v, &g))| _ = d.write(if v > 0.0 { g } else { 0.0 }));
            } else {
                it.for_each(|(d, (&v, &g))| _ = d.write(g * grad(v)));
            }
        });
    })
}

/// The input rows `[lo, hi)` a pooling window starting at `o·stride − padding` covers.
fn window(o: usize, spec: &PoolSpec, size: usize) -> (usize, usize) {
    let start = (o * spec.stride) as isize - spec.padding as isize;
    let lo = start.max(0) as usize;
    let hi = ((start + spec.kernel as isize).min(size as isize)).max(0) as usize;
    (lo, hi.max(lo))
}

/// A same-size average pool (stride 1, odd window, padding half the window): a separable
/// box sum, then a per-position scale.
fn is_box(spec: &PoolSpec) -> bool {
    spec.average && spec.stride == 1 && spec.kernel % 2 == 1 && spec.padding == spec.kernel / 2
}

/// `1 / count` of every output position of a same-size average pool.
fn box_scale(h: usize, w: usize, spec: &PoolSpec) -> Vec<f32> {
    let r = spec.kernel / 2;
    let covered = |i: usize, n: usize| (i + r).min(n - 1) + 1 - i.saturating_sub(r);
    let mut scale = vec![0f32; h * w];
    for i in 0..h {
        for j in 0..w {
            let count = if spec.count_include_pad { spec.kernel * spec.kernel } else { covered(i, h) * covered(j, w) };
            scale[i * w + j] = 1.0 / count as f32;
        }
    }
    scale
}

/// `out = scale · boxsum(x)` over one plane with a `(2r+1)²` window, zero outside.
fn box_plane(x: &[f32], out: &mut [f32], tmp: &mut Vec<f32>, h: usize, w: usize, r: usize, scale: &[f32]) {
    tmp.clear();
    tmp.extend_from_slice(x);
    for (row, src) in tmp.chunks_exact_mut(w).zip(x.chunks_exact(w)) {
        for d in 1..=r.min(w - 1) {
            for (t, &v) in row[d..].iter_mut().zip(&src[..w - d]) {
                *t += v;
            }
            for (t, &v) in row[..w - d].iter_mut().zip(&src[d..]) {
                *t += v;
            }
        }
    }
    for i in 0..h {
        let out_row = &mut out[i * w..(i + 1) * w];
        out_row.copy_from_slice(&tmp[i * w..(i + 1) * w]);
        for d in 1..=r {
            if i >= d {
                for (o, &v) in out_row.iter_mut().zip(&tmp[(i - d) * w..(i - d + 1) * w]) {
                    *o += v;
                }
            }
            if i + d < h {
                for (o, &v) in out_row.iter_mut().zip(&tmp[(i + d) * w..(i + d + 1) * w]) {
                    *o += v;
                }
            }
        }
        for (o, &s) in out_row.iter_mut().zip(&scale[i * w..(i + 1) * w]) {
            *o *= s;
        }
    }
}

fn pool_forward(x: &[f32], planes: usize, h: usize, w: usize, spec: PoolSpec) -> Vec<f32> {
    if is_box(&spec) {
        let scale = box_scale(h, w, &spec);
        let mut y = vec![0f32; planes * h * w];
        y.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).for_each_init(Vec::new, |tmp, (y, x)| {
            box_plane(x, y, tmp, h, w, spec.kernel / 2, &scale);
        });
        return y;
    }
    let (ho, wo) = (spec.out_size(h), spec.out_size(w));
    let mut y = vec![0f32; planes * ho * wo];
    y.par_chunks_mut(ho * wo).zip(x.par_chunks(h * w)).for_each(|(y, x)| {
        for oh in 0..ho {
            let (r0, r1) = window(oh, &spec, h);
            for ow in 0..wo {
                let (c0, c1) = window(ow, &spec, w);
                let out = &mut y[oh * wo + ow];
                if spec.average {
                    let mut s = 0.0;
                    for r in r0..r1 {
                        for v in &x[r * w + c0..r * w + c1] {
                            s += v;
                        }
                    }
                    let count = if spec.count_include_pad { spec.kernel * spec.kernel } else { (r1 - r0) * (c1 - c0) };
                    *out = s / count.max(1) as f32;
                } else {
                    let mut m = f32::NEG_INFINITY;
                    for r in r0..r1 {
                        for &v in &x[r * w + c0..r * w + c1] {
                            if v > m {
                                m = v;
                            }
                        }
                    }
                    *out = m;
                }
            }
        }
    });
    y
}

fn pool_backward(x: &[f32], dy: &[f32], planes: usize, h: usize, w: usize, spec: PoolSpec) -> Vec<f32> {
    if is_box(&spec) {
        // The window is symmetric, so the transposed box sum is the box sum of dy / count.
        let scale = box_scale(h, w, &spec);
        let ones = vec![1f32; h * w];
        let mut dx = vec![0f32; planes * h * w];
        dx.par_chunks_mut(h * w).zip(dy.par_chunks(h * w)).for_each_init(
            || (Vec::new(), Vec::new()),
            |(tmp, scaled), (dx, dy)| {
                scaled.clear();
                scaled.extend(dy.iter().zip(&scale).map(|(g, s)| g * s));
                box_plane(scaled, dx, tmp, h, w, spec.kernel / 2, &ones);
            },
        );
        return dx;
    }
    let (ho, wo) = (spec.out_size(h), spec.out_size(w));
    let mut dx = vec![0f32; planes * h * w];
    dx.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w).zip(dy.par_chunks(ho * wo)))
        .for_each(|(dx, (x, dy))| {
            for oh in 0..ho {
                let (r0, r1) = window(oh, &spec, h);
                for ow in 0..wo {
                    let (c0, c1) = window(ow, &spec, w);
                    let g = dy[oh * wo + ow];
                    if spec.average {
                        let count =
                            if spec.count_include_pad { spec.kernel * spec.kernel } else { (r1 - r0) * (c1 - c0) };
                        let g = g / count.max(1) as f32;
                        for r in r0..r1 {
                            for d in &mut dx[r * w + c0..r * w + c1] {
                                *d += g;
                            }
                        }
                    } else {
                        let mut best = None;
                        let mut m = f32::NEG_INFINITY;
                        for r in r0..r1 {
                            for c in c0..c1 {
                                if x[r * w + c] > m {
                                    m = x[r * w + c];
                                    best = Some(r * w + c);
                                }
                            }
                        }
                        if let Some(i) = best {
                            dx[i] += g;
                        }
                    }
                }
            }
        });
    dx
}

/// A grouped convolution wide enough per group for the dense kernels: each group's contiguous
/// channel block of x, w and y as a convolution of its own.
fn grouped_dense_forward(x: &[f32], w: &[f32], g: GroupedGeom) -> Vec<f32> {
    let groups = g.spec.groups;
    let dense = dense_geom(g);
    let (x_len, w_len) = (x.len() / groups, w.len() / groups);
    (0..groups).flat_map(|i| conv_forward(&x[i * x_len..][..x_len], &w[i * w_len..][..w_len], dense)).collect()
}

/// Backward of [`grouped_dense_forward`].
fn grouped_dense_backward(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
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
    let spec = ConvSpec { groups: 1, ..g.spec };
    ConvGeom { cin: g.cin_group(), n: g.n, h: g.h, w: g.w, cout: g.cout_group(), ho: g.ho, wo: g.wo, spec }
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
    use crate::engine::kernels::{
        from_prim, generic_act, generic_act_backward, generic_bn, generic_conv, generic_conv_backward, generic_gap, generic_pool,
        generic_pool_backward, into_prim, vjp,
    };
    use burn::tensor::Tensor;

    fn random(shape: [usize; 4], seed: u64) -> FlexTensor {
        let mut rng = crate::util::rng::Rng::new(seed);
        let n = shape.iter().product();
        tensor((0..n).map(|_| rng.normal() as f32).collect(), shape)
    }

    fn close(a: &FlexTensor, b: &FlexTensor, what: &str) {
        assert_eq!(a.layout().shape(), b.layout().shape(), "{what}: shapes");
        let (a, b) = (values(a), values(b));
        let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
            assert!((x - y).abs() <= 2e-4 * scale, "{what}: element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn convolutions_match_the_generic_implementation() {
        let cases = [
            ([4, 3, 7, 7], 5, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: true }),
            ([4, 3, 7, 7], 6, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: false }),
            ([2, 3, 16, 16], 3, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: true }),
            ([2, 2, 32, 32], 3, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: true }),
            ([3, 5, 4, 4], 2, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 1, relu_input: false }),
            ([3, 5, 8, 6], 4, ConvSpec { kernel: 1, stride: 1, padding: 0, groups: 1, relu_input: true }),
            ([3, 5, 8, 6], 4, ConvSpec { kernel: 1, stride: 1, padding: 0, groups: 1, relu_input: false }),
            ([4, 2, 9, 9], 8, ConvSpec { kernel: 3, stride: 2, padding: 1, groups: 1, relu_input: true }),
            ([2, 3, 8, 8], 3, ConvSpec { kernel: 5, stride: 1, padding: 2, groups: 1, relu_input: false }),
            ([2, 3, 6, 6], 4, ConvSpec { kernel: 1, stride: 2, padding: 0, groups: 1, relu_input: false }),
            // Grouped: depthwise (stride 1 and 2, kernels 3/5/7, with and without the fused ReLU),
            // a depthwise multiplier, small groups, and groups wide enough for the dense path.
            ([4, 2, 6, 6], 4, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 4, relu_input: false }),
            ([6, 3, 9, 9], 6, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 6, relu_input: true }),
            ([6, 3, 9, 9], 6, ConvSpec { kernel: 3, stride: 2, padding: 1, groups: 6, relu_input: false }),
            ([5, 2, 8, 8], 5, ConvSpec { kernel: 5, stride: 1, padding: 2, groups: 5, relu_input: false }),
            ([5, 2, 8, 7], 5, ConvSpec { kernel: 7, stride: 2, padding: 3, groups: 5, relu_input: true }),
            ([4, 2, 6, 6], 8, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 4, relu_input: false }),
            ([6, 3, 7, 7], 4, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 2, relu_input: true }),
            ([32, 2, 6, 6], 4, ConvSpec { kernel: 3, stride: 2, padding: 1, groups: 2, relu_input: true }),
            ([32, 2, 5, 5], 6, ConvSpec { kernel: 1, stride: 1, padding: 0, groups: 2, relu_input: false }),
            // Tiny planes of deep layers, where most taps of a large kernel only read padding.
            ([6, 3, 2, 2], 6, ConvSpec { kernel: 7, stride: 1, padding: 3, groups: 6, relu_input: true }),
            ([4, 2, 1, 1], 8, ConvSpec { kernel: 5, stride: 1, padding: 2, groups: 4, relu_input: false }),
            ([4, 2, 3, 3], 4, ConvSpec { kernel: 5, stride: 2, padding: 2, groups: 4, relu_input: false }),
            // Wide planes (8 output columns or more): taps read row by row from padded planes.
            ([4, 2, 18, 18], 4, ConvSpec { kernel: 3, stride: 1, padding: 1, groups: 4, relu_input: true }),
            ([3, 2, 33, 33], 6, ConvSpec { kernel: 5, stride: 2, padding: 2, groups: 3, relu_input: false }),
            ([4, 1, 17, 20], 4, ConvSpec { kernel: 7, stride: 1, padding: 3, groups: 2, relu_input: true }),
        ];
        for (i, (xs, cout, spec)) in cases.into_iter().enumerate() {
            let x = random(xs, i as u64);
            let w = random([cout, xs[0] / spec.groups, spec.kernel, spec.kernel], 100 + i as u64);
            let y = Flex::conv_forward(x.clone(), w.clone(), spec);
            let want = into_prim(generic_conv::<Flex>(from_prim(x.clone()), from_prim(w.clone()), spec));
            close(&y, &want, &format!("conv forward {spec:?}"));
            let dy = random(dims(&y), 200 + i as u64);
            let (dx, dw) = Flex::conv_backward(x.clone(), w.clone(), dy.clone(), spec, true);
            let dx = dx.unwrap();
            let [dx_want, dw_want] =
                vjp::<Flex, 4, 2>([x.clone(), w.clone()], dy.clone(), |v| generic_conv(v[0].clone(), v[1].clone(), spec));
            close(&dx, &dx_want, &format!("conv dx {spec:?}"));
            close(&dw, &dw_want, &format!("conv dw {spec:?}"));
            let (generic_dx, generic_dw) = generic_conv_backward::<Flex>(x.clone(), w.clone(), dy.clone(), spec, true);
            close(&generic_dx.unwrap(), &dx_want, &format!("generic conv dx {spec:?}"));
            close(&generic_dw, &dw_want, &format!("generic conv dw {spec:?}"));
            let (no_dx, dw_only) = Flex::conv_backward(x, w, dy, spec, false);
            assert!(no_dx.is_none());
            close(&dw_only, &dw_want, &format!("conv dw without dx {spec:?}"));
        }
    }

    #[test]
    fn batch_norm_matches_the_generic_implementation() {
        let x = random([3, 4, 5, 5], 1);
        let (y, mean, inv_std) = Flex::bn_forward(x.clone());
        let (yw, mw, iw) = generic_bn::<Flex>(from_prim(x.clone()));
        close(&y, &into_prim(yw), "bn y");
        close(&mean, &into_prim(mw), "bn mean");
        close(&inv_std, &into_prim(iw), "bn inv_std");
        let dy = random([3, 4, 5, 5], 2);
        let dx = Flex::bn_backward(y.clone(), inv_std.clone(), dy.clone());
        let [want] = vjp::<Flex, 4, 1>([x.clone()], dy, |v| generic_bn(v[0].clone()).0);
        close(&dx, &want, "bn dx");
        close(&Flex::bn_normalize(x, mean, inv_std), &y, "bn with fixed statistics");
    }

    #[test]
    fn pooling_matches_the_generic_implementation() {
        let specs = [
            PoolSpec { average: true, kernel: 3, stride: 1, padding: 1, count_include_pad: false },
            PoolSpec { average: true, kernel: 3, stride: 1, padding: 1, count_include_pad: true },
            PoolSpec { average: true, kernel: 2, stride: 2, padding: 0, count_include_pad: true },
            PoolSpec { average: true, kernel: 3, stride: 2, padding: 1, count_include_pad: false },
            PoolSpec { average: false, kernel: 3, stride: 2, padding: 1, count_include_pad: false },
            PoolSpec { average: false, kernel: 3, stride: 1, padding: 1, count_include_pad: false },
        ];
        for (i, spec) in specs.into_iter().enumerate() {
            let x = random([2, 3, 7, 8], 10 + i as u64);
            let y = Flex::pool_forward(x.clone(), spec);
            close(&y, &into_prim(generic_pool::<Flex>(from_prim(x.clone()), spec)), &format!("pool {spec:?}"));
            let dy = random(dims(&y), 20 + i as u64);
            let dx = Flex::pool_backward(x.clone(), dy.clone(), spec);
            let [want] = vjp::<Flex, 4, 1>([x.clone()], dy.clone(), |v| generic_pool(v[0].clone(), spec));
            close(&dx, &want, &format!("pool backward {spec:?}"));
            close(&generic_pool_backward::<Flex>(x, dy, spec), &want, &format!("generic pool backward {spec:?}"));
        }
    }

    #[test]
    fn activations_and_global_pool_match_the_generic_implementation() {
        let x = random([2, 3, 4, 5], 3);
        let dy = random([2, 3, 4, 5], 4);
        for kind in Activation::ALL {
            let y = Flex::act_forward(kind, x.clone());
            close(&y, &into_prim(generic_act::<Flex, 4>(kind, from_prim(x.clone()))), kind.name());
            let dx = Flex::act_backward(kind, x.clone(), dy.clone());
            let [want] = vjp::<Flex, 4, 1>([x.clone()], dy.clone(), |v| generic_act(kind, v[0].clone()));
            close(&dx, &want, &format!("{} backward", kind.name()));
            let generic = generic_act_backward::<Flex, 4>(kind, from_prim(x.clone()), from_prim(dy.clone()));
            close(&into_prim(generic), &want, &format!("generic {} backward", kind.name()));
        }
        let g = Flex::gap_forward(x.clone());
        let want: Tensor<Flex, 2> = generic_gap(from_prim(x.clone()));
        close(&g, &into_prim(want), "global pool");
        let dg = random([3, 2, 1, 1], 5);
        let dg = tensor(values(&dg).to_vec(), [3, 2]);
        let dx = Flex::gap_backward(dg.clone(), [2, 3, 4, 5]);
        let want = {
            let leaf = Tensor::<burn::backend::Autodiff<Flex>, 4>::from_inner(from_prim(x)).require_grad();
            let out = generic_gap(leaf.clone());
            let grads = (out * Tensor::from_inner(from_prim(dg))).sum().backward();
            into_prim(leaf.grad(&grads).unwrap())
        };
        close(&dx, &want, "global pool backward");
    }
}
