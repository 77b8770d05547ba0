//! `fewshot plugins check LIB`: the conformance checks a plugin library must pass, and the
//! checks of a space that protect every run ([`checked_space`]).
//!
//! The library is loaded on its own, with the built-in plugins as context (a rule is run on the
//! built-in `nb201` space too). Every plugin gets one check function per kind; each check prints
//! one `PASS`, `FAIL` or `SKIP` line with its reason. A check whose input an earlier failure left
//! missing (e.g. everything after a failed construction) is listed as `SKIP`, with why.
//!
//! The checks that protect a run (the space's slots, a seeded sample that `validate` accepts and
//! whose text form round-trips, graphs with consistent shapes at the channel divisors, and the
//! series claim) are one function, `protective_checks`: `plugins check` prints its outcomes, and
//! every command that uses a space runs it first and refuses the space at its first failure,
//! with the message `plugins check` prints.

use std::{collections::HashSet, path::Path};

use anyhow::{anyhow, bail, Result};
use fewshot_core::{
    plan::{Plan, PlanOptions},
    util::rng::Rng,
};
use fewshot_sdk::{
    abi_stable::std_types::{RStr, RString},
    ffi::{from_ffi, SpaceBox, SplitterBox},
    graph::Shape,
    guard::CRASH_PREFIX,
    space_size, Arch, Graph, Op, PluginKind, Slot,
};

use super::registry::{spec_name, Origin, Registered, Registry};
use crate::io::output::print;

/// How thoroughly to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Architectures sampled per search space.
    pub samples: usize,
    /// Seed of the samples.
    pub seed: u64,
}

/// Architectures `plugins check` samples per space by default (and the pre-run check always).
pub const DEFAULT_SAMPLES: usize = 200;

impl Default for CheckOptions {
    /// The defaults of `plugins check`, which the pre-run check uses too.
    fn default() -> Self {
        CheckOptions { samples: DEFAULT_SAMPLES, seed: 0 }
    }
}

/// Subnet graphs materialised per space (each can be as large as the supernet), and sampled
/// architectures the series claim is tested on.
const SUBNET_CHECKS: usize = 20;

/// Texts no space should accept as an architecture.
const MALFORMED: [&str; 5] = ["", "?", "not an architecture", "\u{0}\u{1}\u{2}", "||||++||||"];

/// The checks of [`protective_checks`], in order.
const PROTECTIVE: [&str; 6] = ["slots", "validate", "text form round-trips", "supernet graph", "counting graph", "slots in series"];

/// The further checks of a space in `plugins check`, in order.
const SPACE_EXTRAS: [&str; 3] = ["parse rejects malformed text", "subnet graphs", "default groups"];

/// Constructs the space `spec` and runs the checks that protect a run on it (with the sample of
/// `plugins check`, and the supernet's shapes at channel divisors 1, 2 and `divisor`). A space
/// that fails one is refused with the message `plugins check` prints for it.
pub fn checked_space(registry: &Registry, spec: &str, divisor: f64) -> Result<SpaceBox> {
    let space = registry.space(spec)?;
    let divisors = with_divisor(divisor);
    protective_checks(&mut FirstFailure, &space, &CheckOptions::default(), &divisors).map_err(|why| {
        let plugin = registry.find(PluginKind::Space, spec_name(spec));
        let label = plugin.map_or_else(|| format!("space `{}`", spec_name(spec)), Registered::label);
        let hint = match plugin.map(|p| &p.origin) {
            Some(Origin::Library(path)) => format!(" (`fewshot plugins check {}` runs every check)", path.display()),
            _ => String::new(),
        };
        anyhow!("{label} fails a conformance check: {why:#}{hint}")
    })?;
    Ok(space)
}

/// Channel divisors 1 and 2 (every supernet must work at both), and `divisor`.
fn with_divisor(divisor: f64) -> Vec<f64> {
    let mut divisors = vec![1.0, 2.0];
    if !divisors.contains(&divisor) {
        divisors.push(divisor);
    }
    divisors
}

