//! The ProxylessNAS-style MobileNet space of EFS-NAS for 224×224 ImageNet: 21 searchable
//! MBConv layers in 6 stages, 6 or 7 options each (6^6 · 7^15 ≈ 2.2·10^17 architectures).
//!
//! Network: stem conv3x3 s2 3→32 + BN + act; a fixed MBConv(3x3, e1) 32→16; the 21 searchable
//! layers; head conv1x1 320→1280 + BN + act, global average pool, linear 1280→classes.
//! An MBConv(k, e) is [1x1 expand + BN + act] + depthwise k×k + BN + act + 1x1 project + BN,
//! with a residual add iff stride 1 and C_in == C_out; its hidden width is `C_in · e`.

use fewshot_sdk::graph::NodeId;
use fewshot_sdk::{
    register_builtin, Activation, Arch, Graph, GraphBuilder, Params, PluginEntry, SearchSpace,
    Slot, Width,
};

/// Option names in index order: (kernel, expansion) MBConvs, then identity.
pub const MOBILENET_OPS: [&str; 7] = ["3x3e3", "3x3e6", "5x5e3", "5x5e6", "7x7e3", "7x7e6", "identity"];

/// (kernel, expansion) of the MBConv options, in index order.
const MBCONV: [(u32, u32); 6] = [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)];

/// Index of the identity option.
const IDENTITY: u32 = 6;

/// The stages as (output width, layers, stride of the first layer).
pub const MOBILENET_STAGES: [(u32, u32, u32); 6] =
    [(32, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)];

/// Width after the stem and the fixed first block (the input of the searchable layers).
const FIRST_BLOCK_OUT: u32 = 16;
/// Stem width.
const STEM: u32 = 32;
/// Head width.
const HEAD: u32 = 1280;

/// One searchable layer: where it sits and what it maps.
#[derive(Clone, Copy, Debug)]
struct Layer {
    stage: u32,
    index: u32,
    c_in: u32,
    c_out: u32,
    stride: u32,
}

impl Layer {
    /// The first layer of a stage changes width or resolution and has no identity option.
    fn first_in_stage(&self) -> bool {
        self.index == 0
    }

    fn name(&self) -> String {
        format!("stage{}.layer{}", self.stage + 1, self.index)
    }
}

/// The 21 searchable layers in architecture order.
fn layers() -> Vec<Layer> {
    let mut out = Vec::new();
    let mut c_in = FIRST_BLOCK_OUT;
    for (stage, &(width, count, stride)) in MOBILENET_STAGES.iter().enumerate() {
        for index in 0..count {
            out.push(Layer {
                stage: stage as u32,
                index,
                c_in,
                c_out: width,
                stride: if index == 0 { stride } else { 1 },
            });
            c_in = width;
        }
    }
    out
}

/// One MBConv block: full-width input and output channels, kernel, expansion, stride.
#[derive(Clone, Copy, Debug)]
struct MbConv {
    c_in: u32,
    c_out: u32,
    kernel: u32,
    expand: u32,
    stride: u32,
}

/// The MobileNet space with its parameters.
#[derive(Clone, Debug)]
pub struct MobileNetSpace {
    /// Output classes.
    pub classes: u32,
    /// Input resolution (square).
    pub resolution: u32,
    /// The activation of the stem, the MBConvs and the head.
    pub activation: Activation,
}

impl Default for MobileNetSpace {
    fn default() -> Self {
        MobileNetSpace { classes: 1000, resolution: 224, activation: Activation::Relu6 }
    }
}

impl MobileNetSpace {
    /// Builds the space from `classes=1000,resolution=224,activation=relu6`.
    pub fn from_params(p: &Params) -> Result<Self, String> {
        let d = MobileNetSpace::default();
        let space = MobileNetSpace {
            classes: p.get("classes", d.classes)?,
            resolution: p.get("resolution", d.resolution)?,
            activation: match p.get_str("activation") {
                Some(name) => Activation::parse(name)?,
                None => d.activation,
            },
        };
        if space.classes == 0 {
            return Err("classes must be positive".into());
        }
        if space.resolution < 32 {
            return Err(format!(
                "resolution must be at least 32 (the network downsamples 32x), got {}",
                space.resolution
            ));
        }
        Ok(space)
    }

