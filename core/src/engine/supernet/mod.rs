//! Supernets built from a space's graph IR.
//!
//! A [`SupernetLayout`] resolves a supernet [`Graph`](fewshot_sdk::Graph) at a channel divisor:
//! the shape of every node, the op it runs and the parameters it owns. Every candidate op of
//! every slot has its own parameters. [`Supernets`] holds `K` independent copies of those
//! parameters (one per subspace; copies share nothing) and runs subnets through them.
//!
//! ## Forward semantics
//! [`forward`] takes an architecture and runs **only** the nodes that are active in it (their
//! guards hold) and that the output depends on. A value is either a tensor or *absent*
//! (identically zero): the input of an inactive node, an [`Op::Zero`](fewshot_sdk::Op::Zero),
//! and everything computed only from absent values. Absent values are never materialised and
//! never multiplied by zero, so parameters of ops that do not take part get no gradient at all.
//! Ops whose output at zero input is not zero (a conv or linear bias, a sigmoid, an affine BN
//! shift) produce that constant from their own parameters, exactly as the graph semantics
//! prescribe. [`Op::Add`](fewshot_sdk::Op::Add) sums the present inputs. When the output itself
//! is absent (no live path, e.g. NB201's "trash" cells) the logits are zeros.
//!
//! ## BatchNorm
//! As in the reference supernets: normalisation with the current batch's statistics, in
//! training and in evaluation, biased variance, `eps = 1e-5`. [`NormMode::Plain`] (default) has
//! no parameters; [`NormMode::Affine`] adds a learned scale (init 1) and shift (init 0) per
//! channel. For evaluation with recalibrated statistics see [`BnStats`].
//!
//! ## Initialisation
//! PyTorch's defaults, drawn from the run seed (`Rng::stream(seed, "init")`): conv and
//! linear weights kaiming-uniform with `a = √5`, i.e. `U(−1/√fan_in, 1/√fan_in)`, biases
//! `U(−1/√fan_in, 1/√fan_in)`.

mod forward;
mod layout;
mod params;