/// Loads `path` next to the built-ins and checks every plugin it exports; fails when any
/// check fails. `params` are specs `name:key=value,...` of plugins of the library to check with
/// those parameters instead of their defaults.
pub fn check_library(path: &Path, options: &CheckOptions, params: &[String]) -> Result<()> {
    let mut registry = Registry::builtins()?;
    let sdk_version = registry.load_library(path)?;
    let origin = Origin::Library(path.to_path_buf());
    for spec in params {
        let name = spec_name(spec);
        if !registry.plugins().iter().any(|p| p.origin == origin && p.entry.name.as_str() == name) {
            bail!("--params `{spec}`: {} has no plugin named `{name}`", path.display());
        }
    }
    let mine = |kind: PluginKind| -> Vec<String> {
        registry
            .plugins()
            .iter()
            .filter(|p| p.origin == origin && p.kind == kind)
            .flat_map(|p| specs_of(p, params))
            .collect()
    };
    let total = registry.plugins().iter().filter(|p| p.origin == origin).count();
    let mut report = Report::default();
    report.line(&format!(
        "checking {} (built with fewshot-sdk {sdk_version}): {total} plugin{}",
        path.display(),
        if total == 1 { "" } else { "s" }
    ))?;
    if total == 0 {
        report.heading("library")?;
        report.fail("exports at least one plugin", "its plugin list is empty")?;
    }

    let mut library_spaces = Vec::new();
    for spec in mine(PluginKind::Space) {
        if let Some(sampled) = check_space(&registry, &spec, options, &mut report)? {
            library_spaces.push(sampled);
        }
    }
    let mut contexts = Vec::new();
    let builtin_nb201 = registry.find(PluginKind::Space, "nb201").is_some_and(|p| p.origin == Origin::Builtin);
    let needs_context = [PluginKind::Rule, PluginKind::Splitter, PluginKind::Sampler].iter().any(|&k| !mine(k).is_empty());
    if builtin_nb201 && needs_context {
        let space = registry.space("nb201")?;
        let slots = from_ffi(space.slots()).map_err(|e| anyhow!("the built-in nb201 space: {e}"))?.into_vec();
        match Sample::draw(&space, &slots, options) {
            Ok(sample) => contexts.push(SampledSpace {
                label: "built-in nb201".into(),
                spec: "nb201".into(),
                plannable: true,
                space,
                archs: sample.archs,
            }),
            Err(e) => bail!("the built-in nb201 space cannot be sampled: {e}"),
        }
    }
    contexts.extend(library_spaces);
    for spec in mine(PluginKind::Rule) {
        check_rule(&registry, &spec, &contexts, &mut report)?;
    }
    for spec in mine(PluginKind::Splitter) {
        check_splitter(&registry, &spec, &contexts, options, &mut report)?;
    }
    for spec in mine(PluginKind::Sampler) {
        check_sampler(&registry, &spec, &contexts, options, &mut report)?;
    }

    let checks = report.passed + report.failed + report.skipped;
    report.line(&format!(
        "\n{checks} checks: {} passed, {} failed, {} skipped",
        report.passed, report.failed, report.skipped
    ))?;
    if report.failed > 0 {
        bail!("{} of {checks} checks failed for {} ({} skipped)", report.failed, path.display(), report.skipped);
    }
    Ok(())
}

/// The specs a plugin is checked with: those of `params` that name it, else its bare name
/// (its default parameters).
fn specs_of(plugin: &Registered, params: &[String]) -> Vec<String> {
    let name = plugin.entry.name.as_str();
    let given: Vec<String> = params
        .iter()
        .filter(|spec| spec_name(spec) == name)
        .cloned()
        .collect();
    if given.is_empty() {
        vec![name.to_string()]
    } else {
        given
    }
}

/// The name of the construction check of `spec`.
fn constructs(spec: &str) -> String {
    match spec.split_once(':') {
        Some((_, params)) if !params.trim().is_empty() => format!("constructs with `{}`", params.trim()),
        _ => "constructs with default parameters".to_string(),
    }
}

