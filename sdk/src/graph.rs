//! The network-graph IR: how a search space describes its networks to the host.
//!
//! A [`Graph`] is a list of [`Node`]s in topological order. Every node holds one primitive
//! [`Op`], the indices of its input nodes (always earlier nodes) and a guard: the node exists
//! in a subnet only when every [`Guard`] holds (`arch[slot] == option`). A supernet graph holds
//! every candidate op of every slot; the graph of one subnet is the same graph seen through an
//! architecture ([`Subnet`]), or materialised with [`Graph::subnet`].
//!
//! Semantics the host implements:
//! - an input that is inactive in the subnet counts as identically zero;
//! - [`Op::Zero`] outputs zeros of its input's shape (a path through it is dead);
//! - [`Op::Add`] sums its active, non-zero inputs (all inputs must have the same shape);
//!   with none of them it outputs zeros;
//! - convolution padding is explicit, output size `(in + 2·padding − kernel) / stride + 1`.
//!
//! Channel widths are [`Width`]s, so the host can divide channels by the channel divisor `c`.
//! The op and activation enums are non-exhaustive across the ABI: new variants can be added in a
//! minor SDK version, and a host that meets a variant it does not know rejects the graph.

use abi_stable::{
    nonexhaustive_enum::NonExhaustive,
    std_types::{RString, RVec},
    StableAbi,
};

use crate::arch::Slot;

/// A channel count, expressed so the host can apply the channel divisor `c`.
///
/// Resolved width = `base · expand` when `scaled` is false (e.g. 3 input channels, 10 classes),
/// `max(1, round(base / c)) · expand` when it is true (e.g. a stage width, or an MBConv hidden
/// width `C_in · e`).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Width {
    /// Full-width channels before expansion.
    pub base: u32,
    /// Integer expansion factor applied after the divisor (1 for plain widths).
    pub expand: u32,
    /// Whether the channel divisor applies.
    pub scaled: bool,
}

impl Width {
    /// A width the channel divisor does not change.
    pub const fn fixed(channels: u32) -> Self {
        Width { base: channels, expand: 1, scaled: false }
    }

    /// A width divided by the channel divisor.
    pub const fn scaled(channels: u32) -> Self {
        Width { base: channels, expand: 1, scaled: true }
    }

    /// An expanded width, `round(base / c) · expand` (e.g. an inverted-residual hidden layer).
    pub const fn expanded(base: u32, expand: u32) -> Self {
        Width { base, expand, scaled: true }
    }

    /// The channel count at channel divisor `divisor` (1.0 = full width).
    pub fn resolve(&self, divisor: f64) -> u32 {
        let base = if self.scaled {
            ((self.base as f64 / divisor).round() as u32).max(1)
        } else {
            self.base
        };
        base * self.expand
    }
}

