//! The layout of a supernet: every node's shape and resolved op, the parameters each owns, and
//! the ReLU→convolution fusion.

use fewshot_sdk::{
    arch::check_choices,
    graph::{known_activation, known_op},
    Activation, Graph, Op, Shape, Slot,
};

use crate::{
    engine::{
        kernels::{ConvSpec, PoolSpec},
        EngineError,
    },
    space::{check_divisor, SpaceError},
    util::hash::fnv1a,
};

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
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" | "none" | "batch" => Ok(NormMode::Plain),
            "affine" => Ok(NormMode::Affine),
            other => Err(EngineError::UnknownNorm(other.to_string())),
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
    /// A convolution or linear weight (what the MobileNet recipes decay).
    pub fn is_weight(&self) -> bool {
        matches!(self, ParamRole::ConvWeight | ParamRole::LinearWeight)
    }

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
    /// Options of every slot.
    slots: Vec<u32>,
    shapes: Vec<Shape>,
    pub(super) layers: Vec<Layer>,
    /// Input nodes of every node after fusion (a fused conv reads its ReLU's input).
    pub(super) inputs: Vec<Vec<u32>>,
    params: Vec<ParamInfo>,
    divisor: f64,
    norm: NormMode,
}

impl SupernetLayout {
    /// Resolves `graph` (a space's supernet graph) at channel divisor `divisor` (1 = full
    /// width, 2 = the paper's C/2). Fails on a malformed graph, an op or activation this host
    /// does not know, or an input that is not an image.
    pub fn new(graph: &Graph, slots: &[Slot], divisor: f64, norm: NormMode) -> Result<Self, EngineError> {
        check_divisor(divisor)?;
        graph.validate(slots).map_err(SpaceError::Graph)?;
        let shapes = graph.shapes(divisor).map_err(SpaceError::Graph)?;
        let mut layers = Vec::with_capacity(graph.nodes.len());
        let mut params: Vec<ParamInfo> = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let unusable = |reason: String| SpaceError::Node { index: i, name: node.name.to_string(), reason };
            let op = known_op(&node.op).map_err(unusable)?;
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
                        return Err(unusable("BatchNorm needs a feature map".into()).into());
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
                    Layer::Act(known_activation(a).map_err(unusable)?)
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
                other => return Err(unusable(format!("op `{}` is not supported by this host", other.kind_name())).into()),
            };
            layers.push(layer);
        }
        if !matches!(shapes[0], Shape::Map { .. }) {
            return Err(EngineError::InputNotImage);
        }
        if !matches!(shapes[graph.output as usize], Shape::Vector { .. }) {
            return Err(EngineError::OutputNotLogits);
        }
        let inputs = fuse_relu_into_conv(graph, &mut layers);
        Ok(SupernetLayout {
            graph: graph.clone(),
            slots: slots.iter().map(|s| s.options.len() as u32).collect(),
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

    /// Checks an architecture against the space's slots ([`check_choices`]).
    pub fn check_arch(&self, arch: &[u32]) -> Result<(), EngineError> {
        check_choices(arch, self.slots.iter().copied()).map_err(EngineError::InvalidArch)
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

    /// The block outputs of the supernet, in order: the feature-map nodes that every path from
    /// the input to the output passes through (whatever the architecture) and that are a sum
    /// (`Add`) or the last node of a top-level scope (`stem`, `stage1`, …). For NB201 these are
    /// the stem, every cell and both residual blocks; for MobileNet the stem, the first block and
    /// the 21 searchable layers. Zero-cost proxies that look at a network block by block
    /// (AZ-NAS) take their features there, and [`super::forward_segment`] runs from one to the next.
    pub fn block_outputs(&self) -> Vec<usize> {
        let n = self.layers.len();
        let out = self.graph.output as usize;
        // Nodes on some path from the input to the output (a Zero op carries no data).
        let mut from_input = vec![false; n];
        from_input[0] = true;
        for i in 1..n {
            from_input[i] = !matches!(self.layers[i], Layer::Zero | Layer::Fused)
                && self.inputs[i].iter().any(|&j| from_input[j as usize]);
        }
        let mut to_output = vec![false; n];
        to_output[out] = from_input[out];
        for i in (0..n).rev() {
            if to_output[i] {
                for &j in &self.inputs[i] {
                    to_output[j as usize] = from_input[j as usize];
                }
            }
        }
        let on_path: Vec<bool> = (0..n).map(|i| from_input[i] && to_output[i]).collect();
        // In topological order, `v` is on every path exactly when no edge jumps over it.
        let mut furthest = vec![0usize; n];
        for i in 0..n {
            if on_path[i] {
                for &j in &self.inputs[i] {
                    furthest[j as usize] = furthest[j as usize].max(i);
                }
            }
        }
        let mut last_of_scope = std::collections::HashMap::new();
        for (i, node) in self.graph.nodes.iter().enumerate() {
            if let Some((top, _)) = node.name.split_once('.') {
                last_of_scope.insert(top.to_string(), i);
            }
        }
        let scope_ends: std::collections::HashSet<usize> = last_of_scope.into_values().collect();
        let mut jumps_to = 0usize;
        let mut blocks = Vec::new();
        for v in 0..n {
            let cut = on_path[v] && jumps_to <= v;
            let block = matches!(self.layers[v], Layer::Add) || scope_ends.contains(&v);
            if v > 0 && cut && block && matches!(self.shapes[v], Shape::Map { .. }) {
                blocks.push(v);
            }
            if on_path[v] {
                jumps_to = jumps_to.max(furthest[v]);
            }
        }
        blocks
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

#[cfg(test)]
mod tests {
    use fewshot_sdk::{GraphBuilder, Width};

    use super::*;
    use crate::engine::supernet::tests::small_space;

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
        assert!(SupernetLayout::new(&graph, &slots, 0.0, NormMode::Plain).unwrap_err().to_string().contains("divisor"));
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let c = g.conv(x, Width::scaled(4), 3, 1);
        let map_out = g.finish(c);
        assert!(SupernetLayout::new(&map_out, &[], 1.0, NormMode::Plain).unwrap_err().to_string().contains("logits"));
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let c = g.when(5, 0, |g| g.conv(x, Width::scaled(4), 3, 1));
        let bad_guard = g.finish(c);
        assert!(SupernetLayout::new(&bad_guard, &slots, 1.0, NormMode::Plain).unwrap_err().to_string().contains("slot 5"));
        let layout = SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap();
        assert!(layout.check_arch(&[0]).unwrap_err().to_string().contains("2 slots"));
        assert!(layout.check_arch(&[4, 0]).unwrap_err().to_string().contains("option 4"));
    }
}
