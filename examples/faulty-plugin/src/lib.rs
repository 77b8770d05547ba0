//! A deliberately broken fewshot plugin library: the fixture the tests use to show that the host
//! survives bad plugins and that `fewshot plugins check` catches them. Do not copy it.
//!
//! Every plugin fails in one way:
//! - `broken-ctor` (space): its constructor returns an error;
//! - `panicky-ctor` (space): its constructor panics;
//! - `panicky-slots` (space): constructs, then panics when asked for its slots;
//! - `lossy` (space): its text form drops the last slot and its parser accepts anything;
//! - `bad-graph` (space): its supernet graph puts a linear layer on a feature map;
//! - `panicky-format` (space): its `format` panics;
//! - `dashed-options` (space): its option names contain `-`, its text form's separator, so its
//!   strings do not parse back;
//! - `mixed-add` (space): an `add` sums a fixed and a scaled width, consistent only at channel
//!   divisor 1;
//! - `false-series` (space): claims its slots lie in series, but a skip connection bypasses one;
//! - `one-invalid` (space): in series, 3^13 architectures, and `validate` rejects exactly one
//!   (all `skip`), so sizing by dynamic programming must account for it;
//! - `nondeterministic` (rule): returns a different count on every call;
//! - `stray` (splitter): announces two subspaces but sends some architectures to a third;
//! - `mislabel` (sampler): draws from one subspace and claims another.
//!
//! The environment variable `FEWSHOT_FAULTY_MODE` breaks the library as a whole:
//! `panic-in-entries` makes listing its plugins panic; `abort-in-entries` makes it abort the
//! process, as any panic does in a library built with `panic = "abort"`; `clash-with-builtin`
//! adds a space named `nb201`, like the built-in one.

use std::sync::atomic::{AtomicU32, Ordering};

use fewshot_sdk::{
    graph::NodeId, Activation, Arch, ArchDraw, ArchMetrics, CountingRule, Graph, GraphBuilder, Params, Pick, PlanContext,
    PluginEntry, Sampler, SearchSpace, Slot, SplitKey, Splitter, Subnet, SubspaceLabel, Width,
};

/// A valid little space of three slots with three options each, used by the broken variants.
const OPS: [&str; 3] = ["conv3x3", "avgpool3x3", "skip"];
const SLOTS: u32 = 3;

fn slots() -> Vec<Slot> {
    (0..SLOTS).map(|i| Slot::new(&format!("layer{i}"), &OPS)).collect()
}

/// Slots of the `one-invalid` space: 3^13 architectures, more than the host enumerates.
const LONG_SLOTS: u32 = 13;

fn chain(linear_too_early: bool) -> Graph {
    chain_of(SLOTS, linear_too_early, Width::scaled(8))
}

/// A chain of `slots` layers on a stem conv of width `stem`, each layer one of [`OPS`].
fn chain_of(slots: u32, linear_too_early: bool, stem: Width) -> Graph {
    let mut g = GraphBuilder::new();
    let input = g.input(Width::fixed(3), 8, 8);
    let mut x = g.conv(input, stem, 3, 1);
    if linear_too_early {
        x = g.linear(x, Width::fixed(10), true);
    }
    for slot in 0..slots {
        x = layer(&mut g, slot, x);
    }
    let p = g.global_avg_pool(x);
    let out = g.linear(p, Width::fixed(10), true);
    g.finish(out)
}

/// Every option of one slot on `x`, summed.
fn layer(g: &mut GraphBuilder, slot: u32, x: NodeId) -> NodeId {
    let mut candidates = Vec::new();
    for option in 0..OPS.len() as u32 {
        candidates.push(g.when(slot, option, |g| match option {
            0 => {
                let c = g.conv(x, Width::scaled(8), 3, 1);
                g.activation(c, Activation::Relu)
            }
            1 => g.avg_pool(x, 3, 1, 1, false),
            _ => g.identity(x),
        }));
    }
    g.add(&candidates)
}

/// A chain of [`SLOTS`] layers whose slot 1 is bypassed by an unguarded skip connection.
fn bypassed_chain() -> Graph {
    let mut g = GraphBuilder::new();
    let input = g.input(Width::fixed(3), 8, 8);
    let mut x = g.conv(input, Width::scaled(8), 3, 1);
    for slot in 0..SLOTS {
        let out = layer(&mut g, slot, x);
        x = if slot == 1 { g.add(&[out, x]) } else { out };
    }
    let p = g.global_avg_pool(x);
    let out = g.linear(p, Width::fixed(10), true);
    g.finish(out)
}

/// The text form `op-op-op` of the well-behaved spaces below.
fn format_all(arch: &Arch) -> String {
    let names: Vec<&str> = arch.as_slice().iter().map(|&i| OPS[i as usize]).collect();
    names.join("-")
}