/// Where the outcomes of checks go: the printed report of `plugins check`, or the pre-run
/// check, which stops at the first failure.
trait Checks {
    /// Records one check; returns its value when it passed.
    fn check<T>(&mut self, what: &str, result: Result<(T, String), String>) -> Result<Option<T>>;

    /// Records checks that cannot run, and why.
    fn skip(&mut self, what: &[&str], why: &str) -> Result<()>;
}

/// The check lines printed so far, and their tally.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    fn line(&mut self, text: &str) -> Result<()> {
        print(&format!("{text}\n"))?;
        Ok(())
    }

    fn heading(&mut self, text: &str) -> Result<()> {
        self.line(&format!("\n{text}"))
    }

    fn pass(&mut self, what: &str) -> Result<()> {
        self.passed += 1;
        self.line(&format!("  PASS  {what}"))
    }

    fn fail(&mut self, what: &str, why: &str) -> Result<()> {
        self.failed += 1;
        self.line(&format!("  FAIL  {what}: {why}"))
    }
}

impl Checks for Report {
    fn check<T>(&mut self, what: &str, result: Result<(T, String), String>) -> Result<Option<T>> {
        match result {
            Ok((value, detail)) => {
                let text = if detail.is_empty() { what.to_string() } else { format!("{what}: {detail}") };
                self.pass(&text)?;
                Ok(Some(value))
            }
            Err(why) => {
                self.fail(what, &why)?;
                Ok(None)
            }
        }
    }

    fn skip(&mut self, what: &[&str], why: &str) -> Result<()> {
        for check in what {
            self.skipped += 1;
            self.line(&format!("  SKIP  {check}: {why}"))?;
        }
        Ok(())
    }
}

/// The pre-run check: the first failure becomes the error `<check>: <why>`.
struct FirstFailure;

impl Checks for FirstFailure {
    fn check<T>(&mut self, what: &str, result: Result<(T, String), String>) -> Result<Option<T>> {
        match result {
            Ok((value, _)) => Ok(Some(value)),
            Err(why) => Err(anyhow!("{what}: {why}")),
        }
    }

    fn skip(&mut self, _what: &[&str], _why: &str) -> Result<()> {
        Ok(())
    }
}

/// Whether an error is a panic the SDK's guard caught, rather than an ordinary refusal.
fn is_crash(error: &str) -> bool {
    error.starts_with(CRASH_PREFIX)
}

/// The text form of an architecture; an error names its option indices.
fn text(space: &SpaceBox, arch: &Arch) -> Result<String, String> {
    from_ffi(space.format(arch)).map(RString::into_string).map_err(|e| format!("format {:?}: {e}", arch.as_slice()))
}

/// A plugin constructed from its spec, as the result of a check.
fn construct<T>(made: Result<T>) -> Result<(T, String), String> {
    made.map(|plugin| (plugin, String::new())).map_err(|e| format!("{e:#}"))
}

/// A seeded uniform sample of a space's architectures, of which `validate` accepted `archs`.
struct Sample {
    /// Accepted architectures, in sampling order.
    archs: Vec<Arch>,
    /// How many were sampled in all (valid or not).
    drawn: usize,
}

impl Sample {
    /// Draws `options.samples` architectures uniformly over the product of the slots and keeps
    /// those `validate` accepts; fails when it accepts none, or crashes.
    fn draw(space: &SpaceBox, slots: &[Slot], options: &CheckOptions) -> Result<Sample, String> {
        let mut rng = Rng::stream(options.seed, "plugins-check");
        let mut archs = Vec::new();
        let mut first_rejected = None;
        for _ in 0..options.samples {
            let arch = Arch::new(slots.iter().map(|s| rng.below(s.options.len() as u64) as u32).collect());
            match from_ffi(space.validate(&arch)) {
                Ok(()) => archs.push(arch),
                Err(e) if is_crash(&e) => return Err(e),
                Err(e) => {
                    first_rejected.get_or_insert((arch, e));
                }
            }
        }
        match first_rejected {
            Some((arch, why)) if archs.is_empty() => Err(format!(
                "rejects all {} sampled architectures (e.g. `{}`: {why})",
                options.samples,
                text(space, &arch)?
            )),
            _ => Ok(Sample { archs, drawn: options.samples }),
        }
    }
}

