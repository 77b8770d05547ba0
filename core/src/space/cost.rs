//! Exact FLOPs and parameter counts of any subnet, in closed form from the graph IR.
//!
//! Conventions (those of NAS-Bench-201's `get_model_infos`):
//! - FLOPs are multiply-adds of convolutions (`C_in/groups · C_out · k² · H_out · W_out`, plus
//!   `C_out · H_out · W_out` for a bias) and linear layers (`in · out`, plus `out` for a bias);
//!   pooling, batch norm, activations and additions cost nothing.
//! - Parameters are convolution weights (and biases), two affine parameters per batch-norm
//!   channel, and linear weights and biases.
//!
//! Every node of a supernet graph exists in a subnet exactly when its guards hold, and shapes do
//! not depend on the architecture, so the cost of a subnet is the sum of per-guard-set costs.
//! [`CostModel`] precomputes those sums once; a subnet's cost is then one table lookup per slot.

use std::collections::BTreeMap;

use fewshot_sdk::graph::{known_op, Guard, Op, Shape};
use fewshot_sdk::Graph;

use super::{check_divisor, SpaceError};

/// FLOPs (multiply-adds) and parameters of a network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cost {
    /// Multiply-adds of convolutions and linear layers.
    pub flops: u64,
    /// Learnable parameters.
    pub params: u64,
}

impl Cost {
    /// FLOPs in millions.
    pub fn flops_m(&self) -> f64 {
        self.flops as f64 / 1e6
    }

    /// Parameters in millions (NB201's "params (MB)").
    pub fn params_m(&self) -> f64 {
        self.params as f64 / 1e6
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, other: Cost) -> Cost {
        Cost { flops: self.flops + other.flops, params: self.params + other.params }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        *self = *self + other;
    }
}

/// The cost of every subnet of one graph at one channel divisor.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// Nodes without guards.
    fixed: Cost,
    /// `per_option[slot][option]`: nodes guarded by exactly that one (slot, option).
    per_option: Vec<Vec<Cost>>,
    /// Nodes guarded by several slots, summed per guard set.
    joint: Vec<(Vec<Guard>, Cost)>,
}

/// The cost of one node given the static shapes.
fn node_cost(graph: &Graph, shapes: &[Shape], i: usize) -> Result<Cost, SpaceError> {
    let node = &graph.nodes[i];
    let unusable = |reason: String| SpaceError::Node { index: i, name: node.name.to_string(), reason };
    let op = known_op(&node.op).map_err(unusable)?;
    let input = || node.inputs.first().map(|&j| shapes[j as usize]);
    let cost = match *op {
        Op::Conv { kernel, groups, bias, .. } => {
            let (Some(Shape::Map { channels: c_in, .. }), Shape::Map { channels: c_out, height, width }) =
                (input(), shapes[i])
            else {
                return Err(unusable("a convolution needs feature maps".into()));
            };
            let groups = if groups == 0 { c_in } else { groups };
            let (c_in, c_out, k, area) = (c_in as u64, c_out as u64, kernel as u64, height as u64 * width as u64);
            let weights = c_in / groups as u64 * c_out * k * k;
            let bias = if bias { c_out } else { 0 };
            Cost { flops: (weights + bias) * area, params: weights + bias }
        }
        Op::BatchNorm => Cost { flops: 0, params: 2 * shapes[i].channels() as u64 },
        Op::Linear { bias, .. } => {
            let inputs = input().map(|s| s.channels()).unwrap_or(0) as u64;
            let outputs = shapes[i].channels() as u64;
            let total = inputs * outputs + if bias { outputs } else { 0 };
            Cost { flops: total, params: total }
        }
        _ => Cost::default(),
    };
    Ok(cost)
}

