//! Supernets built from a space's graph IR.
//!
//! A [`SupernetLayout`] resolves a supernet [`Graph`] at a channel divisor: the shape of every
//! node, the op it runs and the parameters it owns. Every candidate op of every slot has its own
//! parameters. [`Supernets`] holds `K` independent copies of those parameters (one per subspace;
//! copies share nothing) and runs subnets through them.
//!
//! ## Forward semantics
//! [`forward`] takes an architecture and runs **only** the nodes that are active in it (their
//! guards hold) and that the output depends on. A value is either a tensor or *absent*
//! (identically zero): the input of an inactive node, a [`Op::Zero`], and everything computed
//! only from absent values. Absent values are never materialised and never multiplied by zero,
//! so parameters of ops that do not take part get no gradient at all. Ops whose output at zero
//! input is not zero (a conv or linear bias, a sigmoid, an affine BN shift) produce that constant
//! from their own parameters, exactly as the graph semantics prescribe. [`Op::Add`] sums the
//! present inputs. When the output itself is absent (no live path, e.g. NB201's "trash" cells)
//! the logits are zeros.
//!
//! ## BatchNorm
//! As in the reference supernets: normalisation with the current batch's statistics, in
//! training and in evaluation, biased variance, `eps = 1e-5`. [`NormMode::Plain`] (default) has
//! no parameters; [`NormMode::Affine`] adds a learned scale (init 1) and shift (init 0) per
//! channel. For evaluation with recalibrated statistics see [`BnStats`].
//!
//! ## Initialisation
//! PyTorch's defaults, drawn from the run seed ([`Rng::stream`]`(seed, "init")`): conv and
//! linear weights kaiming-uniform with `a = √5`, i.e. `U(−1/√fan_in, 1/√fan_in)`, biases
//! `U(−1/√fan_in, 1/√fan_in)`.

use std::collections::HashMap;

use burn::tensor::{backend::Backend, Tensor, TensorData};
use fewshot_sdk::{
    graph::{known_activation, known_op},
    Activation, Graph, Op, Shape, Slot,
};

use crate::{
    engine::kernels::{generic_act, ConvSpec, PoolSpec, SupernetOps},
    util::{hash::fnv1a, rng::Rng},
};

/// BatchNorm epsilon (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// Whether supernet BatchNorm nodes have learned affine parameters. Both normalise with batch
/// statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormMode {
    /// No parameters (the reference supernets: `affine=False`).
    #[default]
    Plain,
    /// A learned per-channel scale and shift.
    Affine,
}

impl std::str::FromStr for NormMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" | "none" | "batch" => Ok(NormMode::Plain),
            "affine" => Ok(NormMode::Affine),
            other => Err(format!("unknown BatchNorm mode `{other}` (expected plain or affine)")),
        }
    }
}

/// Index of a parameter in a [`SupernetLayout`].
pub type ParamId = usize;

/// What a parameter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// Convolution kernel `[out, in/groups, k, k]`.
    ConvWeight,
    /// Convolution bias `[out]`.
    ConvBias,
    /// Linear weight `[out, in]`.
    LinearWeight,
    /// Linear bias `[out]`.
    LinearBias,
    /// BatchNorm scale `[C]` (affine mode).
    BnScale,
    /// BatchNorm shift `[C]` (affine mode).
    BnShift,
}

impl ParamRole {
    fn suffix(&self) -> &'static str {
        match self {
            ParamRole::ConvWeight | ParamRole::LinearWeight => "weight",
            ParamRole::ConvBias | ParamRole::LinearBias => "bias",
            ParamRole::BnScale => "scale",
            ParamRole::BnShift => "shift",
        }
    }
}

/// One parameter tensor of a supernet.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// `<node name>.<weight|bias|scale|shift>`.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// The node that owns it.
    pub node: usize,
    /// What it is.
    pub role: ParamRole,
    /// Fan-in used by the initialiser.
    pub fan_in: usize,
}

