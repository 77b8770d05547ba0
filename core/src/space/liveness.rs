//! Liveness of architectures: whether signal from the input reaches the output of a space's
//! counting graph ("trash" architectures have no live path), for one architecture after another.

use fewshot_sdk::Graph;

use super::SpaceError;
use crate::space::odometer::Odometer;

/// One node of a [`Liveness`] graph.
#[derive(Clone, Copy, Debug)]
struct LiveNode {
    /// Range of the guards beyond the first in [`Liveness::guards`] (nodes with several guards).
    more_guards: (u32, u32),
    /// The input node: signal starts here.
    source: bool,
    /// A zero op: signal stops here.
    sink: bool,
    /// Range of the node's inputs in [`Liveness::inputs`].
    inputs: (u32, u32),
}

/// A graph compiled for the liveness test of one architecture after another: the same answer
/// as [`fewshot_sdk::Subnet::has_live_path`].
///
/// Nodes are bits of a bitset: the active set is the union of the unguarded nodes and of the
/// nodes whose first guard is each slot's chosen option; set bits are visited in topological
/// (index) order. When every guarded node depends on one slot, options are grouped by how they
/// connect the rest of the graph (NB201: `none` versus the four ops that pass signal), and
/// liveness becomes a lookup in a table over these classes.
#[derive(Clone, Debug)]
pub(crate) struct Liveness {
    nodes: Vec<LiveNode>,
    /// Guards beyond each node's first one.
    guards: Vec<(usize, u32)>,
    inputs: Vec<usize>,
    output: usize,
    /// Bitset of the unguarded nodes.
    fixed: Vec<u64>,
    /// `by_option[slot][option]`: bitset of the nodes whose first guard is (slot, option).
    by_option: Vec<Vec<Vec<u64>>>,
    /// Liveness per combination of option classes, when small enough.
    table: Option<ClassTable>,
}

/// Liveness of every combination of per-slot option classes.
#[derive(Clone, Debug)]
struct ClassTable {
    /// `class[slot][option]`.
    class: Vec<Vec<usize>>,
    /// Mixed-radix stride of each slot's class.
    stride: Vec<usize>,
    live: Vec<bool>,
}

/// Class tables are built only up to this many combinations.
const CLASS_TABLE_LIMIT: usize = 1 << 16;

