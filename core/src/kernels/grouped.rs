//! Direct CPU kernels for grouped convolutions (`groups > 1`: depthwise and the like), CNHW.
//!
//! A group with few input channels (depthwise: one) is too narrow for a matrix product to pay,
//! so each output plane is accumulated directly as shifted row updates `out[oh, lo..hi] +=
//! w · x[ih, …]` (contiguous, vectorised, for stride 1). Groups wide enough for a product
//! ([`DENSE_GROUP`] input channels or more) run the dense kernels of [`super::cpu`] on each
//! group's contiguous channel block instead. Work is split by output plane (forward), by input
//! plane (dX) and by output channel (dW), each summed in a fixed order: results do not depend
//! on the number of threads.

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

    /// For tap row `kh`: the output rows `oh` whose input row lies inside the image, as
    /// (oh, ih) pairs.
    fn rows(&self, kh: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (s, pad) = (self.spec.stride, self.spec.padding as isize);
        (0..self.ho).filter_map(move |oh| {
            let ih = (oh * s) as isize + kh as isize - pad;
            (0..self.h as isize).contains(&ih).then_some((oh, ih as usize))
        })
    }

    /// For tap column `kw`: the valid output columns `lo..hi` and the input column of `lo`.
    fn columns(&self, kw: usize) -> Option<(usize, usize, usize)> {
        let (s, pad) = (self.spec.stride, self.spec.padding as isize);
        let (lo, hi) = super::cpu::valid_range(self.wo, self.w, s, kw as isize - pad);
        (lo < hi).then(|| (lo, hi, ((lo * s) as isize + kw as isize - pad) as usize))
    }
}

/// `relu(x)` when the convolution applies ReLU to its input, else `x` itself.
fn input(x: &[f32], relu: bool) -> std::borrow::Cow<'_, [f32]> {
    if relu {
        std::borrow::Cow::Owned(x.iter().map(|v| v.max(0.0)).collect())
    } else {
        std::borrow::Cow::Borrowed(x)
    }
}

/// Forward: `[cout, n, ho, wo]`.
pub(super) fn forward(x: &[f32], w: &[f32], g: GroupedGeom) -> Vec<f32> {
    let x = input(x, g.spec.relu_input);
    let (cin_g, cout_g, taps, k, s) = (g.cin_group(), g.cout_group(), g.taps(), g.spec.kernel, g.spec.stride);
    let mut y = vec![0f32; g.cout * g.n * g.out_plane()];
    y.par_chunks_mut(g.out_plane()).enumerate().for_each(|(plane, out)| {
        let (co, n) = (plane / g.n, plane % g.n);
        let group = co / cout_g;
        for cl in 0..cin_g {
            let ci = group * cin_g + cl;
            let src = &x[(ci * g.n + n) * g.in_plane()..][..g.in_plane()];
            let weights = &w[(co * cin_g + cl) * taps..][..taps];
            for kh in 0..k {
                for kw in 0..k {
                    let wv = weights[kh * k + kw];
                    let Some((lo, hi, first)) = g.columns(kw) else { continue };
                    for (oh, ih) in g.rows(kh) {
                        let dst = &mut out[oh * g.wo + lo..oh * g.wo + hi];
                        let row = &src[ih * g.w + first..];
                        if s == 1 {
                            for (o, &v) in dst.iter_mut().zip(row) {
                                *o += wv * v;
                            }
                        } else {
                            for (j, o) in dst.iter_mut().enumerate() {
                                *o += wv * row[j * s];
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

/// Backward: (dX `[cin, n, h, w]` when `need_dx`, dW `[cout, cin/groups, k, k]`).
pub(super) fn backward(x: &[f32], w: &[f32], dy: &[f32], g: GroupedGeom, need_dx: bool) -> (Option<Vec<f32>>, Vec<f32>) {
    let xin = input(x, g.spec.relu_input);
    let (cin_g, cout_g, taps, k, s) = (g.cin_group(), g.cout_group(), g.taps(), g.spec.kernel, g.spec.stride);
    // dW[co, cl, kh, kw] = Σ_n Σ_(oh, ow) dY[co, n, oh, ow] · x[ci, n, ih, iw]
    let mut dw = vec![0f32; g.cout * cin_g * taps];
    dw.par_chunks_mut(cin_g * taps).enumerate().for_each(|(co, dw)| {
        let group = co / cout_g;
        for n in 0..g.n {
            let grad = &dy[(co * g.n + n) * g.out_plane()..][..g.out_plane()];
            for cl in 0..cin_g {
                let src = &xin[((group * cin_g + cl) * g.n + n) * g.in_plane()..][..g.in_plane()];
                for kh in 0..k {
                    for kw in 0..k {
                        let Some((lo, hi, first)) = g.columns(kw) else { continue };
                        let mut acc = 0f32;
                        for (oh, ih) in g.rows(kh) {
                            let d = &grad[oh * g.wo + lo..oh * g.wo + hi];
                            let row = &src[ih * g.w + first..];
                            if s == 1 {
                                acc += d.iter().zip(row).map(|(a, b)| a * b).sum::<f32>();
                            } else {
                                acc += d.iter().enumerate().map(|(j, a)| a * row[j * s]).sum::<f32>();
                            }
                        }
                        dw[(cl * k + kh) * k + kw] += acc;
                    }
                }
            }
        }
    });
    if !need_dx {
        return (None, dw);
    }
    // dX[ci, n] = Σ_(co of the group) Σ_(kh, kw) W[co, cl, kh, kw] · dY[co, n] shifted back.
    let mut dx = vec![0f32; g.cin * g.n * g.in_plane()];
    dx.par_chunks_mut(g.in_plane()).enumerate().for_each(|(plane, out)| {
        let (ci, n) = (plane / g.n, plane % g.n);
        let (group, cl) = (ci / cin_g, ci % cin_g);
        for co in group * cout_g..(group + 1) * cout_g {
            let grad = &dy[(co * g.n + n) * g.out_plane()..][..g.out_plane()];
            let weights = &w[(co * cin_g + cl) * taps..][..taps];
            for kh in 0..k {
                for kw in 0..k {
                    let wv = weights[kh * k + kw];
                    let Some((lo, hi, first)) = g.columns(kw) else { continue };
                    for (oh, ih) in g.rows(kh) {
                        let d = &grad[oh * g.wo + lo..oh * g.wo + hi];
                        let row = &mut out[ih * g.w + first..];
                        if s == 1 {
                            for (o, &v) in row.iter_mut().zip(d) {
                                *o += wv * v;
                            }
                        } else {
                            for (j, &v) in d.iter().enumerate() {
                                row[j * s] += wv * v;
                            }
                        }
                    }
                }
            }
        }
        if g.spec.relu_input {
            let src = &x[plane * g.in_plane()..][..g.in_plane()];
            for (o, &v) in out.iter_mut().zip(src) {
                if v <= 0.0 {
                    *o = 0.0;
                }
            }
        }
    });
    (Some(dx), dw)
}
