use std::sync::Arc;

use fewshot_sdk::{Activation, Graph, GraphBuilder, SearchSpace, Slot, Width};

use super::*;
use crate::{
    data::{CIFAR_MEAN, CIFAR_STD},
    engine::{
        backend::CpuBackend,
        supernet::{tensor_to_vec, tests::depthwise_space, NormMode},
    },
    util::rng::Rng,
};

type B = CpuBackend;

fn dataset(dims: [usize; 3], pixels: Vec<u8>, labels: Vec<u32>, classes: usize) -> Dataset {
    Dataset { pixels, labels, classes: (0..classes).map(|c| format!("c{c}")).collect(), dims }
}

fn random_dataset(n: usize, dims: [usize; 3], classes: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let pixels = (0..n * dims.iter().product::<usize>()).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    dataset(dims, pixels, labels, classes)
}

fn scorer(proxy: Proxy, graph: &Graph, slots: &[Slot], data: &Dataset, batch: usize) -> Scorer<B> {
    let layout = Arc::new(SupernetLayout::new(graph, slots, 1.0, NormMode::Plain).unwrap());
    Scorer::new(proxy, layout, data, ProxyConfig { batch, seed: 3 }, &Default::default()).unwrap()
}

/// A pixel normalised as the batches are.
fn normalised(p: u8, channel: usize) -> f64 {
    (p as f64 / 255.0 - CIFAR_MEAN[channel] as f64) / CIFAR_STD[channel] as f64
}

#[test]
fn naswot_counts_agreeing_units_by_hand_for_relu_and_by_sign_for_tanh() {
    // One channel, two pixels; a slot choosing ReLU or tanh; pool; linear.
    let mut g = GraphBuilder::new();
    let x = g.input(Width::fixed(1), 1, 2);
    let r = g.when(0, 0, |g| g.activation(x, Activation::Relu));
    let t = g.when(0, 1, |g| g.activation(x, Activation::Tanh));
    let sum = g.add(&[r, t]);
    let p = g.global_avg_pool(sum);
    let out = g.linear(p, Width::fixed(2), true);
    let graph = g.finish(out);
    let slots = [Slot::new("act", &["relu", "tanh"])];
    // Pixels above the mean (125.3) normalise to positive values: codes [1,1], [1,0], [0,0].
    let data = dataset([1, 1, 2], vec![200, 200, 200, 50, 50, 50], vec![0, 1, 0], 2);
    let s = scorer(Proxy::Naswot, &graph, &slots, &data, 3);
    // K = [[2,1,0],[1,2,1],[0,1,2]] (units agreed on), det K = 4, whatever the batch order.
    for arch in [[0], [1]] {
        let got = s.measure(&arch).unwrap()[0];
        assert!((got - 4f64.ln()).abs() < 1e-9, "{arch:?}: {got}");
    }
}

/// Input (1 channel, 1×1) → conv 1×1 (`w`) → pool → linear with bias (`v`, `b`).
fn scalar_net() -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input(Width::fixed(1), 1, 1);
    let c = g.scope("body", |g| g.conv(x, Width::fixed(1), 1, 1));
    let p = g.global_avg_pool(c);
    let out = g.linear(p, Width::fixed(2), true);
    g.finish(out)
}

#[test]
fn synflow_and_snip_match_their_closed_forms_on_a_scalar_network() {
    let graph = scalar_net();
    let data = dataset([1, 1, 1], vec![200, 50, 90, 160], vec![0, 1, 1, 0], 2);
    let host = init_params_with(&SupernetLayout::new(&graph, &[], 1.0, NormMode::Plain).unwrap(), 1, 3, Init::PyTorch);
    let (w, v, b) = (host[0][0][0] as f64, &host[0][1], &host[0][2]);
    let v: Vec<f64> = v.iter().map(|&t| t as f64).collect();
    let b: Vec<f64> = b.iter().map(|&t| t as f64).collect();

    // SynFlow: R = Σ_k |v_k|·|w|·1 + |b_k|, so Σ θ ∂R/∂θ over w and v = 2·|w|·Σ|v_k|.
    let synflow = scorer(Proxy::Synflow, &graph, &[], &data, 4).measure(&[]).unwrap()[0];
    let want = 2.0 * w.abs() * v.iter().map(|t| t.abs()).sum::<f64>();
    assert!((synflow - want).abs() < 1e-6 * want, "{synflow} vs {want} (f32)");

    // SNIP: logits z_nk = v_k·w·x_n + b_k, mean cross-entropy over the 4 images.
    let (mut dw, mut dv) = (0.0, [0.0; 2]);
    for (n, &p) in data.pixels.iter().enumerate() {
        let x = normalised(p, 0);
        let z: Vec<f64> = (0..2).map(|k| v[k] * w * x + b[k]).collect();
        let top = z[0].max(z[1]);
        let e: Vec<f64> = z.iter().map(|z| (z - top).exp()).collect();
        for k in 0..2 {
            let grad = (e[k] / (e[0] + e[1]) - (data.labels[n] as usize == k) as u8 as f64) / 4.0;
            dw += grad * v[k] * x;
            dv[k] += grad * w * x;
        }
    }
    let want = (w * dw).abs() + (v[0] * dv[0]).abs() + (v[1] * dv[1]).abs();
    let snip = scorer(Proxy::Snip, &graph, &[], &data, 4).measure(&[]).unwrap()[0];
    assert!((snip - want).abs() < 1e-5 * want, "{snip} vs {want}");
}

