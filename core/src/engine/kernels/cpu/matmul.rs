//! The two matrix products of a small-channel convolution, with register-tiled kernels
//! compiled for AVX-512, AVX2+FMA and plain code, picked at run time.
//!
//! - [`broadcast`]: `out (m×n) = a (m×k) · b (k×n)` with few rows `m` (output channels) and a
//!   long `n` (pixels): each step broadcasts one weight and multiply-adds a row strip of `b`.
//! - [`dot_grid`]: `out (m×n) = a (m×p) · bᵀ (p×n)` with a long reduction `p` (pixels) and a
//!   small output (weight gradients): a grid of dot products.
//!
//! The long operand (`b`) is a strided row-major view, a **packed** matrix (columns grouped in
//! panels of [`PANEL`], each panel storing its rows one after another, so that the kernels read
//! it sequentially: strided rows 4 KiB apart all land in the same L1 cache set), or
//! zero-padded input planes read through a table of kernel-tap offsets ([`Taps`], the column
//! matrix of a same-size convolution without building it).
//!
//! Both sum in a fixed order that depends only on the shapes, so results are reproducible.

/// A row-major matrix view: pointer and row stride (elements are contiguous within a row).
#[derive(Clone, Copy)]
pub(super) struct View {
    /// First element.
    pub(super) ptr: *const f32,
    /// Distance between rows, in elements.
    pub(super) row_stride: usize,
}

/// A mutable row-major matrix view.
#[derive(Clone, Copy)]
pub(super) struct ViewMut {
    /// First element.
    pub(super) ptr: *mut f32,
    /// Distance between rows, in elements.
    pub(super) row_stride: usize,
}

/// Columns per panel of a packed matrix.
pub(super) const PANEL: usize = 16;

/// A packed matrix: element (r, c) at `ptr[(c / PANEL) · rows · PANEL + r · PANEL + c % PANEL]`.
#[derive(Clone, Copy)]
pub(super) struct Packed {
    /// First element.
    pub(super) ptr: *const f32,
    /// Number of rows.
    pub(super) rows: usize,
}

impl Packed {
    /// Floats needed to pack a `rows × cols` matrix.
    pub(super) fn len(rows: usize, cols: usize) -> usize {
        cols.div_ceil(PANEL) * PANEL * rows
    }

    /// Index of element (r, c).
    #[inline(always)]
    pub(super) fn index(rows: usize, r: usize, c: usize) -> usize {
        (c / PANEL) * rows * PANEL + r * PANEL + c % PANEL
    }
}

/// Read access to the long operand, column strip by column strip: [`Operand::strip`] locates
/// column `c` once, [`Operand::row`] then finds row `r` of it. The elements from `c` to the end
/// of its panel (packed), its row (strided) or its image row (taps) are contiguous.
pub(super) trait Operand: Copy {
    /// Where a column starts.
    type Strip: Copy;
    /// Locates column `c`.
    fn strip(self, c: usize) -> Self::Strip;
    /// Pointer to element (`r`, the strip's column).
    ///
    /// # Safety
    /// Element (`r`, the strip's column) must lie inside the operand's buffer: the pointer is
    /// computed with in-bounds pointer arithmetic.
    unsafe fn row(self, strip: Self::Strip, r: usize) -> *const f32;
}

impl Operand for View {
    type Strip = usize;
    #[inline(always)]
    fn strip(self, c: usize) -> usize {
        c
    }
    #[inline(always)]
    unsafe fn row(self, c: usize, r: usize) -> *const f32 {
        // SAFETY: the caller guarantees that (r, c) lies inside the view.
        unsafe { self.ptr.add(r * self.row_stride + c) }
    }
}

impl Operand for Packed {
    type Strip = usize;
    #[inline(always)]
    fn strip(self, c: usize) -> usize {
        (c / PANEL) * self.rows * PANEL + c % PANEL
    }
    #[inline(always)]
    unsafe fn row(self, offset: usize, r: usize) -> *const f32 {
        // SAFETY: the caller guarantees that row `r` of the strip lies inside the packed matrix.
        unsafe { self.ptr.add(offset + r * PANEL) }
    }
}

/// The column matrix of a same-size convolution read straight from zero-padded input planes
/// (no im2col): row `r` (input channel and kernel tap) of column `c` (output pixel) is the
/// padded plane value at the pixel's position plus the tap's offset `offsets[r]`.
#[derive(Clone, Copy)]
pub(super) struct Taps {
    /// The padded planes (`[channel][image][padded plane]`), past a leading margin.
    pub(super) ptr: *const f32,
    /// Offset of every row's tap (channel plane + kernel position), in elements.
    pub(super) offsets: *const isize,
    /// Output pixels per image.
    pub(super) plane: usize,
    /// Output (and input) width.
    pub(super) width: usize,
    /// Elements per padded plane.
    pub(super) padded_plane: usize,
    /// Elements per padded row.
    pub(super) padded_width: usize,
}

