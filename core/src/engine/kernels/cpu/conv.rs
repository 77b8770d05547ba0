//! Dense convolutions (`groups = 1`): im2col into a packed column matrix (or taps read straight
//! from zero-padded planes) and the register-tiled products of [`super::matmul`], forward and
//! backward, over blocks of images in parallel.

use rayon::prelude::*;

use super::{
    filled, grow,
    matmul::{broadcast, dot_grid, Packed, Taps, View, ViewMut, PANEL},
    with_scratch,
};
use crate::engine::kernels::ConvSpec;

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
pub(super) struct ConvGeom {
    pub(super) cin: usize,
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) spec: ConvSpec,
}

impl ConvGeom {
    pub(super) fn new(x: [usize; 4], w: [usize; 4], spec: ConvSpec) -> Self {
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

pub(super) fn conv_forward(x: &[f32], w: &[f32], g: ConvGeom) -> Vec<f32> {
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

pub(super) fn conv_backward(x: &[f32], w: &[f32], dy: &[f32], g: ConvGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
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

#[cfg(test)]
mod tests {
    use crate::engine::kernels::{
        cpu::{dims, tests::{close, random}, Flex},
        from_prim,
        generic::{generic_conv, generic_conv_backward},
        into_prim, vjp, ConvSpec, Kernels,
    };

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
}
