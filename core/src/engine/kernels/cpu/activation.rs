//! Element-wise activations and their derivatives, in fixed-size pieces run in parallel.

use fewshot_sdk::Activation;
use rayon::prelude::*;

use super::filled;

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

pub(super) fn act_forward(kind: Activation, x: &[f32]) -> Vec<f32> {
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

pub(super) fn act_backward(kind: Activation, x: &[f32], dy: &[f32]) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;

    use super::*;
    use crate::engine::kernels::{
        cpu::{tensor, tests::{close, random}, values, Flex},
        from_prim,
        generic::{generic_act, generic_act_backward, generic_gap},
        into_prim, vjp, Kernels,
    };

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
