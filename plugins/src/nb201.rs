//! The NAS-Bench-201 search space: a 4-node cell DAG with 6 edges × 5 ops, stacked 3 × N times
//! with ResNet reduction blocks between the stages.

use fewshot_sdk::{
    register_builtin, Activation, Arch, Graph, GraphBuilder, Params, PluginEntry, SearchSpace,
    Slot, Width,
};
use fewshot_sdk::graph::NodeId;

/// Op names in NB201 index order.
pub const NB201_OPS: [&str; 5] = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];

/// The cell's edges as (target node, source node), in slot order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
pub const NB201_EDGES: [(u32, u32); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// The NB201 space with its macro-network parameters.
#[derive(Clone, Debug)]
pub struct Nb201Space {
    /// Base width C of the first stage (stages use C, 2C, 4C).
    pub channels: u32,
    /// Cells per stage N.
    pub cells: u32,
    /// Output classes.
    pub classes: u32,
    /// Input resolution (square).
    pub resolution: u32,
    /// The activation used wherever NB201 uses a ReLU.
    pub activation: Activation,
}

impl Default for Nb201Space {
    fn default() -> Self {
        Nb201Space { channels: 16, cells: 5, classes: 10, resolution: 32, activation: Activation::Relu }
    }
}

impl Nb201Space {
    /// Builds the space from `C=16,N=5,classes=10,resolution=32,activation=relu`.
    pub fn from_params(p: &Params) -> Result<Self, String> {
        let d = Nb201Space::default();
        let space = Nb201Space {
            channels: p.get("C", d.channels)?,
            cells: p.get("N", d.cells)?,
            classes: p.get("classes", d.classes)?,
            resolution: p.get("resolution", d.resolution)?,
            activation: match p.get_str("activation") {
                Some(name) => Activation::parse(name)?,
                None => d.activation,
            },
        };
        if space.channels == 0 || space.cells == 0 || space.classes == 0 {
            return Err("C, N and classes must be positive".into());
        }
        if space.resolution < 4 {
            return Err("resolution must be at least 4 (two stride-2 reductions)".into());
        }
        Ok(space)
    }

    /// One cell on input `x` at `width`; returns the cell output node.
    fn cell(&self, g: &mut GraphBuilder, x: NodeId, width: Width) -> NodeId {
        let mut nodes = vec![x];
        for target in 1..=3u32 {
            let mut terms = Vec::new();
            for (slot, &(to, from)) in NB201_EDGES.iter().enumerate() {
                if to != target {
                    continue;
                }
                let input = nodes[from as usize];
                let slot = slot as u32;
                g.scope(&format!("edge{to}<-{from}"), |g| {
                    for (option, name) in NB201_OPS.iter().enumerate() {
                        let out = g.when(slot, option as u32, |g| {
                            g.scope(name, |g| match option {
                                0 => g.zero(input),
                                1 => g.identity(input),
                                2 | 3 => {
                                    let kernel = if option == 2 { 1 } else { 3 };
                                    let a = g.activation(input, self.activation);
                                    let c = g.conv(a, width, kernel, 1);
                                    g.batch_norm(c)
                                }
                                _ => g.avg_pool(input, 3, 1, 1, false),
                            })
                        });
                        terms.push(out);
                    }
                });
            }
            let node = g.scope(&format!("node{target}"), |g| g.add(&terms));
            nodes.push(node);
        }
        nodes[3]
    }

    /// The ResNet basic block between stages (stride 2, widening `from` to `to`).
    fn reduction(&self, g: &mut GraphBuilder, x: NodeId, to: Width) -> NodeId {
        let a = g.scope("a", |g| {
            let r = g.activation(x, self.activation);
            let c = g.conv(r, to, 3, 2);
            g.batch_norm(c)
        });
        let b = g.scope("b", |g| {
            let r = g.activation(a, self.activation);
            let c = g.conv(r, to, 3, 1);
            g.batch_norm(c)
        });
        let s = g.scope("shortcut", |g| {
            let p = g.avg_pool(x, 2, 2, 0, true);
            g.conv(p, to, 1, 1)
        });
        g.add(&[b, s])
    }
}

/// Formats an NB201 architecture as `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
pub fn format_nb201(choices: &[u32]) -> String {
    let mut out = String::new();
    for target in 1..=3u32 {
        if target > 1 {
            out.push('+');
        }
        out.push('|');
        for (slot, &(to, from)) in NB201_EDGES.iter().enumerate() {
            if to == target {
                let op = NB201_OPS.get(choices[slot] as usize).copied().unwrap_or("?");
                out.push_str(&format!("{op}~{from}|"));
            }
        }
    }
    out
}

/// Parses the NB201 string form.
pub fn parse_nb201(text: &str) -> Result<Arch, String> {
    let text = text.trim();
    let bad = |why: String| format!("malformed NB201 architecture `{text}`: {why}");
    let groups: Vec<&str> = text.split('+').collect();
    if groups.len() != 3 {
        return Err(bad(format!("expected 3 node groups joined by `+`, found {}", groups.len())));
    }
    let mut choices = Vec::with_capacity(6);
    for (i, group) in groups.iter().enumerate() {
        let inner = group
            .strip_prefix('|')
            .and_then(|g| g.strip_suffix('|'))
            .ok_or_else(|| bad(format!("node group `{group}` must start and end with `|`")))?;
        let edges: Vec<&str> = inner.split('|').collect();
        if edges.len() != i + 1 {
            return Err(bad(format!("node {} needs {} edges, found {}", i + 1, i + 1, edges.len())));
        }
        for (source, edge) in edges.iter().enumerate() {
            let (op, from) = edge
                .split_once('~')
                .ok_or_else(|| bad(format!("edge `{edge}` must look like `op~{source}`")))?;
            if from != source.to_string() {
                return Err(bad(format!("edge `{edge}` must come from node {source}")));
            }
            let index = NB201_OPS
                .iter()
                .position(|o| *o == op)
                .ok_or_else(|| bad(format!("unknown op `{op}` (ops: {})", NB201_OPS.join(", "))))?;
            choices.push(index as u32);
        }
    }
    Ok(Arch::new(choices))
}

impl SearchSpace for Nb201Space {
    fn slots(&self) -> Vec<Slot> {
        NB201_EDGES
            .iter()
            .map(|(to, from)| Slot::new(&format!("edge{to}<-{from}"), &NB201_OPS))
            .collect()
    }

    fn parse(&self, text: &str) -> Result<Arch, String> {
        parse_nb201(text)
    }

    fn format(&self, arch: &Arch) -> String {
        format_nb201(arch.as_slice())
    }

    fn supernet_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), self.resolution, self.resolution);
        let base = self.channels;
        let mut x = g.scope("stem", |g| {
            let c = g.conv(x, Width::scaled(base), 3, 1);
            g.batch_norm(c)
        });
        for stage in 0..3u32 {
            let width = Width::scaled(base << stage);
            if stage > 0 {
                x = g.scope(&format!("reduction{stage}"), |g| self.reduction(g, x, width));
            }
            for cell in 0..self.cells {
                x = g.scope(&format!("stage{}.cell{cell}", stage + 1), |g| self.cell(g, x, width));
            }
        }
        let out = g.scope("head", |g| {
            let b = g.batch_norm(x);
            let a = g.activation(b, self.activation);
            let p = g.global_avg_pool(a);
            g.linear(p, Width::fixed(self.classes), true)
        });
        g.finish(out)
    }

    fn counting_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let width = Width::scaled(self.channels);
        let x = g.input(width, self.resolution, self.resolution);
        let out = g.scope("cell", |g| self.cell(g, x, width));
        g.finish(out)
    }

    fn default_groups(&self) -> String {
        "0-1,2,3".into()
    }
}

fn nb201_entry() -> PluginEntry {
    PluginEntry::space(
        "nb201",
        "NAS-Bench-201 cell space: 6 edges x 5 ops, 15,625 architectures",
        "C=16, N=5, classes=10, resolution=32, activation=relu|relu6|tanh|gelu|sigmoid|silu",
        Nb201Space::from_params,
    )
}
register_builtin!(nb201_entry);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_round_trips() {
        let s = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";
        let a = parse_nb201(s).unwrap();
        assert_eq!(a.as_slice(), &[3, 3, 4, 1, 3, 1]);
        assert_eq!(format_nb201(a.as_slice()), s);
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for bad in ["", "|none~0|", "|none~0|+|none~0|none~1|+|none~0|none~1|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "none~0|+|none~0|none~1|+|none~0|none~1|none~2|"] {
            assert!(parse_nb201(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn graphs_are_well_formed() {
        let space = Nb201Space::default();
        let slots = space.slots();
        let g = space.supernet_graph();
        g.validate(&slots).unwrap();
        let shapes = g.shapes(2.0).unwrap();
        assert_eq!(shapes[g.output as usize].channels(), 10);
        space.counting_graph().validate(&slots).unwrap();
    }
}