/// What the protective checks established about a space (`None` where a check failed).
struct Checked {
    sample: Option<Sample>,
    round_trips: bool,
    supernet: Option<Graph>,
    counting: Option<Graph>,
}

/// The checks of a space that protect a run: its slots; a seeded sample of architectures that
/// `validate` accepts; their text form round-trips; the supernet graph is valid with consistent
/// shapes at each of `divisors`, and the counting graph at 1 and 2; a claim that the slots lie
/// in series holds on sampled architectures. `None` when the slots are unusable.
fn protective_checks(checks: &mut impl Checks, space: &SpaceBox, options: &CheckOptions, divisors: &[f64]) -> Result<Option<Checked>> {
    let slots = checks.check("slots", from_ffi(space.slots()).and_then(|slots| check_slots(slots.into_vec())))?;
    let Some(slots) = slots else {
        checks.skip(&PROTECTIVE[1..], "the slots are unusable")?;
        return Ok(None);
    };
    let sample = checks.check(
        "validate",
        Sample::draw(space, &slots, options).map(|s| {
            let detail = format!("accepts {} of {} sampled architectures", s.archs.len(), s.drawn);
            (s, detail)
        }),
    )?;
    let round_trips = match &sample {
        Some(sample) => checks.check("text form round-trips", check_round_trip(space, sample))?.is_some(),
        None => {
            checks.skip(&["text form round-trips"], "no sampled architecture passed validate")?;
            false
        }
    };
    let supernet = checks.check("supernet graph", from_ffi(space.supernet_graph()).and_then(|g| check_graph(g, &slots, divisors)))?;
    let counting = checks.check("counting graph", from_ffi(space.counting_graph()).and_then(|g| check_graph(g, &slots, &[1.0, 2.0])))?;
    match (&sample, &counting) {
        (Some(sample), Some(counting)) => {
            checks.check("slots in series", check_series(space, &slots, counting, sample))?;
        }
        (None, _) => checks.skip(&["slots in series"], "no sampled architecture passed validate")?,
        (_, None) => checks.skip(&["slots in series"], "the counting graph failed")?,
    }
    Ok(Some(Checked { sample, round_trips, supernet, counting }))
}

/// A constructed space with the valid architectures of its sample, as context for the checks
/// of rules, splitters and samplers.
struct SampledSpace {
    label: String,
    /// The registry spec that constructs the space again.
    spec: String,
    /// Whether its supernet graph passed, so splitters and samplers can be planned on it.
    plannable: bool,
    space: SpaceBox,
    /// Valid sampled architectures, in sampling order.
    archs: Vec<Arch>,
}

impl SampledSpace {
    fn text(&self, arch: &Arch) -> Result<String, String> {
        text(&self.space, arch)
    }
}

/// Checks a search space constructed from `spec`; returns it with its samples when it can
/// serve as a rule's context.
fn check_space(
    registry: &Registry,
    spec: &str,
    options: &CheckOptions,
    report: &mut Report,
) -> Result<Option<SampledSpace>> {
    report.heading(&format!("space {spec}"))?;
    let made = construct(registry.space(spec));
    let Some(space) = report.check(&constructs(spec), made)? else {
        report.skip(&PROTECTIVE, "the space was not constructed")?;
        report.skip(&SPACE_EXTRAS, "the space was not constructed")?;
        return Ok(None);
    };
    let Some(checked) = protective_checks(report, &space, options, &[1.0, 2.0])? else {
        report.skip(&SPACE_EXTRAS, "the slots are unusable")?;
        return Ok(None);
    };
    report.check("parse rejects malformed text", check_malformed(&space))?;
    match (&checked.sample, &checked.supernet) {
        (None, _) => report.skip(&["subnet graphs"], "no sampled architecture passed validate")?,
        (_, None) => report.skip(&["subnet graphs"], "the supernet graph failed")?,
        _ if !checked.round_trips => report.skip(&["subnet graphs"], "the text form does not round-trip")?,
        (Some(sample), Some(supernet)) => {
            report.check("subnet graphs", check_subnets(&space, sample, supernet))?;
        }
    }
    report.check("default groups", check_default_groups(&space))?;
    let usable = checked.round_trips && checked.counting.is_some();
    Ok(checked.sample.filter(|_| usable).map(|sample| SampledSpace {
        label: spec.to_string(),
        spec: spec.to_string(),
        plannable: checked.supernet.is_some(),
        space,
        archs: sample.archs,
    }))
}