    /// An MBConv block on `x`; returns its output node.
    fn mbconv(&self, g: &mut GraphBuilder, x: NodeId, block: MbConv) -> NodeId {
        let MbConv { c_in, c_out, kernel, expand, stride } = block;
        let hidden = if expand == 1 { Width::scaled(c_in) } else { Width::expanded(c_in, expand) };
        let expanded = if expand == 1 {
            x
        } else {
            g.scope("expand", |g| {
                let c = g.conv(x, hidden, 1, 1);
                let b = g.batch_norm(c);
                g.activation(b, self.activation)
            })
        };
        let dw = g.scope("depthwise", |g| {
            let c = g.depthwise_conv(expanded, hidden, kernel, stride);
            let b = g.batch_norm(c);
            g.activation(b, self.activation)
        });
        let projected = g.scope("project", |g| {
            let c = g.conv(dw, Width::scaled(c_out), 1, 1);
            g.batch_norm(c)
        });
        if stride == 1 && c_in == c_out {
            g.scope("residual", |g| g.add(&[projected, x]))
        } else {
            projected
        }
    }

    /// The 21 searchable layers on `x`, each holding all its options guarded by its slot.
    fn searchable(&self, g: &mut GraphBuilder, mut x: NodeId) -> NodeId {
        for (slot, layer) in layers().iter().enumerate() {
            let slot = slot as u32;
            x = g.scope(&layer.name(), |g| {
                let mut options = Vec::with_capacity(MOBILENET_OPS.len());
                for (option, &(kernel, expand)) in MBCONV.iter().enumerate() {
                    let out = g.when(slot, option as u32, |g| {
                        g.scope(MOBILENET_OPS[option], |g| {
                            let block = MbConv { c_in: layer.c_in, c_out: layer.c_out, kernel, expand, stride: layer.stride };
                            self.mbconv(g, x, block)
                        })
                    });
                    options.push(out);
                }
                if !layer.first_in_stage() {
                    options.push(g.when(slot, IDENTITY, |g| g.identity(x)));
                }
                g.add(&options)
            });
        }
        x
    }

    /// Side length of the feature map after the stride-2 stem.
    fn stem_resolution(&self) -> u32 {
        (self.resolution + 2 - 3) / 2 + 1
    }
}

/// Formats a MobileNet architecture as 21 option names joined by `-`.
pub fn format_mobilenet(choices: &[u32]) -> String {
    choices
        .iter()
        .map(|&c| MOBILENET_OPS.get(c as usize).copied().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join("-")
}

/// Parses the MobileNet string form (21 option names joined by `-`).
pub fn parse_mobilenet(text: &str) -> Result<Arch, String> {
    let text = text.trim();
    let layers = layers();
    let bad = |why: String| format!("malformed MobileNet architecture `{text}`: {why}");
    let tokens: Vec<&str> = text.split('-').map(str::trim).collect();
    if tokens.len() != layers.len() {
        return Err(bad(format!(
            "expected {} layer choices joined by `-` (e.g. `3x3e3-identity-...`), found {}",
            layers.len(),
            tokens.len()
        )));
    }
    let mut choices = Vec::with_capacity(layers.len());
    for (i, (token, layer)) in tokens.iter().zip(&layers).enumerate() {
        let option = MOBILENET_OPS.iter().position(|o| o == token).ok_or_else(|| {
            bad(format!(
                "layer {i} ({}): unknown option `{token}` (options: {})",
                layer.name(),
                MOBILENET_OPS.join(", ")
            ))
        })? as u32;
        if option == IDENTITY && layer.first_in_stage() {
            return Err(bad(format!(
                "layer {i} ({}) is the first layer of a stage and cannot be `identity`",
                layer.name()
            )));
        }
        choices.push(option);
    }
    Ok(Arch::new(choices))
}

impl SearchSpace for MobileNetSpace {
    fn slots(&self) -> Vec<Slot> {
        layers()
            .iter()
            .map(|layer| {
                let options = if layer.first_in_stage() { &MOBILENET_OPS[..6] } else { &MOBILENET_OPS[..] };
                Slot::new(&layer.name(), options)
            })
            .collect()
    }

    fn parse(&self, text: &str) -> Result<Arch, String> {
        parse_mobilenet(text)
    }

    fn format(&self, arch: &Arch) -> String {
        format_mobilenet(arch.as_slice())
    }

    fn supernet_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let x = g.input(Width::fixed(3), self.resolution, self.resolution);
        let stem = g.scope("stem", |g| {
            let c = g.conv(x, Width::scaled(STEM), 3, 2);
            let b = g.batch_norm(c);
            g.activation(b, self.activation)
        });
        let first = g.scope("first_block", |g| {
            self.mbconv(g, stem, MbConv { c_in: STEM, c_out: FIRST_BLOCK_OUT, kernel: 3, expand: 1, stride: 1 })
        });
        let body = self.searchable(&mut g, first);
        let out = g.scope("head", |g| {
            let c = g.conv(body, Width::scaled(HEAD), 1, 1);
            let b = g.batch_norm(c);
            let a = g.activation(b, self.activation);
            let p = g.global_avg_pool(a);
            g.linear(p, Width::fixed(self.classes), true)
        });
        g.finish(out)
    }

    fn counting_graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let side = self.stem_resolution();
        let x = g.input(Width::scaled(FIRST_BLOCK_OUT), side, side);
        let out = self.searchable(&mut g, x);
        g.finish(out)
    }

    fn default_groups(&self) -> String {
        "34,36,38,40,42,rest".into()
    }

    fn slots_in_series(&self) -> bool {
        true
    }
}