fn parse_strict(text: &str) -> Result<Arch, String> {
    parse_names(text, &OPS, SLOTS)
}

/// Parses `slots` option names from `names`, separated by `-`.
fn parse_names(text: &str, names: &[&str], slots: u32) -> Result<Arch, String> {
    let choices: Result<Vec<u32>, String> = text
        .split('-')
        .map(|name| {
            names
                .iter()
                .position(|op| *op == name)
                .map(|i| i as u32)
                .ok_or_else(|| format!("unknown op `{name}`"))
        })
        .collect();
    let choices = choices?;
    if choices.len() != slots as usize {
        return Err(format!("expected {slots} ops, got {}", choices.len()));
    }
    Ok(Arch::new(choices))
}

/// A space that panics as soon as the host asks for its slots.
struct PanickySlots;

impl SearchSpace for PanickySlots {
    fn slots(&self) -> Vec<Slot> {
        panic!("the slot table was never configured")
    }
    fn parse(&self, text: &str) -> Result<Arch, String> {
        parse_strict(text)
    }
    fn format(&self, arch: &Arch) -> String {
        format_all(arch)
    }
    fn supernet_graph(&self) -> Graph {
        chain(false)
    }
    fn counting_graph(&self) -> Graph {
        chain(false)
    }
    fn default_groups(&self) -> String {
        "0-1,rest".into()
    }
}

/// A space whose text form loses information.
struct Lossy;

impl SearchSpace for Lossy {
    fn slots(&self) -> Vec<Slot> {
        slots()
    }
    /// Accepts anything: unknown or missing names become option 0.
    fn parse(&self, text: &str) -> Result<Arch, String> {
        let mut choices: Vec<u32> = text
            .split('-')
            .map(|name| OPS.iter().position(|op| *op == name).unwrap_or(0) as u32)
            .collect();
        choices.resize(SLOTS as usize, 0);
        Ok(Arch::new(choices))
    }
    /// Forgets the last slot.
    fn format(&self, arch: &Arch) -> String {
        let names: Vec<&str> = arch.as_slice()[..SLOTS as usize - 1].iter().map(|&i| OPS[i as usize]).collect();
        names.join("-")
    }
    fn supernet_graph(&self) -> Graph {
        chain(false)
    }
    fn counting_graph(&self) -> Graph {
        chain(false)
    }
    fn default_groups(&self) -> String {
        "0-1,rest".into()
    }
}

/// A space whose supernet graph has a shape error.
struct BadGraph;

impl SearchSpace for BadGraph {
    fn slots(&self) -> Vec<Slot> {
        slots()
    }
    fn parse(&self, text: &str) -> Result<Arch, String> {
        parse_strict(text)
    }
    fn format(&self, arch: &Arch) -> String {
        format_all(arch)
    }
    fn supernet_graph(&self) -> Graph {
        chain(true)
    }
    fn counting_graph(&self) -> Graph {
        chain(false)
    }
    fn default_groups(&self) -> String {
        "0-1,rest".into()
    }
}

/// The mistakes of [`Flawed`] spaces, one each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// `format` panics.
    PanickyFormat,
    /// Option names contain `-`, the separator of the text form.
    DashedOptions,
    /// The stem has a fixed width that an `add` sums with the layers' scaled widths.
    MixedAdd,
    /// Claims its slots lie in series, but one slot is bypassed.
    FalseSeries,
    /// In series, with one architecture that `validate` rejects.
    OneInvalid,
}

/// Option names with `-` in them.
const DASHED_OPS: [&str; 3] = ["conv-3x3", "avg-pool", "skip"];

/// A three-option chain space with one [`Flaw`].
struct Flawed(Flaw);

impl Flawed {
    fn slot_count(&self) -> u32 {
        if self.0 == Flaw::OneInvalid { LONG_SLOTS } else { SLOTS }
    }

    fn names(&self) -> &'static [&'static str] {
        if self.0 == Flaw::DashedOptions { &DASHED_OPS } else { &OPS }
    }

    fn graph(&self) -> Graph {
        match self.0 {
            Flaw::MixedAdd => chain_of(SLOTS, false, Width::fixed(8)),
            Flaw::FalseSeries => bypassed_chain(),
            _ => chain_of(self.slot_count(), false, Width::scaled(8)),
        }
    }
}