#[test]
fn synflow_falls_back_to_double_precision_when_the_flow_leaves_f32() {
    // 60 pointwise convolutions of width 64: each multiplies the flow by about 64 · E|w| = 4,
    // so it reaches about 4^60 ≈ 1e36 · 1e0 … beyond f32 once summed over the weights.
    let mut g = GraphBuilder::new();
    let mut x = g.input(Width::fixed(1), 1, 1);
    for layer in 0..70 {
        x = g.scope(&format!("layer{layer}"), |g| g.conv(x, Width::fixed(64), 1, 1));
    }
    let p = g.global_avg_pool(x);
    let out = g.linear(p, Width::fixed(2), true);
    let graph = g.finish(out);
    let data = dataset([1, 1, 1], vec![200, 50], vec![0, 1], 2);
    let got = scorer(Proxy::Synflow, &graph, &[], &data, 2).measure(&[]).unwrap()[0];
    assert!(got.is_finite() && got > f32::MAX as f64, "{got:e}: computed in f64 past f32's range");
}

/// Input (2 channels, 1×2) → block `a` = identity → block `b` = `second(a)` → pool → linear.
fn two_blocks(second: impl FnOnce(&mut GraphBuilder, fewshot_sdk::graph::NodeId) -> fewshot_sdk::graph::NodeId) -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input(Width::fixed(2), 1, 2);
    let a = g.scope("a", |g| g.identity(x));
    let b = g.scope("b", |g| second(g, a));
    let p = g.global_avg_pool(b);
    let out = g.linear(p, Width::fixed(2), true);
    g.finish(out)
}

/// The entropy of the normalised eigenvalues of a 2×2 covariance.
fn entropy_2x2(values: &[[f64; 2]]) -> f64 {
    let m = values.len() as f64;
    let mean = [0, 1].map(|c| values.iter().map(|v| v[c]).sum::<f64>() / m);
    let cov = |a: usize, b: usize| values.iter().map(|v| (v[a] - mean[a]) * (v[b] - mean[b])).sum::<f64>() / m;
    let (s00, s01, s11) = (cov(0, 0), cov(0, 1), cov(1, 1));
    let (tr, det) = (s00 + s11, s00 * s11 - s01 * s01);
    let root = (tr * tr - 4.0 * det).max(0.0).sqrt();
    [(tr + root) / 2.0, (tr - root) / 2.0].iter().map(|l| l / tr).map(|p| -p * (p + 1e-8).ln()).sum()
}

#[test]
fn az_components_match_a_hand_computation() {
    let graph = two_blocks(|g, a| g.activation(a, Activation::Relu));
    let data = random_dataset(6, [2, 1, 2], 2, 8);
    let s = scorer(Proxy::Az, &graph, &[], &data, 6);
    assert_eq!(s.blocks.len(), 2, "blocks a and b");
    let got = s.measure(&[]).unwrap();
    // Features: the input (a) — AZ-NAS scores standard-normal noise — and its ReLU (b), one row
    // per (image, position).
    let noise = tensor_to_vec(s.images.clone());
    assert!(noise.iter().any(|&v| v < 0.0), "noise, not normalised pixels");
    // CNHW [2, 6, 1, 2]: channel c of image i at position p is noise[c·12 + i·2 + p].
    let positions: Vec<[f64; 2]> = (0..6)
        .flat_map(|i| (0..2).map(move |p| [i * 2 + p, 12 + i * 2 + p]))
        .map(|[a, b]| [noise[a] as f64, noise[b] as f64])
        .collect();
    let relu: Vec<[f64; 2]> = positions.iter().map(|v| v.map(|t| t.max(0.0))).collect();
    let (ea, eb) = (entropy_2x2(&positions), entropy_2x2(&relu));
    assert!((got[0] - (ea + eb)).abs() < 1e-5, "expressivity {} vs {}", got[0], ea + eb);
    assert!((got[1] - (eb - ea)).abs() < 1e-5, "progressivity {} vs {}", got[1], eb - ea);
    assert!(got[2].is_finite() && got[2] <= 0.0, "trainability −σ − 1/σ + 2 ≤ 0, got {}", got[2]);
    assert_eq!(got[3], s.costs.cost(&[]).flops_m());

    // An identity block passes the gradient through unchanged: trainability −inf.
    let identity = two_blocks(|g, a| g.identity(a));
    let got = scorer(Proxy::Az, &identity, &[], &data, 6).measure(&[]).unwrap();
    assert_eq!(got[2], f64::NEG_INFINITY);
    assert!((got[1]).abs() < 1e-9, "equal features, no progress");
}