impl CostModel {
    /// Precomputes the cost tables of `graph` at channel divisor `divisor` (1.0 = full width).
    pub fn new(graph: &Graph, divisor: f64) -> Result<CostModel, SpaceError> {
        check_divisor(divisor)?;
        let shapes = graph.shapes(divisor).map_err(SpaceError::Graph)?;
        let mut fixed = Cost::default();
        let mut per_option: Vec<Vec<Cost>> = Vec::new();
        let mut joint: BTreeMap<Vec<(u32, u32)>, Cost> = BTreeMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let cost = node_cost(graph, &shapes, i)?;
            if cost == Cost::default() {
                continue;
            }
            let mut guards: Vec<(u32, u32)> = node.guard.iter().map(|g| (g.slot, g.option)).collect();
            guards.sort_unstable();
            guards.dedup();
            if guards.windows(2).any(|w| w[0].0 == w[1].0) {
                continue; // Two options of one slot: the node never exists.
            }
            match guards.as_slice() {
                [] => fixed += cost,
                &[(slot, option)] => {
                    let (slot, option) = (slot as usize, option as usize);
                    if per_option.len() <= slot {
                        per_option.resize(slot + 1, Vec::new());
                    }
                    if per_option[slot].len() <= option {
                        per_option[slot].resize(option + 1, Cost::default());
                    }
                    per_option[slot][option] += cost;
                }
                _ => *joint.entry(guards).or_default() += cost,
            }
        }
        let joint = joint
            .into_iter()
            .map(|(gs, c)| (gs.into_iter().map(|(slot, option)| Guard { slot, option }).collect(), c))
            .collect();
        Ok(CostModel { fixed, per_option, joint })
    }

    /// The cost of the subnet `arch`.
    pub fn cost(&self, arch: &[u32]) -> Cost {
        let mut total = self.fixed;
        for (table, &option) in self.per_option.iter().zip(arch) {
            if let Some(&c) = table.get(option as usize) {
                total += c;
            }
        }
        for (guards, c) in &self.joint {
            if guards.iter().all(|g| arch.get(g.slot as usize) == Some(&g.option)) {
                total += *c;
            }
        }
        total
    }

    /// When every guarded node depends on one slot only: the fixed cost and the cost of each
    /// option of each slot (missing entries cost nothing), so a subnet's cost is their sum.
    pub fn per_slot(&self) -> Option<(Cost, &[Vec<Cost>])> {
        self.joint.is_empty().then_some((self.fixed, self.per_option.as_slice()))
    }

    /// The cost of option `option` of `slot` in a per-slot model (0 where nothing is guarded).
    pub fn option_cost(&self, slot: usize, option: u32) -> Cost {
        self.per_option
            .get(slot)
            .and_then(|t| t.get(option as usize))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fewshot_plugins::mobilenet::{parse_mobilenet, MobileNetSpace};
    use fewshot_plugins::nb201::{parse_nb201, Nb201Space};
    use fewshot_sdk::{GraphBuilder, SearchSpace, Width};

    fn shared(path: &str) -> std::path::PathBuf {
        match std::env::var_os("FEWSHOT_SHARED") {
            Some(dir) => std::path::PathBuf::from(dir).join(path),
            None => std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")).join(path),
        }
    }

    /// `text` (a decimal with at most 6 decimals) times 10^6, exactly.
    fn micro(text: &str) -> u64 {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        assert!(frac.len() <= 6, "{text}");
        let frac = format!("{frac:0<6}");
        int.parse::<u64>().unwrap() * 1_000_000 + frac.parse::<u64>().unwrap()
    }

    #[test]
    fn nb201_costs_equal_the_benchmark_for_all_archs() {
        let csv = std::fs::read_to_string(shared("data/nb201/nb201.csv")).expect("nb201.csv in ../shared");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (arch_col, flops_col, params_col) = (col("arch"), col("c10_flops_m"), col("c10_params_mb"));
        let model = CostModel::new(&Nb201Space::default().supernet_graph(), 1.0).unwrap();
        let mut rows = 0;
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let arch = parse_nb201(cells[arch_col]).unwrap();
            let cost = model.cost(arch.as_slice());
            assert_eq!(cost.flops, micro(cells[flops_col]), "FLOPs of {}", cells[arch_col]);
            assert_eq!(cost.params, micro(cells[params_col]), "params of {}", cells[arch_col]);
            rows += 1;
        }
        assert_eq!(rows, 15_625);
    }

    #[test]
    fn the_divisor_scales_widths() {
        // C=16 at channel divisor 2 is the C=8 network.
        let full = CostModel::new(&Nb201Space { channels: 8, ..Nb201Space::default() }.supernet_graph(), 1.0).unwrap();
        let half = CostModel::new(&Nb201Space::default().supernet_graph(), 2.0).unwrap();
        let arch = [3, 3, 3, 3, 3, 3];
        assert_eq!(full.cost(&arch), half.cost(&arch));
    }

    #[test]
    fn mobilenet_costs_match_the_reference_formula() {
        let space = MobileNetSpace::default();
        let model = CostModel::new(&space.supernet_graph(), 1.0).unwrap();
        let (fixed, table) = model.per_slot().expect("MobileNet costs are per slot");
        let slots = space.slots();
        let extreme = |pick: fn(u64, u64) -> bool| {
            let mut total = fixed;
            for (s, slot) in slots.iter().enumerate() {
                let mut best = table[s][0];
                for o in 1..slot.options.len() {
                    let c = table[s].get(o).copied().unwrap_or_default();
                    if pick(c.flops, best.flops) {
                        best = c;
                    }
                }
                total += best;
            }
            total
        };
        // Reference §6.5: FLOPs range 109M to 693M (its formula leaves out the classifier bias,
        // 1000 multiply-adds, which the NB201 convention counts).
        let (min, max) = (extreme(|a, b| a < b), extreme(|a, b| a > b));
        assert_eq!(min.flops_m().round(), 109.0, "{min:?}");
        assert_eq!(max.flops_m().round(), 693.0, "{max:?}");

        // Hand count of the stem: conv 3->32 at 112x112 plus BN.
        let stem_flops = 3 * 32 * 9 * 112 * 112;
        let all_3x3e3 = parse_mobilenet(&["3x3e3"; 21].join("-")).unwrap();
        assert!(model.cost(all_3x3e3.as_slice()).flops > stem_flops);
    }

    #[test]
    fn conv_linear_and_norm_costs_by_hand() {
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), 8, 8);
        let c = g.when(0, 1, |g| g.conv(x, Width::scaled(4), 3, 2));
        let b = g.when(0, 1, |g| g.batch_norm(c));
        let d = g.when(1, 0, |g| g.when(0, 1, |g| g.depthwise_conv(b, Width::scaled(4), 3, 1)));
        let p = g.global_avg_pool(d);
        let l = g.linear(p, Width::fixed(10), true);
        let graph = g.finish(l);
        let model = CostModel::new(&graph, 1.0).unwrap();
        let linear = Cost { flops: 4 * 10 + 10, params: 4 * 10 + 10 };
        let conv = Cost { flops: 3 * 4 * 9 * 16, params: 3 * 4 * 9 };
        let bn = Cost { flops: 0, params: 8 };
        let dw = Cost { flops: 4 * 9 * 16, params: 4 * 9 };
        assert_eq!(model.cost(&[0, 0]), linear);
        assert_eq!(model.cost(&[1, 1]), linear + conv + bn);
        assert_eq!(model.cost(&[1, 0]), linear + conv + bn + dw);
        assert!(model.per_slot().is_none());
        let half = CostModel::new(&graph, 2.0).unwrap();
        assert_eq!(half.cost(&[1, 1]).params, linear.params - 20 + conv.params / 2 + bn.params / 2);
        assert!(CostModel::new(&graph, 0.0).is_err());
    }
}