impl SearchSpace for Flawed {
    fn slots(&self) -> Vec<Slot> {
        (0..self.slot_count()).map(|i| Slot::new(&format!("layer{i}"), self.names())).collect()
    }
    fn parse(&self, text: &str) -> Result<Arch, String> {
        parse_names(text, self.names(), self.slot_count())
    }
    fn format(&self, arch: &Arch) -> String {
        if self.0 == Flaw::PanickyFormat {
            panic!("the text form was never implemented");
        }
        let names: Vec<&str> = arch.as_slice().iter().map(|&i| self.names()[i as usize]).collect();
        names.join("-")
    }
    fn validate(&self, arch: &Arch) -> Result<(), String> {
        let all_skip = arch.as_slice().iter().all(|&o| o as usize == OPS.len() - 1);
        if self.0 == Flaw::OneInvalid && all_skip {
            return Err("a network of skips only is not part of the space".into());
        }
        Ok(())
    }
    fn supernet_graph(&self) -> Graph {
        self.graph()
    }
    fn counting_graph(&self) -> Graph {
        self.graph()
    }
    fn default_groups(&self) -> String {
        "0-1,rest".into()
    }
    fn slots_in_series(&self) -> bool {
        matches!(self.0, Flaw::FalseSeries | Flaw::OneInvalid)
    }
}

/// A rule that counts its own calls.
struct Nondeterministic {
    calls: AtomicU32,
}

impl CountingRule for Nondeterministic {
    fn count(&self, _subnet: Subnet<'_>) -> Result<u32, String> {
        Ok(self.calls.fetch_add(1, Ordering::Relaxed))
    }
}

struct Stray;

impl Splitter for Stray {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, _ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        Ok(["first", "second"].iter().map(|l| SubspaceLabel { label: (*l).into() }).collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        Ok(arch.as_slice().first().copied().unwrap_or(0) % 3)
    }
}

struct Mislabel;

impl Sampler for Mislabel {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        let last = draw.subspaces().saturating_sub(1);
        Ok(vec![Pick { subspace: 0, arch: draw.draw(last)? }])
    }
}

fn entries() -> Vec<PluginEntry> {
    let mode = std::env::var("FEWSHOT_FAULTY_MODE").unwrap_or_default();
    if mode == "panic-in-entries" {
        panic!("FEWSHOT_FAULTY_MODE=panic-in-entries: the plugin list cannot be built");
    }
    if mode == "abort-in-entries" {
        std::process::abort();
    }
    let mut entries = vec![
        PluginEntry::space(
            "broken-ctor",
            "Faulty: its constructor always returns an error",
            "",
            |_: &Params| -> Result<Lossy, String> { Err("this space refuses to be built".into()) },
        ),
        PluginEntry::space(
            "panicky-ctor",
            "Faulty: its constructor panics",
            "",
            |_: &Params| -> Result<Lossy, String> { panic!("the constructor's lookup table is empty") },
        ),
        PluginEntry::space("panicky-slots", "Faulty: panics when asked for its slots", "", |_: &Params| {
            Ok(PanickySlots)
        }),
        PluginEntry::space("lossy", "Faulty: text form loses the last slot, parser accepts anything", "", |_: &Params| {
            Ok(Lossy)
        }),
        PluginEntry::space("bad-graph", "Faulty: supernet graph with a shape error", "", |_: &Params| {
            Ok(BadGraph)
        }),
        PluginEntry::space("panicky-format", "Faulty: its text form panics", "", |_: &Params| {
            Ok(Flawed(Flaw::PanickyFormat))
        }),
        PluginEntry::space("dashed-options", "Faulty: option names contain `-`, so its strings do not parse back", "", |_: &Params| {
            Ok(Flawed(Flaw::DashedOptions))
        }),
        PluginEntry::space("mixed-add", "Faulty: an add sums a fixed and a scaled width", "", |_: &Params| {
            Ok(Flawed(Flaw::MixedAdd))
        }),
        PluginEntry::space("false-series", "Faulty: claims its slots lie in series, but one is bypassed", "", |_: &Params| {
            Ok(Flawed(Flaw::FalseSeries))
        }),
        PluginEntry::space("one-invalid", "Faulty: a series space whose validate rejects exactly one architecture", "", |_: &Params| {
            Ok(Flawed(Flaw::OneInvalid))
        }),
        PluginEntry::rule("nondeterministic", "Faulty: a different count on every call", "", |_: &Params| {
            Ok(Nondeterministic { calls: AtomicU32::new(0) })
        }),
        PluginEntry::splitter("stray", "Faulty: assigns architectures to a subspace it never announced", "", |_: &Params| {
            Ok(Stray)
        }),
        PluginEntry::sampler("mislabel", "Faulty: names a different subspace than it drew from", "", |_: &Params| {
            Ok(Mislabel)
        }),
    ];
    if mode == "clash-with-builtin" {
        entries.push(PluginEntry::space("nb201", "Faulty: named like the built-in NB201 space", "", |_: &Params| {
            Ok(Lossy)
        }));
    }
    entries
}

fewshot_sdk::export_plugins!(entries);