impl Operand for Taps {
    type Strip = usize;
    #[inline(always)]
    fn strip(self, c: usize) -> usize {
        let (image, pixel) = (c / self.plane, c % self.plane);
        image * self.padded_plane + (pixel / self.width) * self.padded_width + pixel % self.width
    }
    #[inline(always)]
    unsafe fn row(self, base: usize, r: usize) -> *const f32 {
        // SAFETY: the caller guarantees that `r` is a row of the table (one offset per row) and
        // that the tap it reads lies inside the padded planes.
        unsafe { self.ptr.offset(base as isize + *self.offsets.add(r)) }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Avx512,
    Avx2,
    Plain,
}

fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Plain
    })
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `out = a · b` (`accumulate`: `out += a · b`) for `m×k` `a` and `k×n` `b`.
///
/// # Safety
/// The views must cover `m×k`, `k×n` and `m×n` elements; `out` must not overlap the inputs.
pub(super) unsafe fn broadcast<O: Operand>(m: usize, n: usize, k: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => broadcast_avx512(m, n, k, out, a, b, accumulate),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => broadcast_avx2(m, n, k, out, a, b, accumulate),
        _ => broadcast_body::<false, 8, 4, O>(m, n, k, out, a, b, accumulate),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn broadcast_avx512<O: Operand>(m: usize, n: usize, k: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    broadcast_body::<true, 16, 8, O>(m, n, k, out, a, b, accumulate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn broadcast_avx2<O: Operand>(m: usize, n: usize, k: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    // 16 ymm registers: 6 rows × 2 accumulators + the strip + a broadcast.
    broadcast_body::<true, 16, 6, O>(m, n, k, out, a, b, accumulate)
}

#[inline(always)]
/// Row blocks of `R` (the most accumulators that fit the registers), then 4, 2 and 1.
unsafe fn broadcast_body<const FMA: bool, const L: usize, const R: usize, O: Operand>(
    m: usize,
    n: usize,
    k: usize,
    out: ViewMut,
    a: View,
    b: O,
    accumulate: bool,
) {
    let mut row = 0;
    while row < m {
        let rows = m - row;
        let taken = if rows >= R {
            broadcast_rows::<FMA, L, R, O>(row, n, k, out, a, b, accumulate);
            R
        } else if rows >= 4 {
            broadcast_rows::<FMA, L, 4, O>(row, n, k, out, a, b, accumulate);
            4
        } else if rows >= 2 {
            broadcast_rows::<FMA, L, 2, O>(row, n, k, out, a, b, accumulate);
            2
        } else {
            broadcast_rows::<FMA, L, 1, O>(row, n, k, out, a, b, accumulate);
            1
        };
        row += taken;
    }
}

/// Rows `row..row+R` of the product, in strips of `L` columns.
#[inline(always)]
unsafe fn broadcast_rows<const FMA: bool, const L: usize, const R: usize, O: Operand>(
    row: usize,
    n: usize,
    k: usize,
    out: ViewMut,
    a: View,
    b: O,
    accumulate: bool,
) {
    let a_row = |r: usize| a.ptr.add((row + r) * a.row_stride);
    let mut col = 0;
    while col + L <= n {
        let mut acc = [[0f32; L]; R];
        let at = b.strip(col);
        for kk in 0..k {
            // SAFETY: `kk < k` and columns `col..col + L` are inside `b` (k×n, `col + L ≤ n`),
            // as the caller of `broadcast` guarantees.
            let strip = &*(b.row(at, kk) as *const [f32; L]);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let w = *a_row(r).add(kk);
                for l in 0..L {
                    acc_r[l] = madd::<FMA>(w, strip[l], acc_r[l]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = out.ptr.add((row + r) * out.row_stride + col);
            for (l, &v) in acc_r.iter().enumerate() {
                let d = dst.add(l);
                d.write(if accumulate { *d + v } else { v });
            }
        }
        col += L;
    }
    for c in col..n {
        let at = b.strip(c);
        for r in 0..R {
            let mut s = 0f32;
            for kk in 0..k {
                // SAFETY: `kk < k`, `c < n`: inside `b`.
                s = madd::<FMA>(*a_row(r).add(kk), *b.row(at, kk), s);
            }
            let dst = out.ptr.add((row + r) * out.row_stride + c);
            dst.write(if accumulate { *dst + s } else { s });
        }
    }
}

/// `out = a · bᵀ` (`accumulate`: `out += a · bᵀ`) for `m×p` `a` and `n×p` `b`.
///
/// # Safety
/// The views must cover `m×p`, `n×p` and `m×n` elements; `out` must not overlap the inputs.
pub(super) unsafe fn dot_grid<O: Operand>(m: usize, n: usize, p: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => dot_grid_avx512(m, n, p, out, a, b, accumulate),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => dot_grid_avx2(m, n, p, out, a, b, accumulate),
        _ => dot_grid_body::<false, 8, 2, 2, O>(m, n, p, out, a, b, accumulate),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_grid_avx512<O: Operand>(m: usize, n: usize, p: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    dot_grid_body::<true, 16, 4, 4, O>(m, n, p, out, a, b, accumulate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_grid_avx2<O: Operand>(m: usize, n: usize, p: usize, out: ViewMut, a: View, b: O, accumulate: bool) {
    // 16 ymm registers: a 4×2 tile of accumulators + 2 rows of b + 1 of a.
    dot_grid_body::<true, 8, 4, 2, O>(m, n, p, out, a, b, accumulate)
}

/// Tiles of `I×J` dot products (the most accumulators that fit the registers); edges with
/// tiles of 2 or 1 rows and 1 column.
#[inline(always)]
unsafe fn dot_grid_body<const FMA: bool, const L: usize, const I: usize, const J: usize, O: Operand>(
    m: usize,
    n: usize,
    p: usize,
    out: ViewMut,
    a: View,
    b: O,
    accumulate: bool,
) {
    let mut i = 0;
    while i < m {
        let ti = if m - i >= I { I } else if m - i >= 2 { 2 } else { 1 };
        let mut j = 0;
        while j < n {
            let tj = if n - j >= J { J } else { 1 };
            match (ti, tj == J) {
                (t, true) if t == I => dot_tile::<FMA, L, I, J, O>(i, j, p, out, a, b, accumulate),
                (t, false) if t == I => dot_tile::<FMA, L, I, 1, O>(i, j, p, out, a, b, accumulate),
                (2, true) => dot_tile::<FMA, L, 2, J, O>(i, j, p, out, a, b, accumulate),
                (2, false) => dot_tile::<FMA, L, 2, 1, O>(i, j, p, out, a, b, accumulate),
                (_, true) => dot_tile::<FMA, L, 1, J, O>(i, j, p, out, a, b, accumulate),
                (_, false) => dot_tile::<FMA, L, 1, 1, O>(i, j, p, out, a, b, accumulate),
            }
            j += tj;
        }
        i += ti;
    }
}

/// The `I×J` tile of dot products starting at (i, j).
#[inline(always)]
unsafe fn dot_tile<const FMA: bool, const L: usize, const I: usize, const J: usize, O: Operand>(
    i: usize,
    j: usize,
    p: usize,
    out: ViewMut,
    a: View,
    b: O,
    accumulate: bool,
) {
    let mut acc = [[[0f32; L]; J]; I];
    let mut q = 0;
    while q + L <= p {
        let at = b.strip(q);
        // SAFETY: rows `j..j + J` (`≤ n`) and columns `q..q + L` (`≤ p`) are inside `b` (n×p),
        // as the caller of `dot_grid` guarantees.
        let bs: [&[f32; L]; J] = std::array::from_fn(|jj| &*(b.row(at, j + jj) as *const [f32; L]));
        for (ii, acc_i) in acc.iter_mut().enumerate() {
            let av = &*(a.ptr.add((i + ii) * a.row_stride + q) as *const [f32; L]);
            for (jj, acc_ij) in acc_i.iter_mut().enumerate() {
                for l in 0..L {
                    acc_ij[l] = madd::<FMA>(av[l], bs[jj][l], acc_ij[l]);
                }
            }
        }
        q += L;
    }
    for (ii, acc_i) in acc.iter().enumerate() {
        for (jj, acc_ij) in acc_i.iter().enumerate() {
            let mut s = 0f32;
            for v in acc_ij {
                s += v;
            }
            for qq in q..p {
                // SAFETY: `qq < p`, `j + jj < n`: inside `b`.
                s = madd::<FMA>(*a.ptr.add((i + ii) * a.row_stride + qq), *b.row(b.strip(qq), j + jj), s);
            }
            let dst = out.ptr.add((i + ii) * out.row_stride + j + jj);
            dst.write(if accumulate { *dst + s } else { s });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|q| a[i * k + q] as f64 * b[q * n + j] as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    /// Every tiling each instruction set uses, run through the generic bodies (so the AVX-512
    /// and plain variants are checked on any machine), with accumulation.
    #[test]
    fn every_tiling_matches_the_reference() {
        type Product = unsafe fn(usize, usize, usize, ViewMut, View, View, bool);
        let broadcasts: [(&str, Product); 3] = [
            ("avx512", broadcast_body::<true, 16, 8, View>),
            ("avx2", broadcast_body::<true, 16, 6, View>),
            ("plain", broadcast_body::<false, 8, 4, View>),
        ];
        let dots: [(&str, Product); 3] = [
            ("avx512", dot_grid_body::<true, 16, 4, 4, View>),
            ("avx2", dot_grid_body::<true, 8, 4, 2, View>),
            ("plain", dot_grid_body::<false, 8, 2, 2, View>),
        ];
        for &(m, n, k) in &[(8, 64, 72), (7, 37, 5), (13, 50, 29), (1, 3, 2)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
            let bt: Vec<f32> = (0..n * k).map(|idx| b[(idx % k) * n + idx / k]).collect();
            let want = reference(m, n, k, &a, &b);
            let check = |name: &str, got: &[f32]| {
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - (w + 0.25)).abs() < 1e-3, "{name} {m}x{n}x{k}: {g} vs {w}");
                }
            };
            let out = |got: &mut Vec<f32>| ViewMut { ptr: got.as_mut_ptr(), row_stride: n };
            let lhs = View { ptr: a.as_ptr(), row_stride: k };
            for (name, f) in broadcasts {
                let mut got = vec![0.25f32; m * n];
                unsafe { f(m, n, k, out(&mut got), lhs, View { ptr: b.as_ptr(), row_stride: n }, true) };
                check(&format!("broadcast {name}"), &got);
            }
            for (name, f) in dots {
                let mut got = vec![0.25f32; m * n];
                unsafe { f(m, n, k, out(&mut got), lhs, View { ptr: bt.as_ptr(), row_stride: k }, true) };
                check(&format!("dot grid {name}"), &got);
            }
        }
    }

    #[test]
    fn products_match_a_plain_reference_on_awkward_shapes() {
        for &(m, n, k) in &[(8, 1024, 72), (3, 37, 5), (13, 100, 29), (32, 64, 288), (1, 1, 1)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
            let want = reference(m, n, k, &a, &b);
            let mut got = vec![1f32; m * n];
            unsafe {
                broadcast(m, n, k, ViewMut { ptr: got.as_mut_ptr(), row_stride: n }, View { ptr: a.as_ptr(), row_stride: k }, View { ptr: b.as_ptr(), row_stride: n }, false);
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-3, "broadcast {m}x{n}x{k}: {g} vs {w}");
            }
            let mut packed = vec![0f32; Packed::len(k, n)];
            for r in 0..k {
                for c in 0..n {
                    packed[Packed::index(k, r, c)] = b[r * n + c];
                }
            }
            let mut got = vec![1f32; m * n];
            unsafe {
                broadcast(m, n, k, ViewMut { ptr: got.as_mut_ptr(), row_stride: n }, View { ptr: a.as_ptr(), row_stride: k }, Packed { ptr: packed.as_ptr(), rows: k }, false);
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-3, "packed broadcast {m}x{n}x{k}: {g} vs {w}");
            }
            // a · bᵀ with bᵀ stored as n×k rows.
            let bt: Vec<f32> = (0..n * k).map(|idx| b[(idx % k) * n + idx / k]).collect();
            let mut got = vec![0.5f32; m * n];
            unsafe {
                dot_grid(m, n, k, ViewMut { ptr: got.as_mut_ptr(), row_stride: n }, View { ptr: a.as_ptr(), row_stride: k }, View { ptr: bt.as_ptr(), row_stride: k }, true);
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - (w + 0.5)).abs() < 1e-3, "dot_grid {m}x{n}x{k}: {g} vs {w}");
            }
            let mut packed_t = vec![0f32; Packed::len(n, k)];
            for r in 0..n {
                for c in 0..k {
                    packed_t[Packed::index(n, r, c)] = bt[r * k + c];
                }
            }
            let mut got = vec![0f32; m * n];
            unsafe {
                dot_grid(m, n, k, ViewMut { ptr: got.as_mut_ptr(), row_stride: n }, View { ptr: a.as_ptr(), row_stride: k }, Packed { ptr: packed_t.as_ptr(), rows: n }, false);
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-3, "packed dot_grid {m}x{n}x{k}: {g} vs {w}");
            }
        }
    }
}