/// Slots must exist, with distinct names and distinct option names; returns them.
fn check_slots(slots: Vec<Slot>) -> Result<(Vec<Slot>, String), String> {
    if slots.is_empty() {
        return Err("the space has no slots".into());
    }
    let mut names = HashSet::new();
    for (i, slot) in slots.iter().enumerate() {
        if !names.insert(slot.name.as_str()) {
            return Err(format!("two slots are named `{}`", slot.name));
        }
        if slot.options.is_empty() {
            return Err(format!("slot {i} `{}` has no options", slot.name));
        }
        let mut options = HashSet::new();
        if let Some(dup) = slot.options.iter().find(|o| !options.insert(o.as_str())) {
            return Err(format!("slot {i} `{}` has two options named `{dup}`", slot.name));
        }
    }
    let size = space_size(&slots);
    let size = if size < 1e15 { format!("{size:.0}") } else { format!("{size:.3e}") };
    let detail = format!("{} slots, {size} architectures", slots.len());
    Ok((slots, detail))
}

/// Every sampled architecture formats, and its text parses back to it.
fn check_round_trip(space: &SpaceBox, sample: &Sample) -> Result<((), String), String> {
    for arch in &sample.archs {
        let text = text(space, arch)?;
        let back = from_ffi(space.parse(RStr::from_str(&text))).map_err(|e| format!("`{text}` does not parse: {e}"))?;
        if &back != arch {
            return Err(format!(
                "{:?} formats as `{text}`, which parses back as {:?}",
                arch.as_slice(),
                back.as_slice()
            ));
        }
    }
    Ok(((), format!("{} architectures", sample.archs.len())))
}

fn check_malformed(space: &SpaceBox) -> Result<((), String), String> {
    for text in MALFORMED {
        match from_ffi(space.parse(RStr::from_str(text))) {
            Ok(arch) => {
                return Err(format!("parse accepts {text:?} as {:?}", arch.as_slice()));
            }
            Err(e) if is_crash(&e) => return Err(format!("parse of {text:?}: {e}")),
            Err(_) => {}
        }
    }
    Ok(((), format!("{} inputs", MALFORMED.len())))
}

/// A graph must be structurally valid and have static shapes at each channel divisor.
fn check_graph(graph: Graph, slots: &[Slot], divisors: &[f64]) -> Result<(Graph, String), String> {
    graph.validate(slots)?;
    let mut output = String::new();
    for &divisor in divisors {
        let shapes = graph.shapes(divisor).map_err(|e| format!("at channel divisor {divisor}: {e}"))?;
        if divisor == 1.0 {
            output = describe_shape(&shapes[graph.output as usize]);
        }
    }
    let divisors: Vec<String> = divisors.iter().map(|d| d.to_string()).collect();
    let divisors = match divisors.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => divisors.join(""),
    };
    let detail = format!("{} nodes, valid, shapes at channel divisor {divisors}, output {output}", graph.nodes.len());
    Ok((graph, detail))
}

fn describe_shape(shape: &Shape) -> String {
    match shape {
        Shape::Map { channels, height, width } => format!("{channels}x{height}x{width}"),
        Shape::Vector { features } => format!("{features} features"),
    }
}