thread_local! {
    /// Scratch bitsets of [`Liveness::has_live_path`]: active nodes, reached nodes.
    static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

fn bit(set: &[u64], i: usize) -> bool {
    set[i / 64] >> (i % 64) & 1 == 1
}

impl Liveness {
    /// Compiles a counting graph for a space with these option counts.
    pub(crate) fn new(graph: &Graph, radices: &[u32]) -> Result<Liveness, SpaceError> {
        let mut live = Liveness::compile(graph)?;
        live.table = live.class_table(graph, radices);
        Ok(live)
    }

    fn compile(graph: &Graph) -> Result<Liveness, SpaceError> {
        let words = graph.nodes.len().div_ceil(64);
        let mut out = Liveness {
            nodes: Vec::new(),
            guards: Vec::new(),
            inputs: Vec::new(),
            output: graph.output as usize,
            fixed: vec![0; words],
            by_option: Vec::new(),
            table: None,
        };
        for (i, node) in graph.nodes.iter().enumerate() {
            let op = fewshot_sdk::graph::known_op(&node.op).map_err(SpaceError::Graph)?;
            let mut guards = node.guard.iter().map(|g| (g.slot as usize, g.option));
            let set = match guards.next() {
                None => &mut out.fixed,
                Some((slot, option)) => {
                    if out.by_option.len() <= slot {
                        out.by_option.resize(slot + 1, Vec::new());
                    }
                    let options = &mut out.by_option[slot];
                    if options.len() <= option as usize {
                        options.resize(option as usize + 1, vec![0; words]);
                    }
                    &mut options[option as usize]
                }
            };
            set[i / 64] |= 1 << (i % 64);
            let g0 = out.guards.len() as u32;
            out.guards.extend(guards);
            let i0 = out.inputs.len() as u32;
            out.inputs.extend(node.inputs.iter().map(|&j| j as usize));
            out.nodes.push(LiveNode {
                more_guards: (g0, out.guards.len() as u32),
                source: matches!(op, fewshot_sdk::graph::Op::Input { .. }),
                sink: matches!(op, fewshot_sdk::graph::Op::Zero),
                inputs: (i0, out.inputs.len() as u32),
            });
        }
        Ok(out)
    }

    /// How option (slot, option) connects the rest of the graph: the pairs (outside node whose
    /// signal enters the option's nodes, outside node that receives it), with `usize::MAX` for
    /// the graph output. `None` when a node of the option is the input.
    fn connections(&self, graph: &Graph, slot: usize, option: u32) -> Option<Vec<(usize, usize)>> {
        let members: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| graph.nodes[i].guard.iter().next().is_some_and(|g| g.slot as usize == slot && g.option == option))
            .collect();
        let inside = |i: usize| members.binary_search(&i).is_ok();
        // Outside nodes whose signal reaches each member through members.
        let mut sources: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
        for (m, &i) in members.iter().enumerate() {
            let n = &self.nodes[i];
            if n.source {
                return None;
            }
            if n.sink {
                continue;
            }
            let mut from = Vec::new();
            for &j in &self.inputs[n.inputs.0 as usize..n.inputs.1 as usize] {
                match members.binary_search(&j) {
                    Ok(k) => from.extend_from_slice(&sources[k]),
                    Err(_) => from.push(j),
                }
            }
            from.sort_unstable();
            from.dedup();
            sources[m] = from;
        }
        let mut pairs = Vec::new();
        for (c, n) in self.nodes.iter().enumerate().filter(|&(c, _)| !inside(c)) {
            for &j in &self.inputs[n.inputs.0 as usize..n.inputs.1 as usize] {
                if let Ok(k) = members.binary_search(&j) {
                    pairs.extend(sources[k].iter().map(|&x| (x, c)));
                }
            }
        }
        if let Ok(k) = members.binary_search(&self.output) {
            pairs.extend(sources[k].iter().map(|&x| (x, usize::MAX)));
        }
        pairs.sort_unstable();
        pairs.dedup();
        Some(pairs)
    }

    /// Groups each slot's options by their connections and tabulates liveness over the
    /// classes; `None` when a node depends on several slots or the table would be too big.
    fn class_table(&self, graph: &Graph, radices: &[u32]) -> Option<ClassTable> {
        if !self.guards.is_empty() || self.by_option.len() > radices.len() {
            return None;
        }
        let mut class = Vec::with_capacity(radices.len());
        let mut representatives: Vec<Vec<u32>> = Vec::with_capacity(radices.len());
        for (slot, &options) in radices.iter().enumerate() {
            let mut seen: Vec<Vec<(usize, usize)>> = Vec::new();
            let mut of_option = Vec::with_capacity(options as usize);
            let mut reps = Vec::new();
            for option in 0..options {
                let c = self.connections(graph, slot, option)?;
                let k = seen.iter().position(|s| *s == c).unwrap_or_else(|| {
                    seen.push(c);
                    reps.push(option);
                    seen.len() - 1
                });
                of_option.push(k);
            }
            class.push(of_option);
            representatives.push(reps);
        }
        let mut stride = vec![0; radices.len()];
        let mut combos = 1usize;
        for s in (0..radices.len()).rev() {
            stride[s] = combos;
            combos = combos.checked_mul(representatives[s].len()).filter(|&c| c <= CLASS_TABLE_LIMIT)?;
        }
        let class_counts: Vec<u32> = representatives.iter().map(|r| r.len() as u32).collect();
        let mut live = Vec::with_capacity(combos);
        let mut odometer = Odometer::new(&class_counts);
        while let Some(classes) = odometer.advance() {
            let arch: Vec<u32> = classes.iter().zip(&representatives).map(|(&k, reps)| reps[k as usize]).collect();
            live.push(self.evaluate(&arch));
        }
        Some(ClassTable { class, stride, live })
    }

    /// Whether signal from the input reaches the output through active, non-zero nodes.
    pub(crate) fn has_live_path(&self, arch: &[u32]) -> bool {
        if let Some(t) = &self.table {
            if arch.len() == t.class.len() {
                let mut at = 0;
                for ((&o, class), &stride) in arch.iter().zip(&t.class).zip(&t.stride) {
                    match class.get(o as usize) {
                        Some(&k) => at += k * stride,
                        None => return self.evaluate(arch),
                    }
                }
                return t.live[at];
            }
        }
        self.evaluate(arch)
    }

    /// [`Liveness::has_live_path`] by visiting the architecture's active nodes.
    fn evaluate(&self, arch: &[u32]) -> bool {
        SCRATCH.with(|cell| {
            let (active, reached) = &mut *cell.borrow_mut();
            active.clear();
            active.extend_from_slice(&self.fixed);
            for (options, &o) in self.by_option.iter().zip(arch) {
                if let Some(set) = options.get(o as usize) {
                    for (a, s) in active.iter_mut().zip(set) {
                        *a |= s;
                    }
                }
            }
            reached.clear();
            reached.resize(active.len(), 0);
            for (w, &word) in active.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let i = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let n = &self.nodes[i];
                    let (g0, g1) = n.more_guards;
                    if n.sink || !self.guards[g0 as usize..g1 as usize].iter().all(|&(s, o)| arch.get(s) == Some(&o)) {
                        continue;
                    }
                    if n.source || self.inputs[n.inputs.0 as usize..n.inputs.1 as usize].iter().any(|&j| bit(reached, j)) {
                        reached[i / 64] |= 1 << (i % 64);
                    }
                }
            }
            bit(reached, self.output)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;
    use fewshot_plugins::mobilenet::MobileNetSpace;
    use fewshot_plugins::nb201::Nb201Space;
    use fewshot_sdk::SearchSpace;

    #[test]
    fn compiled_liveness_agrees_with_the_sdk() {
        let graph = Nb201Space::default().counting_graph();
        let live = Liveness::new(&graph, &[5; 6]).unwrap();
        // `none` is one class, the four ops that pass signal the other.
        let table = live.table.as_ref().expect("NB201 liveness is tabulated");
        assert!(table.class.iter().all(|c| *c == [0, 1, 1, 1, 1]), "{:?}", table.class);
        assert_eq!(table.live.len(), 64);
        let mut odometer = Odometer::new(&[5; 6]);
        let mut trash = 0;
        while let Some(a) = odometer.advance() {
            let sdk = graph.view(a).has_live_path();
            assert_eq!(live.has_live_path(a), sdk, "{a:?}");
            assert_eq!(live.evaluate(a), sdk, "{a:?}");
            trash += !sdk as u32;
        }
        assert_eq!(trash, 341);
        let graph = MobileNetSpace::default().counting_graph();
        let radices: Vec<u32> = (0..21).map(|i| if i % 4 == 0 { 6 } else { 7 }).collect();
        let live = Liveness::new(&graph, &radices).unwrap();
        assert_eq!(live.table.as_ref().unwrap().live, vec![true]);
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let a: Vec<u32> = (0..21).map(|i| rng.below(if i % 4 == 0 { 6 } else { 7 }) as u32).collect();
            assert!(live.has_live_path(&a) && live.evaluate(&a) && graph.view(&a).has_live_path());
        }
    }
}
