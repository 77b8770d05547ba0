//! Average and max pooling: a separable box sum for same-size average pools, direct windows
//! otherwise.

use rayon::prelude::*;

use crate::engine::kernels::PoolSpec;

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

pub(super) fn pool_forward(x: &[f32], planes: usize, h: usize, w: usize, spec: PoolSpec) -> Vec<f32> {
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

pub(super) fn pool_backward(x: &[f32], dy: &[f32], planes: usize, h: usize, w: usize, spec: PoolSpec) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::{
        cpu::{dims, tests::{close, random}, Flex},
        from_prim,
        generic::{generic_pool, generic_pool_backward},
        into_prim, vjp, Kernels,
    };

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
}