/// An activation function kind. Non-exhaustive across the ABI (see [`Activation_NE`]).
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[sabi(kind(WithNonExhaustive(size = 8, align = 4, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum Activation {
    /// max(0, x)
    Relu,
    /// min(max(0, x), 6)
    Relu6,
    /// tanh(x)
    Tanh,
    /// x · Φ(x)
    Gelu,
    /// 1 / (1 + e^−x)
    Sigmoid,
    /// x · sigmoid(x)
    Silu,
}

impl Activation {
    /// Every activation kind this SDK version knows.
    pub const ALL: [Activation; 6] = [
        Activation::Relu,
        Activation::Relu6,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Silu,
    ];

    /// Lower-case name (`relu`, `relu6`, `tanh`, `gelu`, `sigmoid`, `silu`).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(name: &str) -> Result<Activation, String> {
        Activation::ALL
            .iter()
            .copied()
            .find(|a| a.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                let known: Vec<_> = Activation::ALL.iter().map(|a| a.name()).collect();
                format!("unknown activation `{name}` (known: {})", known.join(", "))
            })
    }

    /// Wraps the kind for the ABI.
    pub fn ne(self) -> Activation_NE {
        NonExhaustive::new(self)
    }
}

/// A primitive operation of the graph IR. Non-exhaustive across the ABI (see [`Op_NE`]).
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = 64, align = 8, traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum Op {
    /// The image input (exactly one, node 0).
    Input {
        /// Channels (`Width::fixed(3)` for RGB images; a scaled width when the graph starts
        /// at a feature map, e.g. a counting graph that is one cell).
        channels: Width,
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
    },
    /// 2-D convolution.
    Conv {
        /// Output channels.
        out: Width,
        /// Square kernel size.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Zero padding on every side.
        padding: u32,
        /// Channel groups: 1 = dense, 0 = depthwise (one group per input channel).
        groups: u32,
        /// Whether the convolution has a bias.
        bias: bool,
    },
    /// Batch normalisation over channels. Whether it has affine parameters and running
    /// statistics is the host's training choice; cost counting assumes affine parameters.
    BatchNorm,
    /// An element-wise activation.
    Activation(Activation_NE),
    /// Average pooling.
    AvgPool {
        /// Square window size.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Zero padding on every side.
        padding: u32,
        /// Whether padded zeros count in the average (NB201's pool excludes them).
        count_include_pad: bool,
    },
    /// Max pooling.
    MaxPool {
        /// Square window size.
        kernel: u32,
        /// Stride.
        stride: u32,
        /// Padding on every side (padded values never win).
        padding: u32,
    },
    /// Passes its input through.
    Identity,
    /// Outputs zeros shaped like its input; a path through it is dead.
    Zero,
    /// Sum of the active inputs (residual connections, cell nodes).
    Add,
    /// Global average pooling: `[N, C, H, W] → [N, C]`.
    GlobalAvgPool,
    /// Fully connected layer on `[N, F]`.
    Linear {
        /// Output features.
        out: Width,
        /// Whether the layer has a bias.
        bias: bool,
    },
}

impl Op {
    /// Wraps the op for the ABI.
    pub fn ne(self) -> Op_NE {
        NonExhaustive::new(self)
    }

    /// A short lower-case name of the op kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Conv { .. } => "conv",
            Op::BatchNorm => "batch_norm",
            Op::Activation(_) => "activation",
            Op::AvgPool { .. } => "avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::Identity => "identity",
            Op::Zero => "zero",
            Op::Add => "add",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
        }
    }
}

/// Unwraps an ABI op, failing with a clear message for a variant this SDK does not know.
pub fn known_op(op: &Op_NE) -> Result<&Op, String> {
    op.as_enum().map_err(|_| {
        format!(
            "graph uses an op this host does not know (it was added in a newer fewshot-sdk than {}); \
             upgrade fewshot or rebuild the plugin without that op",
            crate::SDK_VERSION
        )
    })
}

/// Unwraps an ABI activation kind, failing clearly for an unknown variant.
pub fn known_activation(act: &Activation_NE) -> Result<Activation, String> {
    act.as_enum().copied().map_err(|_| {
        format!(
            "graph uses an activation this host does not know (newer fewshot-sdk than {})",
            crate::SDK_VERSION
        )
    })
}

/// A condition on one slot: the node exists only when `arch[slot] == option`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    /// Slot index.
    pub slot: u32,
    /// Option index.
    pub option: u32,
}

/// One node of a graph.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Node {
    /// Readable unique name, e.g. `stage1.cell0.edge3.nor_conv_3x3.conv`.
    pub name: RString,
    /// The operation.
    pub op: Op_NE,
    /// Indices of the input nodes (all smaller than this node's index).
    pub inputs: RVec<u32>,
    /// The node exists in a subnet only when every guard holds; empty = always.
    pub guard: RVec<Guard>,
}

impl Node {
    /// Whether the node exists in the subnet `arch`.
    pub fn is_active(&self, arch: &[u32]) -> bool {
        self.guard
            .iter()
            .all(|g| arch.get(g.slot as usize) == Some(&g.option))
    }
}

/// A network graph: nodes in topological order and the output node.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Default)]
pub struct Graph {
    /// Nodes; node 0 is the input.
    pub nodes: RVec<Node>,
    /// Index of the output node.
    pub output: u32,
}

/// The static shape of a node's output (batch dimension left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature map `[C, H, W]`.
    Map {
        /// Channels.
        channels: u32,
        /// Height.
        height: u32,
        /// Width.
        width: u32,
    },
    /// A feature vector `[F]`.
    Vector {
        /// Features.
        features: u32,
    },
}

impl Shape {
    /// Channels of a feature map or features of a vector.
    pub fn channels(&self) -> u32 {
        match *self {
            Shape::Map { channels, .. } => channels,
            Shape::Vector { features } => features,
        }
    }
}

