//! Counting rules: how many nonlinear functions a subnet has.
//!
//! All three rules read the space's counting graph through an architecture and count activation
//! nodes of the kinds given by `kinds=` (default: every nonlinear activation), so ReLU, tanh and
//! GELU spaces are counted alike.
//! - `enn` (EFS-NAS): the maximum, over live input→output paths, of the counted activations on
//!   the path (the nonlinear depth of the subnet); 0 when no path is live.
//! - `total`: every counted activation of the active nodes.
//! - `live`: the counted activations that lie on some live input→output path.

use fewshot_sdk::graph::{known_activation, known_op, Op};
use fewshot_sdk::{register_builtin, Activation, CountingRule, Params, PluginEntry, Subnet};

/// Which nodes a rule counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// Maximum over live paths of the counted activations on the path.
    Enn,
    /// All counted activations of active nodes.
    Total,
    /// Counted activations on live paths.
    Live,
}

/// A counting rule over a set of activation kinds.
#[derive(Clone, Debug)]
pub struct NonlinearityRule {
    kind: RuleKind,
    kinds: Vec<Activation>,
}

impl NonlinearityRule {
    /// A rule counting the given activation kinds.
    pub fn new(kind: RuleKind, kinds: Vec<Activation>) -> Self {
        NonlinearityRule { kind, kinds }
    }

    /// Builds a rule from `kinds=relu,relu6,...` (default: all nonlinear activations).
    pub fn from_params(kind: RuleKind, p: &Params) -> Result<Self, String> {
        let kinds = match p.get_str("kinds") {
            None => Activation::ALL.to_vec(),
            Some(list) => {
                let mut kinds = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let act = Activation::parse(name)?;
                    if !kinds.contains(&act) {
                        kinds.push(act);
                    }
                }
                if kinds.is_empty() {
                    return Err("parameter `kinds` names no activation".into());
                }
                kinds
            }
        };
        Ok(NonlinearityRule::new(kind, kinds))
    }

    /// Whether node `i` is an activation this rule counts.
    fn counted(&self, subnet: &Subnet<'_>, i: usize) -> Result<bool, String> {
        let node = &subnet.graph.nodes[i];
        match known_op(&node.op)? {
            Op::Activation(a) => Ok(self.kinds.contains(&known_activation(a)?)),
            _ => Ok(false),
        }
    }
}