/// A space that says its slots lie in series must mean it: in sampled architectures, no live
/// input→output path of the counting graph avoids a slot.
fn check_series(space: &SpaceBox, slots: &[Slot], counting: &Graph, sample: &Sample) -> Result<((), String), String> {
    if !from_ffi(space.slots_in_series())? {
        return Ok(((), "not claimed".into()));
    }
    let tested = sample.archs.iter().take(SUBNET_CHECKS);
    for arch in tested.clone() {
        if let Some(slot) = (0..slots.len()).find(|&s| bypasses(counting, arch.as_slice(), s as u32)) {
            return Err(format!(
                "the space says its slots lie in series, but in `{}` a live path of the counting graph bypasses slot {slot} `{}`",
                text(space, arch)?,
                slots[slot].name
            ));
        }
    }
    Ok(((), format!("yes, every live path crosses every slot in {} sampled architectures", tested.count())))
}

/// Whether signal from the input reaches the output of `graph` in the subnet `arch` without
/// passing a node guarded by `slot`.
fn bypasses(graph: &Graph, arch: &[u32], slot: u32) -> bool {
    let mut reached = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if !node.is_active(arch) || node.guard.iter().any(|g| g.slot == slot) {
            continue;
        }
        reached[i] = match node.op.as_enum() {
            Ok(Op::Input { .. }) => true,
            Ok(Op::Zero) => false,
            _ => node.inputs.iter().any(|&j| reached[j as usize]),
        };
    }
    reached[graph.output as usize]
}

/// Subnet graphs of sampled architectures are valid, with the supernet's output shape; a space
/// may refuse to build one only for an architecture without a live input→output path.
fn check_subnets(space: &SpaceBox, sample: &Sample, supernet: &Graph) -> Result<((), String), String> {
    let slots = from_ffi(space.slots())?.into_vec();
    let output = supernet.shapes(1.0)?[supernet.output as usize];
    let (mut built, mut dead) = (0, 0);
    for arch in sample.archs.iter().take(SUBNET_CHECKS) {
        let text = text(space, arch)?;
        match from_ffi(space.subnet_graph(arch)) {
            Ok(graph) => {
                graph.validate(&slots).map_err(|e| format!("subnet of `{text}`: {e}"))?;
                let shapes = graph.shapes(1.0).map_err(|e| format!("subnet of `{text}`: {e}"))?;
                if shapes[graph.output as usize] != output {
                    return Err(format!(
                        "subnet of `{text}` outputs {}, the supernet {}",
                        describe_shape(&shapes[graph.output as usize]),
                        describe_shape(&output)
                    ));
                }
                built += 1;
            }
            Err(e) if supernet.view(arch.as_slice()).has_live_path() || is_crash(&e) => {
                return Err(format!("subnet of `{text}`: {e}"));
            }
            Err(_) => dead += 1,
        }
    }
    let dead = if dead > 0 { format!(", {dead} without a live path refused") } else { String::new() };
    Ok(((), format!("{built} built and valid{dead}")))
}

fn check_default_groups(space: &SpaceBox) -> Result<((), String), String> {
    let groups = from_ffi(space.default_groups())?;
    if groups.trim().is_empty() {
        return Err("default_groups is empty (give e.g. `0-1,2,rest`)".into());
    }
    Ok(((), format!("`{groups}`")))
}

