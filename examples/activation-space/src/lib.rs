//! A third-party fewshot plugin library, written only against `fewshot-sdk`.
//!
//! It shows one plugin of each kind:
//! - `act-chain` (search space): a chain of searchable layers at CIFAR resolution whose
//!   activation function is a parameter (`activation=gelu` by default, `tanh`, `relu`, …);
//! - `depth` (counting rule): the number of parametric layers (convolutions and linear layers)
//!   on the deepest live input→output path;
//! - `parity` (splitter): splits any space in two by the parity of the number of slots whose
//!   chosen option name contains a pattern (`conv` by default);
//! - `round-robin` (sampler): trains one subspace per step, in turn, and keeps its position in
//!   the checkpoint.
//!
//! Build it with `cargo build --release` and load it with
//! `fewshot --plugin target/release/libfewshot_example_activation_space.so plugins list`.

use fewshot_sdk::{
    graph::NodeId, Activation, Arch, ArchDraw, ArchMetrics, CountingRule, Graph, GraphBuilder,
    Op, Params, Pick, PlanContext, PluginEntry, Sampler, SearchSpace, SplitKey, Splitter, Subnet,
    SubspaceLabel, Slot, Width,
};

/// Options of every layer of `act-chain`, in option-index order.
const LAYER_OPS: [&str; 4] = ["conv3x3", "conv1x1", "avgpool3x3", "skip"];
/// With `separable=true`, a fifth option: a depthwise-separable 3×3 block.
const SEPARABLE_OPS: [&str; 5] = ["conv3x3", "conv1x1", "avgpool3x3", "skip", "sep3x3"];

/// A chain of `layers` searchable layers between a fixed stem and a fixed classifier head.
///
/// Every layer picks one of [`LAYER_OPS`]; the convolutions are pre-activation
/// (activation → conv → batch norm, as in NAS-Bench-201), so the chosen activation appears once
/// per convolution layer, plus once in the head.
struct ActChain {
    activation: Activation,
    separable: bool,
    channels: u32,
    layers: u32,
    classes: u32,
}

impl ActChain {
    fn from_params(p: &Params) -> Result<Self, String> {
        let space = ActChain {
            activation: Activation::parse(p.get_str("activation").unwrap_or("gelu"))?,
            separable: p.get("separable", false)?,
            channels: p.get("C", 16)?,
            layers: p.get("layers", 4)?,
            classes: p.get("classes", 10)?,
        };
        if space.channels == 0 || space.classes == 0 {
            return Err("C and classes must be positive".into());
        }
        if !(1..=12).contains(&space.layers) {
            return Err(format!("layers must be between 1 and 12, got {}", space.layers));
        }
        Ok(space)
    }

    /// The options of every layer.
    fn ops(&self) -> &'static [&'static str] {
        if self.separable {
            &SEPARABLE_OPS
        } else {
            &LAYER_OPS
        }
    }

    /// Adds every candidate of layer `slot` on input `x`, each under its guard, and returns the
    /// node that sums them (exactly one candidate is active in any subnet).
    fn layer(&self, g: &mut GraphBuilder, slot: u32, x: NodeId) -> NodeId {
        let width = Width::scaled(self.channels);
        let mut candidates = Vec::new();
        for (option, name) in self.ops().iter().enumerate() {
            let out = g.when(slot, option as u32, |g| {
                g.scope(name, |g| match *name {
                    "conv3x3" | "conv1x1" => {
                        let kernel = if *name == "conv3x3" { 3 } else { 1 };
                        let a = g.activation(x, self.activation);
                        let c = g.conv(a, width, kernel, 1);
                        g.batch_norm(c)
                    }
                    "sep3x3" => {
                        // activation → depthwise 3×3 → BN → pointwise 1×1 → BN (MobileNet's block)
                        let a = g.activation(x, self.activation);
                        let d = g.depthwise_conv(a, width, 3, 1);
                        let b = g.batch_norm(d);
                        let c = g.conv(b, width, 1, 1);
                        g.batch_norm(c)
                    }
                    "avgpool3x3" => g.avg_pool(x, 3, 1, 1, false),
                    _ => g.identity(x),
                })
            });
            candidates.push(out);
        }
        g.add(&candidates)
    }
}

impl SearchSpace for ActChain {
    fn slots(&self) -> Vec<Slot> {
        (0..self.layers).map(|i| Slot::new(&format!("layer{i}"), self.ops())).collect()
    }