thread_local! {
    /// Per-node scratch of the `enn` pass, reused across calls (counting runs once per
    /// architecture when a space is enumerated).
    static DEPTH: std::cell::RefCell<Vec<Option<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl CountingRule for NonlinearityRule {
    fn count(&self, subnet: Subnet<'_>) -> Result<u32, String> {
        let nodes = &subnet.graph.nodes;
        match self.kind {
            RuleKind::Enn => DEPTH.with(|cell| {
                // One pass in topological order: the deepest chain of counted activations from
                // the input to each node, `None` where no signal arrives (the nodes
                // `Subnet::reached_from_input` leaves out).
                let mut depth = cell.borrow_mut();
                depth.clear();
                depth.resize(nodes.len(), None);
                let arch = subnet.arch;
                for (i, node) in nodes.iter().enumerate() {
                    // Inline form of `Node::is_active` (this loop runs per node per architecture).
                    if !node.guard.iter().all(|g| arch.get(g.slot as usize) == Some(&g.option)) {
                        continue;
                    }
                    // `as_enum` inlines where `known_op` would be a call; it is only the
                    // error path here.
                    let Ok(op) = node.op.as_enum() else {
                        return Err(known_op(&node.op).err().unwrap_or_default());
                    };
                    depth[i] = match op {
                        Op::Input { .. } => Some(0),
                        Op::Zero => None,
                        op => {
                            let deepest = node.inputs.iter().filter_map(|&j| depth[j as usize]).max();
                            let counted = match op {
                                Op::Activation(a) => self.kinds.contains(&known_activation(a)?),
                                _ => false,
                            };
                            deepest.map(|d| d + u32::from(counted))
                        }
                    };
                }
                Ok(depth[subnet.graph.output as usize].unwrap_or(0))
            }),
            RuleKind::Total => {
                let mut n = 0;
                for i in 0..nodes.len() {
                    if subnet.is_active(i) && self.counted(&subnet, i)? {
                        n += 1;
                    }
                }
                Ok(n)
            }
            RuleKind::Live => {
                let live = subnet.live_nodes();
                let mut n = 0;
                for (i, &on_path) in live.iter().enumerate() {
                    if on_path && self.counted(&subnet, i)? {
                        n += 1;
                    }
                }
                Ok(n)
            }
        }
    }

    /// On a chain of slots every count is a constant plus one term per slot, as long as no
    /// option cuts the chain (the host verifies this before relying on it).
    fn additive_in_series(&self) -> bool {
        true
    }
}

const KINDS_PARAM: &str = "kinds=relu,relu6,tanh,gelu,sigmoid,silu (default: all)";

fn enn_entry() -> PluginEntry {
    PluginEntry::rule(
        "enn",
        "EFS-NAS: max over live input->output paths of the nonlinear functions on the path",
        KINDS_PARAM,
        |p| NonlinearityRule::from_params(RuleKind::Enn, p),
    )
}
register_builtin!(enn_entry);

fn total_entry() -> PluginEntry {
    PluginEntry::rule(
        "total",
        "every nonlinear function of the subnet",
        KINDS_PARAM,
        |p| NonlinearityRule::from_params(RuleKind::Total, p),
    )
}
register_builtin!(total_entry);

fn live_entry() -> PluginEntry {
    PluginEntry::rule(
        "live",
        "the nonlinear functions that lie on a live input->output path",
        KINDS_PARAM,
        |p| NonlinearityRule::from_params(RuleKind::Live, p),
    )
}
register_builtin!(live_entry);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::mobilenet::{parse_mobilenet, MobileNetSpace};
    use crate::nb201::Nb201Space;
    use fewshot_sdk::SearchSpace;

    fn all_nb201() -> impl Iterator<Item = [u32; 6]> {
        (0..15_625u32).map(|mut i| {
            let mut a = [0u32; 6];
            for slot in (0..6).rev() {
                a[slot] = i % 5;
                i /= 5;
            }
            a
        })
    }

    fn histogram(rule: &NonlinearityRule, space: &Nb201Space) -> BTreeMap<u32, u32> {
        let graph = space.counting_graph();
        let mut h = BTreeMap::new();
        for a in all_nb201() {
            *h.entry(rule.count(graph.view(&a)).unwrap()).or_insert(0) += 1;
        }
        h
    }

    fn rule(kind: RuleKind, params: &str) -> NonlinearityRule {
        NonlinearityRule::from_params(kind, &Params::parse(params).unwrap()).unwrap()
    }

    #[test]
    fn nb201_distributions_match_the_reference() {
        let space = Nb201Space::default();
        let enn = histogram(&rule(RuleKind::Enn, ""), &space);
        assert_eq!(enn, BTreeMap::from([(0, 1983), (1, 7122), (2, 5520), (3, 1000)]));
        let total = histogram(&rule(RuleKind::Total, ""), &space);
        assert_eq!(
            total,
            BTreeMap::from([(0, 729), (1, 2916), (2, 4860), (3, 4320), (4, 2160), (5, 576), (6, 64)])
        );
        let live = histogram(&rule(RuleKind::Live, ""), &space);
        assert_eq!(
            live,
            BTreeMap::from([(0, 1983), (1, 3842), (2, 4272), (3, 3288), (4, 1664), (5, 512), (6, 64)])
        );
    }

    #[test]
    fn enn_follows_the_reference_path_rule() {
        // ENN = max over the 4 cell paths of the conv edges on the path, 0 if a path has `none`.
        let graph = Nb201Space::default().counting_graph();
        let enn = rule(RuleKind::Enn, "");
        let paths: [&[usize]; 4] = [&[3], &[0, 4], &[1, 5], &[0, 2, 5]];
        for a in all_nb201() {
            let expected = paths
                .iter()
                .map(|p| {
                    if p.iter().any(|&e| a[e] == 0) {
                        0
                    } else {
                        p.iter().filter(|&&e| a[e] == 2 || a[e] == 3).count() as u32
                    }
                })
                .max()
                .unwrap();
            assert_eq!(enn.count(graph.view(&a)).unwrap(), expected, "{a:?}");
        }
    }

    #[test]
    fn counts_do_not_depend_on_the_activation_but_kinds_restrict_them() {
        let relu = Nb201Space::default();
        let tanh = Nb201Space { activation: Activation::Tanh, ..Nb201Space::default() };
        let (gr, gt) = (relu.counting_graph(), tanh.counting_graph());
        let enn = rule(RuleKind::Enn, "");
        let relu_family = rule(RuleKind::Enn, "kinds=relu,relu6");
        let relu_total = rule(RuleKind::Total, "kinds=relu,relu6");
        for a in all_nb201() {
            assert_eq!(enn.count(gr.view(&a)).unwrap(), enn.count(gt.view(&a)).unwrap());
            assert_eq!(relu_family.count(gt.view(&a)).unwrap(), 0);
            assert_eq!(relu_total.count(gt.view(&a)).unwrap(), 0);
        }
        assert_eq!(histogram(&rule(RuleKind::Enn, "kinds=tanh"), &tanh), histogram(&enn, &relu));
    }

    #[test]
    fn mobilenet_counts_two_per_mbconv() {
        let graph = MobileNetSpace::default().counting_graph();
        let text = "3x3e3-identity-identity-7x7e6-5x5e3-identity-3x3e6-3x3e6-7x7e3-identity-identity-\
                    identity-5x5e6-5x5e6-5x5e6-5x5e6-3x3e3-identity-7x7e6-identity-7x7e3";
        let arch = parse_mobilenet(text).unwrap();
        let identities = arch.as_slice().iter().filter(|&&c| c == 6).count() as u32;
        for kind in [RuleKind::Enn, RuleKind::Total, RuleKind::Live] {
            assert_eq!(rule(kind, "").count(graph.view(arch.as_slice())).unwrap(), 2 * (21 - identities));
        }
        assert_eq!(rule(RuleKind::Enn, "kinds=relu").count(graph.view(arch.as_slice())).unwrap(), 0);
    }

    #[test]
    fn bad_kinds_are_rejected() {
        let e = NonlinearityRule::from_params(RuleKind::Enn, &Params::parse("kinds=relu,swish").unwrap()).unwrap_err();
        assert!(e.contains("swish"), "{e}");
    }
}