/// A rule must count every sampled architecture of every context space, the same way twice.
fn check_rule(registry: &Registry, spec: &str, contexts: &[SampledSpace], report: &mut Report) -> Result<()> {
    report.heading(&format!("rule {spec}"))?;
    let deterministic: Vec<String> = contexts.iter().map(|c| format!("deterministic on {}", c.label)).collect();
    let Some(rule) = report.check(&constructs(spec), construct(registry.rule(spec)))? else {
        let mut skipped = vec!["additive in series"];
        skipped.extend(deterministic.iter().map(String::as_str));
        return report.skip(&skipped, "the rule was not constructed");
    };
    let additive = from_ffi(rule.additive_in_series()).map(|a| ((), if a { "yes" } else { "no" }.to_string()));
    report.check("additive in series", additive)?;
    if contexts.is_empty() {
        report.fail("runs on a space", "neither the built-in nb201 nor a space of this library is available")?;
    }
    for (context, what) in contexts.iter().zip(&deterministic) {
        let result = from_ffi(context.space.counting_graph()).and_then(|graph| {
            let count_all = || -> Result<Vec<u32>, String> {
                context
                    .archs
                    .iter()
                    .map(|arch| {
                        from_ffi(rule.count(&graph, arch.as_slice().into()))
                            .or_else(|e| Err(format!("`{}`: {e}", context.text(arch)?)))
                    })
                    .collect()
            };
            let first = count_all()?;
            let second = count_all()?;
            if let Some(i) = (0..first.len()).find(|&i| first[i] != second[i]) {
                return Err(format!(
                    "not deterministic: `{}` counted {}, then {}",
                    context.text(&context.archs[i])?,
                    first[i],
                    second[i]
                ));
            }
            let range = match (first.iter().min(), first.iter().max()) {
                (Some(lo), Some(hi)) => format!("counts {lo}..={hi}"),
                _ => "no architectures".to_string(),
            };
            Ok(((), format!("{} architectures counted twice, same counts ({range})", first.len())))
        });
        report.check(what, result)?;
    }
    Ok(())
}

/// Lists as skipped the checks `what` of a context space that cannot be planned.
fn skip_unplannable(report: &mut Report, context: &SampledSpace, what: &[&str]) -> Result<()> {
    let checks: Vec<String> = what.iter().map(|w| format!("{w} {}", context.label)).collect();
    let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    report.skip(&checks, &format!("the supernet graph of {} failed", context.label))
}

/// A splitter must construct with its parameters, and plan every context space: sizes that add
/// up to the space's size, and a subspace for every sampled architecture, the same one when
/// asked twice.
fn check_splitter(registry: &Registry, spec: &str, contexts: &[SampledSpace], options: &CheckOptions, report: &mut Report) -> Result<()> {
    const PER_CONTEXT: [&str; 2] = ["plans", "assigns every sampled architecture of"];
    report.heading(&format!("splitter {spec}"))?;
    let fresh = || construct(registry.splitter(spec));
    let Some(splitter) = report.check(&constructs(spec), fresh())? else {
        let mut skipped = vec!["says what it reads".to_string()];
        skipped.extend(contexts.iter().flat_map(|c| PER_CONTEXT.map(|w| format!("{w} {}", c.label))));
        return report.skip(&skipped.iter().map(String::as_str).collect::<Vec<_>>(), "the splitter was not constructed");
    };
    report.check("says what it reads", from_ffi(splitter.key()).map(|key| ((), format!("{key:?}"))))?;
    drop(splitter);
    for context in contexts {
        if !context.plannable {
            skip_unplannable(report, context, &PER_CONTEXT)?;
            continue;
        }
        let plan = fresh().and_then(|(splitter, _)| plan_on(registry, context, splitter, options));
        let Some(plan) = report.check(&format!("plans {}", context.label), plan.and_then(|plan| {
            let sum: u128 = plan.subspaces().iter().map(|s| s.size).sum();
            if plan.exact() && sum != plan.total() {
                return Err(format!("subspace sizes add up to {sum}, the space has {}", plan.total()));
            }
            let detail = format!(
                "{} subspaces, sizes {} ({}) add up to {}",
                plan.subspaces().len(),
                plan.subspaces().iter().map(|s| s.size.to_string()).collect::<Vec<_>>().join(" / "),
                plan.method().name(),
                plan.total()
            );
            Ok((plan, detail))
        }))?
        else {
            let what = format!("assigns every sampled architecture of {}", context.label);
            report.skip(&[&what], &format!("the splitter did not plan {}", context.label))?;
            continue;
        };
        let covered = context.archs.iter().try_fold(0usize, |n, arch| {
            let text = context.text(arch)?;
            let first = plan.info(arch).map_err(|e| format!("`{text}`: {e}"))?;
            let again = plan.info(arch).map_err(|e| format!("`{text}`: {e}"))?;
            if first.subspace as usize >= plan.subspaces().len() {
                return Err(format!("`{text}` was assigned to subspace {}, the plan has {}", first.subspace, plan.subspaces().len()));
            }
            if first.subspace != again.subspace {
                return Err(format!("not deterministic: `{text}` went to subspace {}, then {}", first.subspace, again.subspace));
            }
            Ok(n + 1)
        });
        report.check(
            &format!("assigns every sampled architecture of {}", context.label),
            covered.map(|n| ((), format!("{n} architectures, each to one existing subspace, the same twice"))),
        )?;
    }
    Ok(())
}

