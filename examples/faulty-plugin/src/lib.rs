//! A deliberately broken fewshot plugin library: the fixture the tests use to show that the host
//! survives bad plugins and that `fewshot plugins check` catches them. Do not copy it.
//!
//! Every plugin fails in one way:
//! - `broken-ctor` (space): its constructor returns an error;
//! - `panicky-ctor` (space): its constructor panics;
//! - `panicky-slots` (space): constructs, then panics when asked for its slots;
//! - `lossy` (space): its text form drops the last slot and its parser accepts anything;
//! - `bad-graph` (space): its supernet graph puts a linear layer on a feature map;
//! - `nondeterministic` (rule): returns a different count on every call;
//! - `stray` (splitter): announces two subspaces but sends some architectures to a third;
//! - `mislabel` (sampler): draws from one subspace and claims another.
//!
//! The environment variable `FEWSHOT_FAULTY_MODE` breaks the library as a whole:
//! `panic-in-entries` makes listing its plugins panic; `clash-with-builtin` adds a space named
//! `nb201`, like the built-in one.

use std::sync::atomic::{AtomicU32, Ordering};

use fewshot_sdk::{
    Arch, ArchDraw, ArchMetrics, CountingRule, Graph, GraphBuilder, Params, Pick, PlanContext,
    PluginEntry, Sampler, SearchSpace, Slot, SplitKey, Splitter, Subnet, SubspaceLabel, Width,
};

/// A valid little space of three slots with three options each, used by the broken variants.
const OPS: [&str; 3] = ["conv3x3", "avgpool3x3", "skip"];
const SLOTS: u32 = 3;

fn slots() -> Vec<Slot> {
    (0..SLOTS).map(|i| Slot::new(&format!("layer{i}"), &OPS)).collect()
}

fn chain(linear_too_early: bool) -> Graph {
    let mut g = GraphBuilder::new();
    let input = g.input(Width::fixed(3), 8, 8);
    let mut x = g.conv(input, Width::scaled(8), 3, 1);
    if linear_too_early {
        x = g.linear(x, Width::fixed(10), true);
    }
    for slot in 0..SLOTS {
        let mut candidates = Vec::new();
        for option in 0..OPS.len() as u32 {
            candidates.push(g.when(slot, option, |g| match option {
                0 => g.conv(x, Width::scaled(8), 3, 1),
                1 => g.avg_pool(x, 3, 1, 1, false),
                _ => g.identity(x),
            }));
        }
        x = g.add(&candidates);
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
    let choices: Result<Vec<u32>, String> = text
        .split('-')
        .map(|name| {
            OPS.iter()
                .position(|op| *op == name)
                .map(|i| i as u32)
                .ok_or_else(|| format!("unknown op `{name}`"))
        })
        .collect();
    let choices = choices?;
    if choices.len() != SLOTS as usize {
        return Err(format!("expected {SLOTS} ops, got {}", choices.len()));
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