pub use forward::{forward, forward_observed, forward_segment, ActInput, BnStats, Observer, RunningStats, Unobserved};
pub use layout::{NormMode, ParamId, ParamInfo, ParamRole, SupernetLayout};
pub use params::{init_params, init_params_with, tensor_to_vec, Init, Supernets};

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use burn::tensor::{Tensor, TensorData};
    use fewshot_sdk::{graph::NodeId, Activation, Graph, GraphBuilder, Op, SearchSpace, Slot, Width};

    use super::*;
    use crate::{
        engine::backend::CpuBackend,
        train::optim::{IdleParams, SgdConfig},
        train::step::StepEngine,
        util::rng::Rng,
    };

    type B = CpuBackend;

    /// An 8×8 RGB input and a conv-BN stem of width 8, the start of the test spaces.
    fn stem() -> (GraphBuilder, NodeId) {
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let stem = g.scope("stem", |g| {
            let c = g.conv(x, Width::scaled(8), 3, 1);
            g.batch_norm(c)
        });
        (g, stem)
    }

    /// A small space: stem, then one slot choosing {ReLU-conv3x3-BN, avg pool, zero, sigmoid}
    /// on a residual branch, then a second slot {conv1x1 with bias, identity}; BN, ReLU, pool,
    /// linear.
    pub(crate) fn small_space() -> (Graph, Vec<Slot>) {
        let (mut g, stem) = stem();
        let a = g.when(0, 0, |g| {
            g.scope("conv", |g| {
                let r = g.activation(stem, Activation::Relu);
                let c = g.conv(r, Width::scaled(8), 3, 1);
                g.batch_norm(c)
            })
        });
        let b = g.when(0, 1, |g| g.avg_pool(stem, 3, 1, 1, false));
        let z = g.when(0, 2, |g| g.zero(stem));
        let s = g.when(0, 3, |g| g.activation(z, Activation::Sigmoid));
        let sum = g.add(&[stem, a, b, s]);
        let c = g.when(1, 0, |g| {
            g.push("pw", Op::Conv { out: Width::scaled(8), kernel: 1, stride: 1, padding: 0, groups: 1, bias: true }, &[sum])
        });
        let d = g.when(1, 1, |g| g.identity(sum));
        let mixed = g.add(&[c, d]);
        let out = g.scope("head", |g| {
            let b = g.batch_norm(mixed);
            let r = g.activation(b, Activation::Relu);
            let p = g.global_avg_pool(r);
            g.linear(p, Width::fixed(10), true)
        });
        let slots = vec![
            Slot::new("branch", &["conv", "pool", "zero", "sigmoid"]),
            Slot::new("mix", &["pw", "identity"]),
        ];
        (g.finish(out), slots)
    }

    /// A space of every op family the kernels have: a depthwise-separable branch (ReLU6),
    /// a strided depthwise 5×5 with GELU, a grouped 3×3 with a fused ReLU and tanh, max and
    /// average pools, SiLU and sigmoid; options `[4, 3]`.
    pub(crate) fn depthwise_space() -> (Graph, Vec<Slot>) {
        let (mut g, stem) = stem();
        let a = g.when(0, 0, |g| {
            g.scope("sep", |g| {
                let d = g.depthwise_conv(stem, Width::scaled(8), 3, 1);
                let b = g.batch_norm(d);
                let r = g.activation(b, Activation::Relu6);
                let p = g.conv(r, Width::scaled(8), 1, 1);
                g.batch_norm(p)
            })
        });
        let b = g.when(0, 1, |g| {
            g.scope("grouped", |g| {
                let r = g.activation(stem, Activation::Relu);
                let c = g.push("conv", Op::Conv { out: Width::scaled(8), kernel: 3, stride: 1, padding: 1, groups: 2, bias: false }, &[r]);
                let b = g.batch_norm(c);
                g.activation(b, Activation::Tanh)
            })
        });
        let c = g.when(0, 2, |g| g.max_pool(stem, 3, 1, 1));
        let d = g.when(0, 3, |g| g.activation(stem, Activation::Silu));
        let sum = g.add(&[a, b, c, d]);
        let down = g.when(1, 0, |g| {
            g.scope("dw5", |g| {
                let d = g.depthwise_conv(sum, Width::scaled(8), 5, 2);
                let b = g.batch_norm(d);
                g.activation(b, Activation::Gelu)
            })
        });
        let pooled = g.when(1, 1, |g| g.avg_pool(sum, 3, 2, 1, false));
        let squashed = g.when(1, 2, |g| {
            let p = g.avg_pool(sum, 2, 2, 0, true);
            g.activation(p, Activation::Sigmoid)
        });
        let mixed = g.add(&[down, pooled, squashed]);
        let out = g.scope("head", |g| {
            let b = g.batch_norm(mixed);
            let p = g.global_avg_pool(b);
            g.linear(p, Width::fixed(10), true)
        });
        let slots = vec![
            Slot::new("block", &["sep", "grouped", "maxpool", "silu"]),
            Slot::new("down", &["dw5", "avgpool", "sigmoid"]),
        ];
        (g.finish(out), slots)
    }

    pub(crate) fn images(n: usize, c: usize, hw: usize, seed: u64) -> Tensor<B, 4> {
        let mut rng = Rng::new(seed);
        let values: Vec<f32> = (0..n * c * hw * hw).map(|_| rng.normal() as f32).collect();
        Tensor::from_data(TensorData::new(values, [c, n, hw, hw]), &Default::default())
    }

    fn param_named(layout: &SupernetLayout, name: &str) -> ParamId {
        layout.params().iter().position(|p| p.name == name).unwrap_or_else(|| panic!("no param {name}"))
    }

    #[test]
    fn only_the_sampled_ops_get_gradients_and_move() {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let nets = Supernets::<B>::new(layout.clone(), 2, 3, &Default::default());
        let before = nets.to_host();
        let mut engine = StepEngine::new(nets, SgdConfig::default(), 0.0);
        let labels: Vec<u32> = (0..6).map(|i| i % 10).collect();
        engine.step(images(6, 3, 8, 2), &labels, &[(0, vec![1, 1])], 0.1).unwrap();
        let after = engine.nets.to_host();
        let used = layout.used_params(&[1, 1]);
        for (id, p) in layout.params().iter().enumerate() {
            let moved = before[0][id] != after[0][id];
            assert_eq!(moved, used[id], "{} moved={moved}", p.name);
            assert_eq!(before[1][id], after[1][id], "supernet 1 was not trained");
        }
    }

    #[test]
    fn training_results_do_not_depend_on_the_thread_count() {
        let space = fewshot_plugins::nb201::Nb201Space { channels: 8, cells: 1, ..Default::default() };
        let layout = Arc::new(SupernetLayout::new(&space.supernet_graph(), &space.slots(), 1.0, NormMode::Plain).unwrap());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let nets = Supernets::<B>::new(layout.clone(), 1, 3, &Default::default());
                let mut engine = StepEngine::new(nets, SgdConfig::default(), 0.1);
                let labels: Vec<u32> = (0..8).map(|i| i % 10).collect();
                engine.step(images(8, 3, 32, 1), &labels, &[(0, vec![3, 2, 4, 3, 1, 2])], 0.05).unwrap();
                engine.nets.to_host()
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn frozen_idle_params_stay_put_and_decay_mode_keeps_moving_them() {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let conv = param_named(&layout, "conv.conv.weight");
        let labels: Vec<u32> = (0..6).map(|i| i % 10).collect();
        for idle in [IdleParams::Frozen, IdleParams::Decay] {
            let nets = Supernets::<B>::new(layout.clone(), 1, 3, &Default::default());
            let sgd = SgdConfig { idle, ..SgdConfig::default() };
            let mut engine = StepEngine::new(nets, sgd, 0.0);
            engine.step(images(6, 3, 8, 2), &labels, &[(0, vec![0, 1])], 0.1).unwrap();
            let after_use = engine.nets.to_host()[0][conv].clone();
            engine.step(images(6, 3, 8, 3), &labels, &[(0, vec![1, 1])], 0.1).unwrap();
            let after_idle = engine.nets.to_host()[0][conv].clone();
            match idle {
                IdleParams::Frozen => assert_eq!(after_use, after_idle, "an unsampled op must not move"),
                IdleParams::Decay => assert_ne!(after_use, after_idle, "the reference keeps decaying used params"),
            }
        }
    }
}