impl Graph {
    /// Checks the structural rules: node 0 is the only input, inputs point backwards, arities
    /// fit the ops, guards name existing slots and options, every op is known to this SDK.
    pub fn validate(&self, slots: &[Slot]) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("graph has no nodes".into());
        }
        if self.output as usize >= self.nodes.len() {
            return Err(format!(
                "output node {} does not exist ({} nodes)",
                self.output,
                self.nodes.len()
            ));
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let op = known_op(&node.op).map_err(|e| format!("node {i} `{}`: {e}", node.name))?;
            let fail = |msg: String| Err(format!("node {i} `{}`: {msg}", node.name));
            let is_input = matches!(op, Op::Input { .. });
            if is_input != (i == 0) {
                return fail("the input op must be node 0 and appear exactly once".into());
            }
            if let Op::Activation(a) = op {
                known_activation(a).map_err(|e| format!("node {i} `{}`: {e}", node.name))?;
            }
            let arity_ok = match op {
                Op::Input { .. } => node.inputs.is_empty(),
                Op::Add => !node.inputs.is_empty(),
                _ => node.inputs.len() == 1,
            };
            if !arity_ok {
                return fail(format!(
                    "op `{}` cannot take {} inputs",
                    op.kind_name(),
                    node.inputs.len()
                ));
            }
            if let Some(&bad) = node.inputs.iter().find(|&&j| j as usize >= i) {
                return fail(format!("input {bad} is not an earlier node"));
            }
            for g in node.guard.iter() {
                let Some(slot) = slots.get(g.slot as usize) else {
                    return fail(format!("guard names slot {} of {}", g.slot, slots.len()));
                };
                if g.option as usize >= slot.options.len() {
                    return fail(format!(
                        "guard names option {} of slot {} which has {}",
                        g.option,
                        g.slot,
                        slot.options.len()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Infers the output shape of every node at channel divisor `divisor` (1.0 = full width).
    /// Shapes are static: they do not depend on the architecture.
    pub fn shapes(&self, divisor: f64) -> Result<Vec<Shape>, String> {
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let op = known_op(&node.op)?;
            let err = |msg: String| format!("node {i} `{}` ({}): {msg}", node.name, op.kind_name());
            let input = node.inputs.first().map(|&j| shapes[j as usize]);
            let map_in = || match input {
                Some(Shape::Map { channels, height, width }) => Ok((channels, height, width)),
                Some(Shape::Vector { .. }) => Err(err("needs a feature map, got a vector".into())),
                None => Err(err("has no input".into())),
            };
            let window = |size: u32, kernel: u32, stride: u32, padding: u32| {
                if stride == 0 || kernel == 0 || size + 2 * padding < kernel {
                    Err(err(format!(
                        "window {kernel} stride {stride} padding {padding} does not fit size {size}"
                    )))
                } else {
                    Ok((size + 2 * padding - kernel) / stride + 1)
                }
            };
            let shape = match op {
                Op::Input { channels, height, width } => {
                    Shape::Map { channels: channels.resolve(divisor), height: *height, width: *width }
                }
                Op::Conv { out, kernel, stride, padding, groups, .. } => {
                    let (c, h, w) = map_in()?;
                    let out_c = out.resolve(divisor);
                    let g = if *groups == 0 { c } else { *groups };
                    if g == 0 || c % g != 0 || out_c % g != 0 {
                        return Err(err(format!(
                            "{g} groups do not divide {c} input and {out_c} output channels"
                        )));
                    }
                    Shape::Map {
                        channels: out_c,
                        height: window(h, *kernel, *stride, *padding)?,
                        width: window(w, *kernel, *stride, *padding)?,
                    }
                }
                Op::AvgPool { kernel, stride, padding, .. } | Op::MaxPool { kernel, stride, padding } => {
                    let (c, h, w) = map_in()?;
                    Shape::Map {
                        channels: c,
                        height: window(h, *kernel, *stride, *padding)?,
                        width: window(w, *kernel, *stride, *padding)?,
                    }
                }
                Op::BatchNorm | Op::Activation(_) | Op::Identity | Op::Zero => {
                    input.ok_or_else(|| err("has no input".into()))?
                }
                Op::Add => {
                    let first = input.ok_or_else(|| err("has no input".into()))?;
                    for &j in node.inputs.iter() {
                        if shapes[j as usize] != first {
                            return Err(err(format!(
                                "inputs have different shapes: {:?} and {:?}",
                                first, shapes[j as usize]
                            )));
                        }
                    }
                    first
                }
                Op::GlobalAvgPool => Shape::Vector { features: map_in()?.0 },
                Op::Linear { out, .. } => match input {
                    Some(Shape::Vector { .. }) => Shape::Vector { features: out.resolve(divisor) },
                    _ => return Err(err("needs a feature vector input".into())),
                },
            };
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// The graph seen through one architecture.
    pub fn view<'a>(&'a self, arch: &'a [u32]) -> Subnet<'a> {
        Subnet { graph: self, arch }
    }

    /// Materialises the graph of one subnet: inactive nodes are dropped and guards cleared. An
    /// active node whose inputs all vanished outputs zeros: it becomes [`Op::Zero`] fed by the
    /// nearest surviving ancestor of the same shape, or vanishes too when there is none. Fails
    /// when the output itself vanishes (no live path, e.g. NB201's "trash" cells).
    pub fn subnet(&self, arch: &[u32]) -> Result<Graph, String> {
        let shapes = self.shapes(1.0)?;
        let mut remap: Vec<Option<u32>> = vec![None; self.nodes.len()];
        let mut nodes: RVec<Node> = RVec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_active(arch) {
                continue;
            }
            let inputs: RVec<u32> = node.inputs.iter().filter_map(|&j| remap[j as usize]).collect();
            let new = if inputs.is_empty() && !node.inputs.is_empty() {
                let Some(source) = same_shape_ancestor(self, i, &shapes, &remap) else {
                    continue;
                };
                Node {
                    name: node.name.clone(),
                    op: Op::Zero.ne(),
                    inputs: RVec::from(vec![source]),
                    guard: RVec::new(),
                }
            } else {
                Node { name: node.name.clone(), op: node.op.clone(), inputs, guard: RVec::new() }
            };
            remap[i] = Some(nodes.len() as u32);
            nodes.push(new);
        }
        let output = remap[self.output as usize]
            .ok_or("the subnet has no live input-to-output path: its output is constant")?;
        Ok(Graph { nodes, output })
    }
}

/// For a node whose inputs all vanished in a subnet: the nearest surviving ancestor with the
/// node's shape (breadth-first through the supernet inputs), to hang an [`Op::Zero`] on.
fn same_shape_ancestor(graph: &Graph, node: usize, shapes: &[Shape], remap: &[Option<u32>]) -> Option<u32> {
    let mut queue: std::collections::VecDeque<usize> = graph.nodes[node].inputs.iter().map(|&j| j as usize).collect();
    let mut seen = vec![false; graph.nodes.len()];
    while let Some(j) = queue.pop_front() {
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        if let Some(new) = remap[j] {
            if shapes[j] == shapes[node] {
                return Some(new);
            }
        }
        queue.extend(graph.nodes[j].inputs.iter().map(|&k| k as usize));
    }
    None
}

/// A supernet graph seen through one architecture: the graph of one subnet, without copying.
#[derive(Clone, Copy, Debug)]
pub struct Subnet<'a> {
    /// The supernet (or counting) graph.
    pub graph: &'a Graph,
    /// The architecture.
    pub arch: &'a [u32],
}

impl<'a> Subnet<'a> {
    /// Whether node `i` exists in this subnet.
    pub fn is_active(&self, i: usize) -> bool {
        self.graph.nodes[i].is_active(self.arch)
    }

    /// For every node: whether signal from the input reaches it through active, non-zero nodes.
    pub fn reached_from_input(&self) -> Vec<bool> {
        let nodes = &self.graph.nodes;
        let mut reached = vec![false; nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            if !node.is_active(self.arch) {
                continue;
            }
            reached[i] = match node.op.as_enum() {
                Ok(Op::Input { .. }) => true,
                Ok(Op::Zero) => false,
                _ => node.inputs.iter().any(|&j| reached[j as usize]),
            };
        }
        reached
    }

    /// For every node: whether it lies on a live input→output path (signal flows through it
    /// from the input to the output, through active, non-zero nodes only).
    pub fn live_nodes(&self) -> Vec<bool> {
        let nodes = &self.graph.nodes;
        let forward = self.reached_from_input();
        let mut live = vec![false; nodes.len()];
        let out = self.graph.output as usize;
        live[out] = forward[out];
        for i in (0..nodes.len()).rev() {
            if !live[i] {
                continue;
            }
            for &j in nodes[i].inputs.iter() {
                if forward[j as usize] {
                    live[j as usize] = true;
                }
            }
        }
        live
    }

    /// Whether any input→output path is live (false for "trash" architectures whose output does
    /// not depend on the input).
    pub fn has_live_path(&self) -> bool {
        self.reached_from_input()[self.graph.output as usize]
    }
}

/// Builds graphs node by node, with scoped names and guards.
///
/// ```
/// use fewshot_sdk::graph::{GraphBuilder, Width};
/// use fewshot_sdk::Activation;
/// let mut g = GraphBuilder::new();
/// let x = g.input(Width::fixed(3), 32, 32);
/// let y = g.scope("stem", |g| {
///     let c = g.conv(x, Width::scaled(16), 3, 1);
///     g.batch_norm(c)
/// });
/// let a = g.when(0, 1, |g| g.activation(y, Activation::Relu));
/// let out = g.add(&[y, a]);
/// let graph = g.finish(out);
/// assert_eq!(graph.nodes.len(), 5);
/// ```
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    scopes: Vec<String>,
    guards: Vec<Guard>,
}

/// Index of a node in a [`GraphBuilder`].
pub type NodeId = u32;

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node with the current scope and guards; returns its index.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> NodeId {
        let mut full = self.scopes.join(".");
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(name);
        let id = self.nodes.len() as NodeId;
        self.nodes.push(Node {
            name: RString::from(full),
            op: op.ne(),
            inputs: inputs.to_vec().into(),
            guard: self.guards.clone().into(),
        });
        id
    }

    /// Runs `f` with a name scope pushed (`scope.name` for the nodes it adds).
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(name.to_string());
        let out = f(self);
        self.scopes.pop();
        out
    }

    /// Runs `f` with the guard `arch[slot] == option` added to the nodes it adds.
    pub fn when<T>(&mut self, slot: u32, option: u32, f: impl FnOnce(&mut Self) -> T) -> T {
        self.guards.push(Guard { slot, option });
        let out = f(self);
        self.guards.pop();
        out
    }

    /// The input (must be the first node): `Width::fixed(3)` for RGB images.
    pub fn input(&mut self, channels: Width, height: u32, width: u32) -> NodeId {
        self.push("input", Op::Input { channels, height, width }, &[])
    }

    /// A dense `kernel×kernel` convolution without bias, padding `kernel / 2`.
    pub fn conv(&mut self, x: NodeId, out: Width, kernel: u32, stride: u32) -> NodeId {
        let op = Op::Conv { out, kernel, stride, padding: kernel / 2, groups: 1, bias: false };
        self.push("conv", op, &[x])
    }

    /// A depthwise `kernel×kernel` convolution without bias, padding `kernel / 2`; `width` must be
    /// the input's width.
    pub fn depthwise_conv(&mut self, x: NodeId, width: Width, kernel: u32, stride: u32) -> NodeId {
        let op = Op::Conv { out: width, kernel, stride, padding: kernel / 2, groups: 0, bias: false };
        self.push("dwconv", op, &[x])
    }

    /// Batch normalisation.
    pub fn batch_norm(&mut self, x: NodeId) -> NodeId {
        self.push("bn", Op::BatchNorm, &[x])
    }

    /// An activation.
    pub fn activation(&mut self, x: NodeId, kind: Activation) -> NodeId {
        self.push(kind.name(), Op::Activation(kind.ne()), &[x])
    }

    /// Average pooling.
    pub fn avg_pool(&mut self, x: NodeId, kernel: u32, stride: u32, padding: u32, count_include_pad: bool) -> NodeId {
        self.push("avg_pool", Op::AvgPool { kernel, stride, padding, count_include_pad }, &[x])
    }

    /// Max pooling.
    pub fn max_pool(&mut self, x: NodeId, kernel: u32, stride: u32, padding: u32) -> NodeId {
        self.push("max_pool", Op::MaxPool { kernel, stride, padding }, &[x])
    }

    /// Identity.
    pub fn identity(&mut self, x: NodeId) -> NodeId {
        self.push("identity", Op::Identity, &[x])
    }

    /// Zero (a dead edge).
    pub fn zero(&mut self, x: NodeId) -> NodeId {
        self.push("zero", Op::Zero, &[x])
    }

    /// Sum of the active inputs.
    pub fn add(&mut self, inputs: &[NodeId]) -> NodeId {
        self.push("add", Op::Add, inputs)
    }

    /// Global average pooling.
    pub fn global_avg_pool(&mut self, x: NodeId) -> NodeId {
        self.push("global_pool", Op::GlobalAvgPool, &[x])
    }

    /// A fully connected layer.
    pub fn linear(&mut self, x: NodeId, out: Width, bias: bool) -> NodeId {
        self.push("linear", Op::Linear { out, bias }, &[x])
    }

    /// Number of nodes added so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True before the first node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The finished graph with `output` as its output node.
    pub fn finish(self, output: NodeId) -> Graph {
        Graph { nodes: self.nodes.into(), output }
    }
}