impl ParamInfo {
    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A node's op, resolved at the layout's channel divisor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layer {
    Input,
    Conv { spec: ConvSpec, weight: ParamId, weight_shape: [usize; 4], bias: Option<ParamId> },
    /// A ReLU fused into the convolution that is its only consumer.
    Fused,
    BatchNorm { scale: Option<ParamId>, shift: Option<ParamId> },
    Act(Activation),
    Pool(PoolSpec),
    Identity,
    Zero,
    Add,
    GlobalAvgPool,
    Linear { weight: ParamId, features: [usize; 2], bias: Option<ParamId> },
}

/// A supernet graph resolved at a channel divisor: node shapes, ops and parameters.
#[derive(Clone, Debug)]
pub struct SupernetLayout {
    graph: Graph,
    slots: Vec<usize>,
    shapes: Vec<Shape>,
    layers: Vec<Layer>,
    /// Input nodes of every node after fusion (a fused conv reads its ReLU's input).
    inputs: Vec<Vec<u32>>,
    params: Vec<ParamInfo>,
    divisor: f64,
    norm: NormMode,
}

impl SupernetLayout {
    /// Resolves `graph` (a space's supernet graph) at channel divisor `divisor` (1 = full
    /// width, 2 = the paper's C/2). Fails on a malformed graph, an op or activation this host
    /// does not know, or an input that is not an image.
    pub fn new(graph: &Graph, slots: &[Slot], divisor: f64, norm: NormMode) -> Result<Self, String> {
        if !(divisor.is_finite() && divisor > 0.0) {
            return Err(format!("the channel divisor must be a positive number, got {divisor}"));
        }
        graph.validate(slots)?;
        let shapes = graph.shapes(divisor)?;
        let mut layers = Vec::with_capacity(graph.nodes.len());
        let mut params: Vec<ParamInfo> = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let op = known_op(&node.op).map_err(|e| format!("node {i} `{}`: {e}", node.name))?;
            let mut param = |role: ParamRole, shape: Vec<usize>, fan_in: usize| {
                params.push(ParamInfo {
                    name: format!("{}.{}", node.name, role.suffix()),
                    shape,
                    node: i,
                    role,
                    fan_in,
                });
                params.len() - 1
            };
            let input_channels = node.inputs.first().map(|&j| shapes[j as usize].channels() as usize);
            let layer = match op {
                Op::Input { .. } => Layer::Input,
                Op::Conv { kernel, stride, padding, groups, bias, .. } => {
                    let cin = input_channels.unwrap_or(0);
                    let cout = shapes[i].channels() as usize;
                    let groups = if *groups == 0 { cin } else { *groups as usize };
                    let k = *kernel as usize;
                    let fan_in = cin / groups * k * k;
                    let weight_shape = [cout, cin / groups, k, k];
                    let weight = param(ParamRole::ConvWeight, weight_shape.to_vec(), fan_in);
                    let bias = bias.then(|| param(ParamRole::ConvBias, vec![cout], fan_in));
                    let spec = ConvSpec {
                        kernel: k,
                        stride: *stride as usize,
                        padding: *padding as usize,
                        groups,
                        relu_input: false,
                    };
                    Layer::Conv { spec, weight, weight_shape, bias }
                }
                Op::BatchNorm => {
                    let c = shapes[i].channels() as usize;
                    if !matches!(shapes[i], Shape::Map { .. }) {
                        return Err(format!("node {i} `{}`: BatchNorm needs a feature map", node.name));
                    }
                    match norm {
                        NormMode::Plain => Layer::BatchNorm { scale: None, shift: None },
                        NormMode::Affine => Layer::BatchNorm {
                            scale: Some(param(ParamRole::BnScale, vec![c], c)),
                            shift: Some(param(ParamRole::BnShift, vec![c], c)),
                        },
                    }
                }
                Op::Activation(a) => {
                    Layer::Act(known_activation(a).map_err(|e| format!("node {i} `{}`: {e}", node.name))?)
                }
                Op::AvgPool { kernel, stride, padding, count_include_pad } => Layer::Pool(PoolSpec {
                    average: true,
                    kernel: *kernel as usize,
                    stride: *stride as usize,
                    padding: *padding as usize,
                    count_include_pad: *count_include_pad,
                }),
                Op::MaxPool { kernel, stride, padding } => Layer::Pool(PoolSpec {
                    average: false,
                    kernel: *kernel as usize,
                    stride: *stride as usize,
                    padding: *padding as usize,
                    count_include_pad: false,
                }),
                Op::Identity => Layer::Identity,
                Op::Zero => Layer::Zero,
                Op::Add => Layer::Add,
                Op::GlobalAvgPool => Layer::GlobalAvgPool,
                Op::Linear { bias, .. } => {
                    let fin = input_channels.unwrap_or(0);
                    let fout = shapes[i].channels() as usize;
                    let weight = param(ParamRole::LinearWeight, vec![fout, fin], fin);
                    let bias = bias.then(|| param(ParamRole::LinearBias, vec![fout], fin));
                    Layer::Linear { weight, features: [fin, fout], bias }
                }
                other => {
                    return Err(format!(
                        "node {i} `{}`: op `{}` is not supported by this host",
                        node.name,
                        other.kind_name()
                    ))
                }
            };
            layers.push(layer);
        }
        if !matches!(shapes[0], Shape::Map { .. }) {
            return Err("the graph input must be an image".into());
        }
        if !matches!(shapes[graph.output as usize], Shape::Vector { .. }) {
            return Err("the graph output must be a vector of logits (end with a linear layer)".into());
        }
        let inputs = fuse_relu_into_conv(graph, &mut layers);
        Ok(SupernetLayout {
            graph: graph.clone(),
            slots: slots.iter().map(|s| s.options.len()).collect(),
            shapes,
            layers,
            inputs,
            params,
            divisor,
            norm,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Static output shape of every node.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Every parameter of one supernet, in a fixed order.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// Scalars in one supernet.
    pub fn num_scalars(&self) -> usize {
        self.params.iter().map(ParamInfo::numel).sum()
    }

    /// The channel divisor.
    pub fn divisor(&self) -> f64 {
        self.divisor
    }

    /// The BatchNorm mode.
    pub fn norm(&self) -> NormMode {
        self.norm
    }

    /// Image input `[channels, height, width]`.
    pub fn input_dims(&self) -> [usize; 3] {
        match self.shapes[0] {
            Shape::Map { channels, height, width } => [channels as usize, height as usize, width as usize],
            Shape::Vector { .. } => unreachable!("checked in new"),
        }
    }

    /// Number of output classes (logits).
    pub fn classes(&self) -> usize {
        self.shapes[self.graph.output as usize].channels() as usize
    }

    /// A fingerprint of everything that fixes the parameter layout (graph, divisor, norm mode),
    /// stored in checkpoints to refuse a mismatched one.
    pub fn fingerprint(&self) -> String {
        let layout = format!("{:?}|{}|{:?}", self.graph, self.divisor, self.norm);
        format!("{:016x}", fnv1a(layout.as_bytes()))
    }

    /// Checks an architecture against the space's slots.
    pub fn check_arch(&self, arch: &[u32]) -> Result<(), String> {
        if arch.len() != self.slots.len() {
            return Err(format!(
                "architecture has {} choices but the space has {} slots",
                arch.len(),
                self.slots.len()
            ));
        }
        for (i, (&choice, &options)) in arch.iter().zip(&self.slots).enumerate() {
            if choice as usize >= options {
                return Err(format!("slot {i} has {options} options, got option {choice}"));
            }
        }
        Ok(())
    }

    /// The nodes `forward` runs for `arch`: active, and needed by the output through active
    /// nodes. Node 0 (input) is included when needed.
    pub fn needed_nodes(&self, arch: &[u32]) -> Vec<bool> {
        let nodes = &self.graph.nodes;
        let mut needed = vec![false; nodes.len()];
        let out = self.graph.output as usize;
        needed[out] = nodes[out].is_active(arch);
        for i in (0..nodes.len()).rev() {
            if !needed[i] || matches!(self.layers[i], Layer::Zero) {
                continue;
            }
            for &j in &self.inputs[i] {
                if nodes[j as usize].is_active(arch) {
                    needed[j as usize] = true;
                }
            }
        }
        needed
    }

    /// The parameters `forward` uses for `arch` (those that will receive a gradient).
    pub fn used_params(&self, arch: &[u32]) -> Vec<bool> {
        let mut used = vec![false; self.params.len()];
        let mut note = |p: Option<ParamId>| {
            if let Some(p) = p {
                used[p] = true;
            }
        };
        let present = self.present_nodes(arch);
        for (i, layer) in self.layers.iter().enumerate() {
            let (computed, input_present) = present[i];
            if !computed {
                continue;
            }
            match layer {
                Layer::Conv { weight, bias, .. } | Layer::Linear { weight, bias, .. } => {
                    if input_present {
                        note(Some(*weight));
                    }
                    note(*bias);
                }
                Layer::BatchNorm { scale, shift } if input_present => {
                    note(*scale);
                    note(*shift);
                }
                _ => {}
            }
        }
        used
    }

    /// For every node: (runs in `forward`, has a present input).
    fn present_nodes(&self, arch: &[u32]) -> Vec<(bool, bool)> {
        let needed = self.needed_nodes(arch);
        let mut present = vec![false; self.layers.len()];
        let mut out = vec![(false, false); self.layers.len()];
        for i in 0..self.layers.len() {
            if !needed[i] {
                continue;
            }
            let input_present = self.inputs[i].iter().any(|&j| present[j as usize] && needed[j as usize]);
            present[i] = match &self.layers[i] {
                Layer::Input => true,
                Layer::Zero => false,
                Layer::Conv { bias, .. } => input_present || bias.is_some(),
                Layer::Linear { bias, .. } => input_present || bias.is_some(),
                Layer::BatchNorm { .. } => input_present,
                Layer::Act(Activation::Sigmoid) => true,
                _ => input_present,
            };
            out[i] = (true, input_present || matches!(self.layers[i], Layer::Input));
        }
        out
    }
}

/// Fuses every ReLU whose only consumer is a dense convolution with the same guards into that
/// convolution (the kernel applies the ReLU while reading its input). Returns the input lists
/// after fusion; fused ReLU nodes become [`Layer::Fused`] and are never run.
fn fuse_relu_into_conv(graph: &Graph, layers: &mut [Layer]) -> Vec<Vec<u32>> {
    let nodes = &graph.nodes;
    let mut inputs: Vec<Vec<u32>> = nodes.iter().map(|n| n.inputs.to_vec()).collect();
    let mut consumers = vec![0usize; nodes.len()];
    for node in nodes.iter() {
        for &j in node.inputs.iter() {
            consumers[j as usize] += 1;
        }
    }
    consumers[graph.output as usize] += 1;
    for i in 0..nodes.len() {
        let Layer::Conv { spec, .. } = &layers[i] else { continue };
        let j = nodes[i].inputs[0] as usize;
        let fusable = spec.groups == 1
            && matches!(layers[j], Layer::Act(Activation::Relu))
            && consumers[j] == 1
            && nodes[j].guard == nodes[i].guard;
        if fusable {
            inputs[i] = inputs[j].clone();
            layers[j] = Layer::Fused;
            if let Layer::Conv { spec, .. } = &mut layers[i] {
                spec.relu_input = true;
            }
        }
    }
    inputs
}

/// Draws the initial parameters of `count` supernets from `seed`, supernet by supernet, in
/// parameter order. Returns host vectors, one per parameter per supernet.
pub fn init_params(layout: &SupernetLayout, count: usize, seed: u64) -> Vec<Vec<Vec<f32>>> {
    let mut rng = Rng::stream(seed, "init");
    (0..count)
        .map(|_| {
            layout
                .params
                .iter()
                .map(|p| match p.role {
                    ParamRole::BnScale => vec![1.0; p.numel()],
                    ParamRole::BnShift => vec![0.0; p.numel()],
                    _ => {
                        let bound = 1.0 / (p.fan_in.max(1) as f64).sqrt();
                        (0..p.numel()).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect()
                    }
                })
                .collect()
        })
        .collect()
}

/// `K` independent supernets sharing one layout. Parameters live on backend `B` as flat
/// tensors (reshaped when used).
#[derive(Clone, Debug)]
pub struct Supernets<B: Backend> {
    layout: std::sync::Arc<SupernetLayout>,
    params: Vec<Vec<Tensor<B, 1>>>,
    device: B::Device,
}

impl<B: Backend> Supernets<B> {
    /// `count` supernets initialised from `seed`.
    pub fn new(layout: std::sync::Arc<SupernetLayout>, count: usize, seed: u64, device: &B::Device) -> Self {
        let host = init_params(&layout, count, seed);
        Self::from_host(layout, host, device)
    }

    /// Supernets from host parameter values (`[supernet][param]`, each flat).
    pub fn from_host(layout: std::sync::Arc<SupernetLayout>, host: Vec<Vec<Vec<f32>>>, device: &B::Device) -> Self {
        let params = host
            .into_iter()
            .map(|net| {
                net.into_iter()
                    .map(|values| {
                        let n = values.len();
                        Tensor::from_data(TensorData::new(values, [n]), device)
                    })
                    .collect()
            })
            .collect();
        Supernets { layout, params, device: device.clone() }
    }

    /// The shared layout.
    pub fn layout(&self) -> &std::sync::Arc<SupernetLayout> {
        &self.layout
    }

    /// Number of supernets `K`.
    pub fn count(&self) -> usize {
        self.params.len()
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Parameter `id` of supernet `k` (flat).
    pub fn param(&self, k: usize, id: ParamId) -> &Tensor<B, 1> {
        &self.params[k][id]
    }

    /// Replaces parameter `id` of supernet `k`.
    pub fn set_param(&mut self, k: usize, id: ParamId, value: Tensor<B, 1>) {
        self.params[k][id] = value;
    }

    /// All parameter values on the host (`[supernet][param]`), for checkpoints and tests.
    pub fn to_host(&self) -> Vec<Vec<Vec<f32>>> {
        self.params
            .iter()
            .map(|net| net.iter().map(|t| tensor_to_vec(t.clone())).collect())
            .collect()
    }

    /// Logits `[N, classes]` of subnet `arch` of supernet `k` on channel-major images `x`
    /// `[C, N, H, W]`, without autodiff.
    pub fn logits(&self, k: usize, arch: &[u32], x: Tensor<B, 4>, bn: &mut BnStats<B>) -> Tensor<B, 2>
    where
        B: SupernetOps,
    {
        forward(&self.layout, x, arch, |id| self.params[k][id].clone(), bn)
    }
}

/// A float tensor's values on the host.
pub fn tensor_to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensor data converts to f32")
}

/// Which statistics BatchNorm nodes normalise with.
pub enum BnStats<B: Backend> {
    /// The current batch's (the reference behaviour, training and evaluation).
    Batch,
    /// The current batch's, while accumulating them per node (BN recalibration).
    Record(RunningStats<B>),
    /// Recorded statistics (after [`BnStats::Record`]).
    Fixed(RunningStats<B>),
}

/// Per-BN-node statistics accumulated over several batches: the means of the batch means and of
/// the (unbiased) batch variances.
#[derive(Clone, Debug, Default)]
pub struct RunningStats<B: Backend> {
    sums: HashMap<usize, (Tensor<B, 1>, Tensor<B, 1>, usize)>,
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
    mut param: impl FnMut(ParamId) -> Tensor<B, 1>,
    bn: &mut BnStats<B>,
) -> Tensor<B, 2> {
    let needed = layout.needed_nodes(arch);
    let batch = x.dims()[1];
    let device = x.device();
    // Remaining consumers of every node's value, to drop values as soon as possible.
    let mut uses = vec![0usize; layout.layers.len()];
    for (i, inputs) in layout.inputs.iter().enumerate() {
        if needed[i] {
            for &j in inputs {
                uses[j as usize] += 1;
            }
        }
    }
    let mut values: Vec<Option<Value<B>>> = (0..layout.layers.len()).map(|_| None).collect();
    let mut input = Some(x);
    for (i, inputs) in layout.inputs.iter().enumerate() {
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
        let value = match &layout.layers[i] {
            Layer::Input => Value::Map(input.take().expect("one input node")),
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
                apply(layer, v, &layout.shapes[i], batch, &device, &mut param, bn, i)
            }
        };
        values[i] = Some(value);
    }
    let out = layout.graph.output as usize;
    match values[out].take() {
        Some(Value::Vec(t)) => t,
        _ => Tensor::zeros([batch, layout.classes()], &device),
    }
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
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use burn::tensor::{Tensor, TensorData};
    use fewshot_sdk::{Activation, GraphBuilder, SearchSpace, Slot, Width};

    use super::*;
    use crate::{
        engine::backend::CpuBackend,
        train::optim::{IdleParams, SgdConfig},
        train::step::StepEngine,
    };

    type B = CpuBackend;

    /// A small space: stem, then one slot choosing {ReLU-conv3x3-BN, avg pool, zero, sigmoid}
    /// on a residual branch, then a second slot {conv1x1 with bias, identity}; BN, ReLU, pool,
    /// linear.
    pub(crate) fn small_space() -> (Graph, Vec<Slot>) {
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let stem = g.scope("stem", |g| {
            let c = g.conv(x, Width::scaled(8), 3, 1);
            g.batch_norm(c)
        });
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
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let stem = g.scope("stem", |g| {
            let c = g.conv(x, Width::scaled(8), 3, 1);
            g.batch_norm(c)
        });
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
    fn small_supernet_has_one_parameter_set_per_candidate_op() {
        let (graph, slots) = small_space();
        let layout = SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap();
        let names: Vec<&str> = layout.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["stem.conv.weight", "conv.conv.weight", "pw.weight", "pw.bias", "head.linear.weight", "head.linear.bias"]);
        assert_eq!(layout.params()[0].shape, vec![4, 3, 3, 3], "width 8 at divisor 2");
        assert_eq!(layout.params()[4].shape, vec![10, 4]);
        assert_eq!(layout.classes(), 10);
        let affine = SupernetLayout::new(&graph, &slots, 1.0, NormMode::Affine).unwrap();
        assert_eq!(affine.params().len(), 6 + 3 * 2, "scale and shift for each of the 3 BNs");
    }

    #[test]
    fn unusable_graphs_are_clear_errors() {
        let (graph, slots) = small_space();
        assert!(SupernetLayout::new(&graph, &slots, 0.0, NormMode::Plain).unwrap_err().contains("divisor"));
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let c = g.conv(x, Width::scaled(4), 3, 1);
        let map_out = g.finish(c);
        assert!(SupernetLayout::new(&map_out, &[], 1.0, NormMode::Plain).unwrap_err().contains("logits"));
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let c = g.when(5, 0, |g| g.conv(x, Width::scaled(4), 3, 1));
        let bad_guard = g.finish(c);
        assert!(SupernetLayout::new(&bad_guard, &slots, 1.0, NormMode::Plain).unwrap_err().contains("slot 5"));
        let layout = SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap();
        assert!(layout.check_arch(&[0]).unwrap_err().contains("2 slots"));
        assert!(layout.check_arch(&[4, 0]).unwrap_err().contains("option 4"));
    }

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