    /// Architectures are written as their option names joined by `-`, e.g.
    /// `conv3x3-skip-conv1x1-avgpool3x3`.
    fn parse(&self, text: &str) -> Result<Arch, String> {
        let names: Vec<&str> = text.trim().split('-').collect();
        if names.len() != self.layers as usize {
            return Err(format!(
                "`{text}` names {} layers, the space has {} (e.g. `{}`)",
                names.len(),
                self.layers,
                vec![self.ops()[0]; self.layers as usize].join("-")
            ));
        }
        names
            .iter()
            .map(|name| {
                self.ops().iter().position(|op| op == name).map(|i| i as u32).ok_or_else(|| {
                    format!("unknown layer op `{name}` (ops: {})", self.ops().join(", "))
                })
            })
            .collect::<Result<Vec<u32>, String>>()
            .map(Arch::new)
    }

    fn format(&self, arch: &Arch) -> String {
        let names: Vec<&str> = arch.as_slice().iter().map(|&i| self.ops()[i as usize]).collect();
        names.join("-")
    }

    /// A network without any convolution learns nothing but its classifier: not part of the space.
    fn validate(&self, arch: &Arch) -> Result<(), String> {
        if arch.as_slice().iter().any(|&i| matches!(self.ops()[i as usize], "conv3x3" | "conv1x1" | "sep3x3")) {
            Ok(())
        } else {
            Err(format!("`{}` has no convolution", self.format(arch)))
        }
    }

    fn supernet_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let input = g.input(Width::fixed(3), 32, 32);
        let mut x = g.scope("stem", |g| {
            let c = g.conv(input, Width::scaled(self.channels), 3, 1);
            g.batch_norm(c)
        });
        for slot in 0..self.layers {
            x = g.scope(&format!("layer{slot}"), |g| self.layer(g, slot, x));
        }
        let out = g.scope("head", |g| {
            let b = g.batch_norm(x);
            let a = g.activation(b, self.activation);
            let p = g.global_avg_pool(a);
            g.linear(p, Width::fixed(self.classes), true)
        });
        g.finish(out)
    }

    /// The searchable layers alone: the stem and head add the same count to every subnet.
    fn counting_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let mut x = g.input(Width::scaled(self.channels), 32, 32);
        for slot in 0..self.layers {
            x = g.scope(&format!("layer{slot}"), |g| self.layer(g, slot, x));
        }
        g.finish(x)
    }

    /// Counts of nonlinear functions range over 0..=layers; by default split them in two halves.
    fn default_groups(&self) -> String {
        format!("0-{},rest", self.layers / 2)
    }

    /// Every input→output path crosses every layer.
    fn slots_in_series(&self) -> bool {
        true
    }
}

/// Counts the parametric layers (convolutions, linear layers) on the deepest live path.
struct Depth;

impl CountingRule for Depth {
    fn count(&self, subnet: Subnet<'_>) -> Result<u32, String> {
        let live = subnet.live_nodes();
        let nodes = &subnet.graph.nodes;
        let mut depth = vec![0u32; nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let op = fewshot_sdk::graph::known_op(&node.op)?;
            let own = u32::from(matches!(op, Op::Conv { .. } | Op::Linear { .. }));
            let deepest_input = node
                .inputs
                .iter()
                .filter(|&&j| live[j as usize])
                .map(|&j| depth[j as usize])
                .max()
                .unwrap_or(0);
            depth[i] = deepest_input + own;
        }
        Ok(depth[subnet.graph.output as usize])
    }
}

/// Splits a space in two by the parity of the number of slots whose chosen option name
/// contains `pattern`.
struct Parity {
    pattern: String,
    /// For each slot, which options match (filled by `prepare`).
    matches: Vec<Vec<bool>>,
}

impl Parity {
    fn from_params(p: &Params) -> Result<Self, String> {
        let pattern = p.get_str("match").unwrap_or("conv").to_string();
        if pattern.is_empty() {
            return Err("match must not be empty".into());
        }
        Ok(Parity { pattern, matches: Vec::new() })
    }
}

impl Splitter for Parity {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        self.matches = ctx
            .slots
            .iter()
            .map(|slot| slot.options.iter().map(|o| o.contains(self.pattern.as_str())).collect())
            .collect();
        if !self.matches.iter().flatten().any(|&m| m) {
            return Err(format!("no option of this space contains `{}`", self.pattern));
        }
        Ok(["even", "odd"]
            .iter()
            .map(|parity| SubspaceLabel { label: format!("{parity} #{}", self.pattern).into() })
            .collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        if self.matches.is_empty() {
            return Err("parity: assign called before prepare".into());
        }
        let hits = arch
            .as_slice()
            .iter()
            .zip(&self.matches)
            .filter(|&(&option, slot)| slot.get(option as usize).copied().unwrap_or(false))
            .count();
        Ok((hits % 2) as u32)
    }
}