fn nb201_small() -> (Graph, Vec<Slot>) {
    let space = fewshot_plugins::nb201::Nb201Space { channels: 8, cells: 1, resolution: 16, ..Default::default() };
    (space.supernet_graph(), space.slots())
}

#[test]
fn block_outputs_are_the_cells_and_blocks_of_nb201_and_mobilenet() {
    let (graph, slots) = nb201_small();
    let layout = SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap();
    let names: Vec<String> = layout.block_outputs().iter().map(|&i| graph.nodes[i].name.to_string()).collect();
    let scopes: Vec<&str> = names.iter().map(|n| n.split('.').next().unwrap()).collect();
    assert_eq!(scopes, ["stem", "stage1", "reduction1", "stage2", "reduction2", "stage3"], "{names:?}");
    let space = fewshot_plugins::mobilenet::MobileNetSpace { classes: 10, resolution: 32, ..Default::default() };
    let layout = SupernetLayout::new(&space.supernet_graph(), &space.slots(), 1.0, NormMode::Plain).unwrap();
    assert_eq!(layout.block_outputs().len(), 2 + 21, "stem, first block, 21 searchable layers");
}

#[test]
fn scores_are_deterministic_and_independent_of_threads_and_order() {
    let (graph, slots) = nb201_small();
    let data = random_dataset(20, [3, 16, 16], 10, 5);
    let archs: [[u32; 6]; 3] = [[3, 3, 2, 1, 4, 3], [0, 1, 0, 1, 0, 1], [2, 0, 4, 3, 1, 0]];
    for proxy in Proxy::ALL {
        let run = |threads: usize, reversed: bool| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let s = scorer(proxy, &graph, &slots, &data, 16);
                let mut order: Vec<usize> = (0..archs.len()).collect();
                if reversed {
                    order.reverse();
                }
                let mut rows = vec![Vec::new(); archs.len()];
                for i in order {
                    rows[i] = s.measure(&archs[i]).unwrap();
                }
                rows
            })
        };
        let first = run(1, false);
        assert_eq!(first, run(3, true), "{proxy}");
        assert!(first[0].iter().all(|v| v.is_finite()), "{proxy}: {:?}", first[0]);
        assert_ne!(first[0], first[2], "{proxy}: different architectures, different scores");
    }
}

#[test]
fn every_proxy_scores_every_op_family_and_smooth_activations() {
    let (graph, slots) = depthwise_space();
    let data = random_dataset(12, [3, 8, 8], 10, 2);
    for proxy in Proxy::ALL {
        let s = scorer(proxy, &graph, &slots, &data, 8);
        for a in 0..4 {
            for b in 0..3 {
                let got = s.measure(&[a, b]).unwrap();
                assert!(got.iter().all(|v| !v.is_nan()), "{proxy} [{a}, {b}]: {got:?}");
            }
        }
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let (graph, slots) = nb201_small();
    let layout = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap());
    let wrong = random_dataset(20, [3, 32, 32], 10, 5);
    let err = Scorer::<B>::new(Proxy::Naswot, layout.clone(), &wrong, ProxyConfig::default(), &Default::default());
    assert!(err.err().unwrap().to_string().contains("[3, 32, 32]"));
    let few = random_dataset(20, [3, 16, 16], 10, 5);
    let err = Scorer::<B>::new(Proxy::Naswot, layout.clone(), &few, ProxyConfig { batch: 64, seed: 0 }, &Default::default());
    assert!(err.err().unwrap().to_string().contains("needs 64 images"));
    let s = Scorer::<B>::new(Proxy::Snip, layout, &few, ProxyConfig { batch: 8, seed: 0 }, &Default::default()).unwrap();
    assert!(s.measure(&[9, 0, 0, 0, 0, 0]).unwrap_err().to_string().contains("option 9"));
    assert!("zen".parse::<Proxy>().unwrap_err().to_string().contains("naswot, az"));
    assert_eq!("AZ".parse::<Proxy>().unwrap(), Proxy::Az);
}

#[test]
fn log_rank_sums_add_the_log_ranks_of_every_estimator() {
    let got = log_rank_sum(&[vec![1.0, 2.0, 3.0], vec![3.0, 2.0, 1.0]]);
    let third = (1.0f64 / 3.0).ln();
    assert!((got[0] - third).abs() < 1e-12 && (got[2] - third).abs() < 1e-12);
    assert!((got[1] - 2.0 * (2.0f64 / 3.0).ln()).abs() < 1e-12);
    let ties = log_rank_sum(&[vec![f64::NAN, 5.0, 5.0]]);
    assert!(ties[0] < ties[1] && ties[1] == ties[2], "NaN lowest, ties share: {ties:?}");
}
