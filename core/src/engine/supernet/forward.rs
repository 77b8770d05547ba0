//! The forward pass of a subnet through its supernet's parameters, and the BatchNorm
//! statistics it normalises with.

use std::collections::HashMap;

use burn::tensor::{backend::Backend, Tensor};
use fewshot_sdk::{Activation, Shape};

use super::{
    layout::{Layer, SupernetLayout},
    ParamId,
};
use crate::engine::kernels::{generic::generic_act, SupernetOps};

/// Which statistics BatchNorm nodes normalise with.
pub enum BnStats<B: Backend> {
    /// The current batch's (the reference behaviour, training and evaluation).
    Batch,
    /// The current batch's, while accumulating them per node (BN recalibration).
    Record(RunningStats<B>),
    /// Recorded statistics (after [`BnStats::Record`]).
    Fixed(RunningStats<B>),
    /// No normalisation at all: BatchNorm nodes pass their input through (synflow scores the
    /// network without BatchNorm, as its reference does).
    Off,
}

/// What a forward pass shows an [`Observer`] of the input of an activation.
pub enum ActInput<'a, B: Backend> {
    /// A feature map `[C, N, H, W]`.
    Map(&'a Tensor<B, 4>),
    /// A feature vector `[N, F]`.
    Vec(&'a Tensor<B, 2>),
    /// An identically zero input (absent) of `features` values per image.
    Zero {
        /// Values per image.
        features: usize,
    },
}

/// Watches a forward pass: the input of every activation that runs (a ReLU fused into its
/// convolution included) and the value of every feature-map node. Zero-cost proxies are
/// observers; training and evaluation observe nothing.
pub trait Observer<B: Backend> {
    /// Node `node` applies activation `kind` to `input`.
    fn activation_input(&mut self, _node: usize, _kind: Activation, _input: ActInput<'_, B>) {}
    /// Feature-map node `node` computed `value` (`None`: absent, identically zero).
    fn map_output(&mut self, _node: usize, _value: Option<&Tensor<B, 4>>) {}
}

/// An observer that watches nothing.
pub struct Unobserved;

impl<B: Backend> Observer<B> for Unobserved {}

/// Per-BN-node statistics: accumulated over several batches (the means of the batch means and
/// of the unbiased batch variances, for BN recalibration), or running averages tracked during
/// training ([`RunningStats::track`], stand-alone networks).
#[derive(Clone, Debug, Default)]
pub struct RunningStats<B: Backend> {
    sums: HashMap<usize, (Tensor<B, 1>, Tensor<B, 1>, usize)>,
}

impl<B: burn::tensor::backend::AutodiffBackend> RunningStats<B> {
    /// The same statistics on the inner backend (they carry no gradient).
    pub fn inner(self) -> RunningStats<B::InnerBackend> {
        RunningStats { sums: self.sums.into_iter().map(|(node, (m, v, n))| (node, (m.inner(), v.inner(), n))).collect() }
    }
}

impl<B: Backend> RunningStats<B> {
    /// No statistics yet.
    pub fn new() -> Self {
        RunningStats { sums: HashMap::new() }
    }

    fn record(&mut self, node: usize, mean: Tensor<B, 1>, var_unbiased: Tensor<B, 1>) {
        match self.sums.remove(&node) {
            Some((m, v, n)) => self.sums.insert(node, (m + mean, v + var_unbiased, n + 1)),
            None => self.sums.insert(node, (mean, var_unbiased, 1)),
        };
    }

    /// Folds one forward pass's recorded batch statistics into these running ones as PyTorch's
    /// BatchNorm does: `running = (1 − momentum) · running + momentum · batch` (unbiased
    /// variance), from mean 0 and variance 1 for a node seen the first time.
    pub fn track(&mut self, batch: &RunningStats<B>, momentum: f64) {
        for (&node, _) in &batch.sums {
            let (mean, var) = batch.get(node).expect("a recorded node");
            let (old_mean, old_var) = match self.get(node) {
                Some(old) => old,
                None => (mean.zeros_like(), mean.ones_like()),
            };
            let mean = old_mean.mul_scalar(1.0 - momentum) + mean.mul_scalar(momentum);
            let var = old_var.mul_scalar(1.0 - momentum) + var.mul_scalar(momentum);
            self.sums.insert(node, (mean, var, 1));
        }
    }

    /// The statistics per BatchNorm node, by node: (node, mean, variance).
    pub fn entries(&self) -> Vec<(usize, Tensor<B, 1>, Tensor<B, 1>)> {
        let mut nodes: Vec<usize> = self.sums.keys().copied().collect();
        nodes.sort_unstable();
        nodes
            .into_iter()
            .map(|node| {
                let (mean, var) = self.get(node).expect("a stored node");
                (node, mean, var)
            })
            .collect()
    }

    /// Statistics from [`RunningStats::entries`].
    pub fn from_entries(entries: Vec<(usize, Tensor<B, 1>, Tensor<B, 1>)>) -> Self {
        RunningStats { sums: entries.into_iter().map(|(node, mean, var)| (node, (mean, var, 1))).collect() }
    }

    fn get(&self, node: usize) -> Option<(Tensor<B, 1>, Tensor<B, 1>)> {
        self.sums
            .get(&node)
            .map(|(m, v, n)| (m.clone().div_scalar(*n as f64), v.clone().div_scalar(*n as f64)))
    }
}

/// Runs subnet `arch` on images `x` and returns logits `[N, classes]`.
///
/// Images are **channel-major**, `[C, N, H, W]` (see [`crate::engine::kernels`]). `param` returns the
/// flat tensor of a parameter; it is called only for parameters the subnet uses (see
/// [`SupernetLayout::used_params`]). Generic over the backend, so the same code runs under
/// autodiff (training) and on the inner backend (evaluation).
pub fn forward<B: SupernetOps>(
    layout: &SupernetLayout,
    x: Tensor<B, 4>,
    arch: &[u32],
    param: impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
) -> Tensor<B, 2> {
    forward_observed(layout, x, arch, param, bn, &mut Unobserved)
}

/// [`forward`] watched by `observer`.
pub fn forward_observed<B: SupernetOps>(
    layout: &SupernetLayout,
    x: Tensor<B, 4>,
    arch: &[u32],
    mut param: impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
    observer: &mut dyn Observer<B>,
) -> Tensor<B, 2> {
    let batch = x.dims()[1];
    let device = x.device();
    let out = layout.graph().output as usize;
    match run_nodes(layout, arch, 0, Value::Map(x), out, &mut param, bn, observer) {
        Value::Vec(t) => t,
        _ => Tensor::zeros([batch, layout.classes()], &device),
    }
}

/// Runs the part of subnet `arch` between two of the layout's block outputs
/// ([`SupernetLayout::block_outputs`]): given the value `x` of node `from`, returns the value of
/// node `to` (`None` when it is absent). Because every path from the input to the output passes
/// through a block output, the nodes in between depend on `from` alone.
pub fn forward_segment<B: SupernetOps>(
    layout: &SupernetLayout,
    arch: &[u32],
    from: usize,
    x: Tensor<B, 4>,
    to: usize,
    mut param: impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
) -> Option<Tensor<B, 4>> {
    match run_nodes(layout, arch, from, Value::Map(x), to, &mut param, bn, &mut Unobserved) {
        Value::Map(t) => Some(t),
        _ => None,
    }
}

/// Runs the needed nodes after `from` (whose value is `start`) up to `to` and returns `to`'s value.
#[allow(clippy::too_many_arguments)]
fn run_nodes<B: SupernetOps>(
    layout: &SupernetLayout,
    arch: &[u32],
    from: usize,
    start: Value<B>,
    to: usize,
    param: &mut impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
    observer: &mut dyn Observer<B>,
) -> Value<B> {
    let needed = layout.needed_nodes(arch);
    let batch = match &start {
        Value::Map(x) => x.dims()[1],
        Value::Vec(x) => x.dims()[0],
        Value::Absent => 0,
    };
    let device = match &start {
        Value::Map(x) => x.device(),
        Value::Vec(x) => x.device(),
        Value::Absent => Default::default(),
    };
    // Remaining consumers of every node's value, to drop values as soon as possible.
    let mut uses = vec![0usize; layout.layers.len()];
    for (i, inputs) in layout.inputs.iter().enumerate().take(to + 1).skip(from + 1) {
        if needed[i] {
            for &j in inputs {
                uses[j as usize] += 1;
            }
        }
    }
    let mut values: Vec<Option<Value<B>>> = (0..layout.layers.len()).map(|_| None).collect();
    let mut start = Some(start);
    for (i, inputs) in layout.inputs.iter().enumerate().take(to + 1).skip(from) {
        if !needed[i] {
            continue;
        }
        let mut take = |j: u32, values: &mut Vec<Option<Value<B>>>| -> Value<B> {
            let j = j as usize;
            if !needed[j] {
                return Value::Absent;
            }
            uses[j] -= 1;
            if uses[j] == 0 {
                values[j].take().unwrap_or(Value::Absent)
            } else {
                values[j].clone().unwrap_or(Value::Absent)
            }
        };
        let value = if i == from {
            start.take().expect("the start value is used once")
        } else {
            match &layout.layers[i] {
                Layer::Input => unreachable!("the input node is the first node"),
                Layer::Add => {
                    let mut sum = Value::Absent;
                    for &j in inputs {
                        sum = match (sum, take(j, &mut values)) {
                            (a, Value::Absent) => a,
                            (Value::Absent, b) => b,
                            (Value::Map(a), Value::Map(b)) => Value::Map(a + b),
                            (Value::Vec(a), Value::Vec(b)) => Value::Vec(a + b),
                            _ => unreachable!("Add inputs have equal shapes (checked by Graph::shapes)"),
                        };
                    }
                    sum
                }
                layer => {
                    let v = take(inputs[0], &mut values);
                    let shape = &layout.shapes()[i];
                    observe_activation(layer, &v, per_image(&layout.shapes()[inputs[0] as usize]), i, observer);
                    apply(layer, v, shape, batch, &device, param, bn, i)
                }
            }
        };
        if let Shape::Map { .. } = layout.shapes()[i] {
            match &value {
                Value::Map(t) => observer.map_output(i, Some(t)),
                _ => observer.map_output(i, None),
            }
        }
        values[i] = Some(value);
    }
    values[to].take().unwrap_or(Value::Absent)
}

/// Values per image of a node of shape `shape`.
fn per_image(shape: &Shape) -> usize {
    match *shape {
        Shape::Map { channels, height, width } => (channels * height * width) as usize,
        Shape::Vector { features } => features as usize,
    }
}

/// Shows `observer` the input of `layer` when it applies an activation (a fused ReLU included).
fn observe_activation<B: Backend>(layer: &Layer, v: &Value<B>, features: usize, node: usize, observer: &mut dyn Observer<B>) {
    let kind = match layer {
        Layer::Act(kind) => *kind,
        Layer::Conv { spec, .. } if spec.relu_input => Activation::Relu,
        _ => return,
    };
    let input = match v {
        Value::Map(t) => ActInput::Map(t),
        Value::Vec(t) => ActInput::Vec(t),
        Value::Absent => ActInput::Zero { features },
    };
    observer.activation_input(node, kind, input);
}

/// A node's value in a forward pass.
#[derive(Clone)]
enum Value<B: Backend> {
    /// Identically zero (not materialised).
    Absent,
    /// A feature map `[C, N, H, W]`.
    Map(Tensor<B, 4>),
    /// A feature vector `[N, F]`.
    Vec(Tensor<B, 2>),
}

/// Applies a one-input layer.
#[allow(clippy::too_many_arguments)]
fn apply<B: SupernetOps>(
    layer: &Layer,
    v: Value<B>,
    shape: &Shape,
    batch: usize,
    device: &B::Device,
    param: &mut impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
    node: usize,
) -> Value<B> {
    let map_dims = |s: &Shape| match *s {
        Shape::Map { channels, height, width } => [channels as usize, batch, height as usize, width as usize],
        Shape::Vector { .. } => unreachable!("a map node"),
    };
    let channel_vector = |t: Tensor<B, 1>| {
        let c = t.dims()[0];
        t.reshape([c, 1, 1, 1])
    };
    match (layer, v) {
        (Layer::Identity, v) => v,
        (Layer::Zero | Layer::Fused, _) => Value::Absent,
        (Layer::Conv { weight, weight_shape, bias, spec }, v) => {
            let bias = bias.map(|b| channel_vector(param(b)));
            match v {
                Value::Map(x) => {
                    let w = param(*weight).reshape(*weight_shape);
                    let y = B::conv(x, w, *spec);
                    Value::Map(match bias {
                        Some(b) => y + b,
                        None => y,
                    })
                }
                _ => match bias {
                    Some(b) => Value::Map(b.expand(map_dims(shape))),
                    None => Value::Absent,
                },
            }
        }
        (Layer::Linear { weight, features: [fin, fout], bias }, v) => {
            let bias = bias.map(|b| param(b).reshape([1, *fout]));
            match v {
                Value::Vec(x) => {
                    let w = param(*weight).reshape([*fout, *fin]);
                    let y = x.matmul(w.transpose());
                    Value::Vec(match bias {
                        Some(b) => y + b,
                        None => y,
                    })
                }
                _ => match bias {
                    Some(b) => Value::Vec(b.expand([batch, *fout])),
                    None => Value::Absent,
                },
            }
        }
        (Layer::BatchNorm { scale, shift }, Value::Map(x)) => {
            let y = batch_norm(x, bn, node);
            let y = match scale {
                Some(s) => y * channel_vector(param(*s)),
                None => y,
            };
            Value::Map(match shift {
                Some(s) => y + channel_vector(param(*s)),
                None => y,
            })
        }
        (Layer::Act(Activation::Sigmoid), Value::Absent) => Value::Map(Tensor::full(map_dims(shape), 0.5, device)),
        (Layer::Act(kind), Value::Map(x)) => Value::Map(B::act(*kind, x)),
        (Layer::Act(kind), Value::Vec(x)) => Value::Vec(generic_act(*kind, x)),
        (Layer::Pool(spec), Value::Map(x)) => Value::Map(B::pool(x, *spec)),
        (Layer::GlobalAvgPool, Value::Map(x)) => Value::Vec(B::global_pool(x)),
        (_, Value::Absent) => Value::Absent,
        (layer, _) => unreachable!("layer {layer:?} got an input of the wrong rank (checked by Graph::shapes)"),
    }
}

/// BatchNorm without the affine part, with the statistics `bn` selects.
fn batch_norm<B: SupernetOps>(x: Tensor<B, 4>, bn: &mut BnStats<B>, node: usize) -> Tensor<B, 4> {
    match bn {
        BnStats::Batch => B::batch_norm(x),
        BnStats::Record(stats) => {
            let [_, n, h, w] = x.dims();
            let count = n * h * w;
            let (y, mean, var) = B::batch_norm_stats(x);
            let unbiased = var.mul_scalar(count as f64 / (count.max(2) - 1) as f64);
            stats.record(node, mean, unbiased);
            y
        }
        BnStats::Fixed(stats) => match stats.get(node) {
            Some((mean, var)) => B::batch_norm_fixed(x, mean, var),
            None => B::batch_norm(x),
        },
        BnStats::Off => x,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fewshot_sdk::SearchSpace;

    use super::*;
    use crate::engine::supernet::{
        tests::{images, small_space},
        tensor_to_vec, NormMode, Supernets,
    };

    type B = crate::engine::backend::CpuBackend;

    #[test]
    fn forward_gives_logits_and_skips_inactive_ops() {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let nets = Supernets::<B>::new(layout.clone(), 2, 7, &Default::default());
        for arch in [[0, 0], [1, 1], [2, 0], [3, 1]] {
            let logits = nets.logits(1, &arch, images(5, 3, 8, 1), &mut BnStats::Batch);
            assert_eq!(logits.dims(), [5, 10]);
            assert!(tensor_to_vec(logits).iter().all(|v| v.is_finite()));
        }
        let used = layout.used_params(&[1, 1]);
        let used: Vec<&str> = layout.params().iter().zip(used).filter(|(_, u)| *u).map(|(p, _)| p.name.as_str()).collect();
        assert_eq!(used, ["stem.conv.weight", "head.linear.weight", "head.linear.bias"]);
    }

    #[test]
    fn absent_branches_follow_the_graph_semantics() {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap());
        let nets = Supernets::<B>::new(layout.clone(), 1, 5, &Default::default());
        let x = images(4, 3, 8, 9);
        // Zero on the branch and identity after: the sum is the stem alone.
        let zero = tensor_to_vec(nets.logits(0, &[2, 1], x.clone(), &mut BnStats::Batch));
        // The sigmoid of the zero branch is a constant 0.5 everywhere, which BN removes again.
        let sigmoid = tensor_to_vec(nets.logits(0, &[3, 1], x, &mut BnStats::Batch));
        for (a, b) in zero.iter().zip(&sigmoid) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn recorded_statistics_reproduce_batch_statistics_on_the_same_batch() {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Affine).unwrap());
        let nets = Supernets::<B>::new(layout, 1, 5, &Default::default());
        let x = images(16, 3, 8, 2);
        let batch = tensor_to_vec(nets.logits(0, &[0, 0], x.clone(), &mut BnStats::Batch));
        let mut record = BnStats::Record(RunningStats::new());
        nets.logits(0, &[0, 0], x.clone(), &mut record);
        let BnStats::Record(stats) = record else { unreachable!() };
        assert_eq!(stats.sums.len(), 3, "one entry per BN node on the path");
        let fixed = tensor_to_vec(nets.logits(0, &[0, 0], x, &mut BnStats::Fixed(stats)));
        for (a, b) in batch.iter().zip(&fixed) {
            assert!((a - b).abs() < 2e-2, "{a} vs {b} (only the unbiased variance differs)");
        }
    }

    #[test]
    fn nb201_supernet_at_divisor_two() {
        let space = fewshot_plugins::nb201::Nb201Space::default();
        let graph = space.supernet_graph();
        let layout = Arc::new(SupernetLayout::new(&graph, &space.slots(), 2.0, NormMode::Plain).unwrap());
        let c = 8usize;
        assert_eq!(layout.num_scalars(), 6580 * c * c + 67 * c + 10, "the reference count (efs-nas.md §1.3) at C=8");
        assert_eq!(layout.input_dims(), [3, 32, 32]);
        let nets = Supernets::<B>::new(layout.clone(), 1, 1, &Default::default());
        let all_conv3 = [3u32; 6];
        let logits = nets.logits(0, &all_conv3, images(2, 3, 32, 4), &mut BnStats::Batch);
        assert_eq!(logits.dims(), [2, 10]);
        let used = layout.used_params(&all_conv3);
        for (p, u) in layout.params().iter().zip(&used) {
            assert_eq!(*u, !p.name.contains("nor_conv_1x1"), "{}", p.name);
        }
        // A trash architecture (no live path) yields the classifier bias for every image.
        let trash = [0u32, 0, 1, 0, 0, 1];
        let logits = tensor_to_vec(nets.logits(0, &trash, images(2, 3, 32, 4), &mut BnStats::Batch));
        assert_eq!(logits[..10], logits[10..]);
    }
}