fn mobilenet_entry() -> PluginEntry {
    PluginEntry::space(
        "mobilenet",
        "ProxylessNAS-style MobileNet space (EFS-NAS): 21 MBConv layers, 6^6*7^15 architectures",
        "classes=1000, resolution=224, activation=relu6|relu|tanh|gelu|sigmoid|silu",
        MobileNetSpace::from_params,
    )
}
register_builtin!(mobilenet_entry);

#[cfg(test)]
mod tests {
    use super::*;
    use fewshot_sdk::graph::{known_op, Op};

    #[test]
    fn slots_follow_the_stage_layout() {
        let slots = MobileNetSpace::default().slots();
        assert_eq!(slots.len(), 21);
        let six: Vec<usize> = (0..21).filter(|&i| slots[i].options.len() == 6).collect();
        assert_eq!(six, vec![0, 4, 8, 12, 16, 20]);
        assert!(slots.iter().all(|s| s.options.len() == 6 || s.options.len() == 7));
        let size: f64 = fewshot_sdk::space_size(&slots);
        assert_eq!(size, 6f64.powi(6) * 7f64.powi(15));
    }

    #[test]
    fn string_form_round_trips_and_errors_are_clear() {
        let mut choices = vec![0u32; 21];
        for (i, c) in choices.iter_mut().enumerate() {
            *c = if i % 4 == 0 { (i as u32 / 4) % 6 } else { (i as u32) % 7 };
        }
        let text = format_mobilenet(&choices);
        assert_eq!(parse_mobilenet(&text).unwrap().as_slice(), &choices[..]);
        assert!(text.starts_with("3x3e3-3x3e6-5x5e3-5x5e6-3x3e6-"), "{text}");

        let short = parse_mobilenet("3x3e3-identity").unwrap_err();
        assert!(short.contains("expected 21") && short.contains("found 2"), "{short}");
        let tokens: Vec<&str> = vec!["3x3e3"; 21];
        let mut unknown = tokens.clone();
        unknown[3] = "9x9e3";
        let e = parse_mobilenet(&unknown.join("-")).unwrap_err();
        assert!(e.contains("layer 3") && e.contains("9x9e3"), "{e}");
        let mut identity_first = tokens.clone();
        identity_first[4] = "identity";
        let e = parse_mobilenet(&identity_first.join("-")).unwrap_err();
        assert!(e.contains("stage2.layer0") && e.contains("cannot be `identity`"), "{e}");
    }

    #[test]
    fn graphs_are_well_formed_at_full_and_half_width() {
        let space = MobileNetSpace::default();
        let slots = space.slots();
        let g = space.supernet_graph();
        g.validate(&slots).unwrap();
        let shapes = g.shapes(1.0).unwrap();
        assert_eq!(shapes[g.output as usize].channels(), 1000);
        let half = g.shapes(2.0).unwrap();
        let head = g.nodes.iter().position(|n| n.name.as_str() == "head.conv").unwrap();
        assert_eq!(half[head].channels(), 640);
        let counting = space.counting_graph();
        counting.validate(&slots).unwrap();
        let cs = counting.shapes(1.0).unwrap();
        assert_eq!(cs[counting.output as usize], fewshot_sdk::Shape::Map { channels: 320, height: 7, width: 7 });
        // Residual adds exactly in the 15 layers with stride 1 and unchanged width, in each MBConv.
        let residuals = g.nodes.iter().filter(|n| n.name.as_str().ends_with("residual.add")).count();
        assert_eq!(residuals, 15 * 6);
        // The fixed first block has no expansion conv.
        assert!(g.nodes.iter().all(|n| !n.name.as_str().starts_with("first_block.expand")));
        let activations = counting
            .nodes
            .iter()
            .filter(|n| matches!(known_op(&n.op), Ok(Op::Activation(_))))
            .count();
        assert_eq!(activations, 21 * 6 * 2);
    }

    #[test]
    fn subnet_materialises() {
        let space = MobileNetSpace::default();
        let arch = parse_mobilenet(&["7x7e6"; 21].join("-")).unwrap();
        let sub = space.subnet_graph(&arch).unwrap();
        sub.validate(&[]).unwrap();
        assert!(sub.shapes(1.0).is_ok());
    }
}
