//! Batch-statistics BatchNorm: per-channel rows normalised in parallel, statistics summed in a
//! fixed order.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{filled, sum_and_dot, sum_and_squares};
use crate::engine::kernels::BN_EPS;

/// Batch statistics per channel row: (y, mean, 1/std).
pub(super) fn bn_forward(x: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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
    let inv_std = (1.0 / (var + BN_EPS).sqrt()) as f32;
    for (o, &v) in y.iter_mut().zip(x) {
        o.write((v - mean) * inv_std);
    }
    (mean, inv_std)
}

/// `dx = inv_std · (dy − mean(dy) − y · mean(dy · y))` per channel row.
pub(super) fn bn_backward(y: &[f32], inv_std: &[f32], dy: &[f32]) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use crate::engine::kernels::{
        cpu::{tests::{close, random}, Flex},
        from_prim,
        generic::generic_bn,
        into_prim, vjp, Kernels,
    };

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
}