/// Trains one subspace per step, in turn; the next subspace is checkpointed.
struct RoundRobin {
    next: u32,
}

impl Sampler for RoundRobin {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        let subspaces = draw.subspaces();
        if subspaces == 0 {
            return Err("round-robin: the plan has no subspaces".into());
        }
        let subspace = self.next % subspaces;
        self.next = (subspace + 1) % subspaces;
        Ok(vec![Pick { subspace, arch: draw.draw(subspace)? }])
    }

    fn save_state(&self) -> String {
        self.next.to_string()
    }

    fn load_state(&mut self, state: &str) -> Result<(), String> {
        self.next = state
            .parse()
            .map_err(|e| format!("round-robin: bad checkpoint state `{state}`: {e}"))?;
        Ok(())
    }
}

fn entries() -> Vec<PluginEntry> {
    vec![
        PluginEntry::space(
            "act-chain",
            "Example: a chain of searchable layers (conv3x3, conv1x1, avgpool3x3, skip, and with separable=true a depthwise-separable sep3x3) with a chosen activation",
            "activation=gelu|tanh|relu|relu6|sigmoid|silu, separable=false, C=16, layers=4, classes=10",
            ActChain::from_params,
        ),
        PluginEntry::rule(
            "depth",
            "Example: convolutions and linear layers on the deepest live path",
            "",
            |_: &Params| Ok(Depth),
        ),
        PluginEntry::splitter(
            "parity",
            "Example: two subspaces by the parity of the number of chosen options matching a pattern",
            "match=conv",
            Parity::from_params,
        ),
        PluginEntry::sampler(
            "round-robin",
            "Example: one subspace per step, in turn",
            "",
            |_: &Params| Ok(RoundRobin { next: 0 }),
        ),
    ]
}

fewshot_sdk::export_plugins!(entries);

#[cfg(test)]
mod tests {
    use super::*;

    fn space(params: &str) -> ActChain {
        ActChain::from_params(&Params::parse(params).unwrap()).unwrap()
    }

    #[test]
    fn architectures_round_trip_and_validate() {
        let s = space("");
        let a = s.parse("conv3x3-skip-conv1x1-avgpool3x3").unwrap();
        assert_eq!(a.as_slice(), &[0, 3, 1, 2]);
        assert_eq!(s.format(&a), "conv3x3-skip-conv1x1-avgpool3x3");
        assert!(s.validate(&a).is_ok());
        assert!(s.validate(&s.parse("skip-skip-avgpool3x3-skip").unwrap()).is_err());
        assert!(s.parse("conv3x3-skip").is_err());
        assert!(s.parse("conv3x3-skip-conv7x7-skip").is_err());
    }

    #[test]
    fn graphs_are_well_formed_and_use_the_activation() {
        let s = space("activation=tanh,layers=3");
        let g = s.supernet_graph();
        g.validate(&s.slots()).unwrap();
        let shapes = g.shapes(2.0).unwrap();
        assert_eq!(shapes[g.output as usize].channels(), 10);
        let tanh = g
            .nodes
            .iter()
            .filter(|n| n.op.as_enum().ok() == Some(&Op::Activation(Activation::Tanh.ne())))
            .count();
        assert_eq!(tanh, 2 * 3 + 1);
    }

    #[test]
    fn depth_counts_parametric_layers_on_the_deepest_path() {
        let s = space("");
        let counting = s.counting_graph();
        let arch = s.parse("conv3x3-skip-conv1x1-avgpool3x3").unwrap();
        assert_eq!(Depth.count(counting.view(arch.as_slice())).unwrap(), 2);
        let full = s.supernet_graph();
        assert_eq!(Depth.count(full.view(arch.as_slice())).unwrap(), 2 + 2);
    }

    #[test]
    fn parity_splits_by_the_number_of_convolutions() {
        let s = space("");
        let mut parity = Parity::from_params(&Params::parse("").unwrap()).unwrap();
        let ctx = PlanContext {
            slots: s.slots().into(),
            default_groups: s.default_groups().into(),
            distribution: Default::default(),
            exact: true,
            seed: 0,
        };
        assert_eq!(parity.prepare(&ctx).unwrap().len(), 2);
        let metrics = ArchMetrics { count: 0, flops_m: 0.0, params_m: 0.0 };
        let two = s.parse("conv3x3-skip-conv1x1-avgpool3x3").unwrap();
        let three = s.parse("conv3x3-conv3x3-conv1x1-avgpool3x3").unwrap();
        assert_eq!(parity.assign(&two, &metrics).unwrap(), 0);
        assert_eq!(parity.assign(&three, &metrics).unwrap(), 1);
    }
}