/// Steps a sampler is run for on each context space.
const SAMPLER_STEPS: usize = 200;

/// A sampler must construct with its parameters, accept the state another saved, and on every
/// context space (split by the built-in `nonlin` splitter) pick only architectures of the
/// subspaces it names.
fn check_sampler(registry: &Registry, spec: &str, contexts: &[SampledSpace], options: &CheckOptions, report: &mut Report) -> Result<()> {
    const PER_CONTEXT: [&str; 1] = ["picks architectures of the subspaces it names on"];
    report.heading(&format!("sampler {spec}"))?;
    let fresh = || construct(registry.sampler(spec));
    let Some(sampler) = report.check(&constructs(spec), fresh())? else {
        let mut skipped = vec!["state survives save and load".to_string()];
        skipped.extend(contexts.iter().flat_map(|c| PER_CONTEXT.map(|w| format!("{w} {}", c.label))));
        return report.skip(&skipped.iter().map(String::as_str).collect::<Vec<_>>(), "the sampler was not constructed");
    };
    let restored = from_ffi(sampler.save_state()).and_then(|state| {
        let (mut other, _) = fresh()?;
        from_ffi(other.load_state(RStr::from_str(&state)))?;
        let again = from_ffi(other.save_state())?;
        if again != state {
            return Err(format!("saved `{state}`, restored and saved again `{again}`"));
        }
        Ok(((), if state.is_empty() { "stateless".to_string() } else { format!("state `{state}`") }))
    });
    report.check("state survives save and load", restored)?;
    for context in contexts {
        if !context.plannable {
            skip_unplannable(report, context, &PER_CONTEXT)?;
            continue;
        }
        let result = registry
            .splitter("nonlin")
            .map_err(|e| format!("{e:#}"))
            .and_then(|splitter| plan_on(registry, context, splitter, options))
            .and_then(|plan| {
                let (mut sampler, _) = fresh()?;
                let mut drawer = plan.drawer(Rng::stream(options.seed, "plugins-check-sampler"));
                let mut per_subspace = vec![0usize; plan.subspaces().len()];
                for step in 0..SAMPLER_STEPS {
                    let picks = drawer.draw_step(&mut sampler).map_err(|e| format!("step {step}: {e}"))?;
                    if picks.is_empty() {
                        return Err(format!("step {step} picked nothing to train"));
                    }
                    for pick in picks {
                        per_subspace[pick.subspace as usize] += 1;
                    }
                }
                let counts: Vec<String> = per_subspace.iter().map(usize::to_string).collect();
                Ok(((), format!("{SAMPLER_STEPS} steps, picks per subspace {}", counts.join(" / "))))
            });
        report.check(&format!("{} {}", PER_CONTEXT[0], context.label), result)?;
    }
    Ok(())
}

/// Plans a context space with the built-in `enn` rule and the given splitter.
fn plan_on(registry: &Registry, context: &SampledSpace, splitter: SplitterBox, options: &CheckOptions) -> Result<Plan, String> {
    let space = registry.space(&context.spec).map_err(|e| format!("{e:#}"))?;
    let rule = registry.rule("enn").map_err(|e| format!("{e:#}"))?;
    Plan::build(space, rule, splitter, PlanOptions { seed: options.seed, ..PlanOptions::default() }).map_err(|e| e.to_string())
}
