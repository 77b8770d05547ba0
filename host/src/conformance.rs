//! `fewshot plugins check LIB`: the conformance checks a plugin library must pass.
//!
//! The library is loaded on its own, with the built-in plugins as context (a rule is run on the
//! built-in `nb201` space too). Every plugin gets one check function per kind; each check prints
//! one `PASS` or `FAIL` line with its reason, and a failure of a check that later ones depend on
//! (e.g. construction) skips the rest for that plugin.

use std::{collections::HashSet, path::Path};

use anyhow::{bail, Result};
use fewshot_core::{
    plan::{Plan, PlanOptions},
    rng::Rng,
};
use fewshot_sdk::{
    abi_stable::std_types::{RStr, RString},
    ffi::{FfiResult, SpaceBox, SplitterBox},
    graph::Shape,
    guard::CRASH_PREFIX,
    space_size, Arch, Graph, PluginKind, Slot,
};

use crate::{
    output::print,
    registry::{Origin, Registered, Registry},
};

/// How thoroughly to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Architectures sampled per search space.
    pub samples: usize,
    /// Seed of the samples.
    pub seed: u64,
}

/// Subnet graphs materialised per space (each can be as large as the supernet).
const SUBNET_CHECKS: usize = 20;

/// Texts no space should accept as an architecture.
const MALFORMED: [&str; 5] = ["", "?", "not an architecture", "\u{0}\u{1}\u{2}", "||||++||||"];

/// Loads `path` next to the built-ins and checks every plugin it exports; fails when any
/// check fails.
pub fn check_library(path: &Path, options: &CheckOptions) -> Result<()> {
    let mut registry = Registry::builtins()?;
    let sdk_version = registry.load_library(path)?;
    let origin = Origin::Library(path.to_path_buf());
    let mine = |kind: PluginKind| -> Vec<&Registered> {
        registry.plugins().iter().filter(|p| p.origin == origin && p.kind == kind).collect()
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
    for plugin in mine(PluginKind::Space) {
        if let Some(sampled) = check_space(&registry, plugin, options, &mut report)? {
            library_spaces.push(sampled);
        }
    }
    let mut contexts = Vec::new();
    let builtin_nb201 = registry.find(PluginKind::Space, "nb201").is_some_and(|p| p.origin == Origin::Builtin);
    let needs_context = [PluginKind::Rule, PluginKind::Splitter, PluginKind::Sampler].iter().any(|&k| !mine(k).is_empty());
    if builtin_nb201 && needs_context {
        let space = registry.space("nb201")?;
        match SampledSpace::sample("built-in nb201", "nb201", space, options) {
            Ok(sampled) => contexts.push(sampled),
            Err(e) => bail!("the built-in nb201 space cannot be sampled: {e}"),
        }
    }
    contexts.extend(library_spaces);
    for plugin in mine(PluginKind::Rule) {
        check_rule(&registry, plugin, &contexts, &mut report)?;
    }
    for plugin in mine(PluginKind::Splitter) {
        check_splitter(&registry, plugin, &contexts, options, &mut report)?;
    }
    for plugin in mine(PluginKind::Sampler) {
        check_sampler(&registry, plugin, &contexts, options, &mut report)?;
    }

    report.line(&format!("\n{} checks: {} passed, {} failed", report.passed + report.failed, report.passed, report.failed))?;
    if report.failed > 0 {
        bail!(
            "{} of {} checks failed for {}",
            report.failed,
            report.passed + report.failed,
            path.display()
        );
    }
    Ok(())
}

/// The check lines printed so far, and their tally.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
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

    /// Records `result` as one check; returns the value when it passed.
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
}

/// A call across the boundary as a `Result`.
fn call<T>(result: FfiResult<T>) -> Result<T, String> {
    result.into_result().map_err(RString::into_string)
}

/// Whether an error is a panic the SDK's guard caught, rather than an ordinary refusal.
fn is_crash(error: &str) -> bool {
    error.starts_with(CRASH_PREFIX)
}

/// Constructs a plugin with its default parameters (no parameter string).
fn with_defaults<T>(made: Result<T>) -> Result<(T, String), String> {
    made.map(|plugin| (plugin, String::new())).map_err(|e| format!("{e:#}"))
}

/// A constructed space with a seeded sample of its valid architectures.
struct SampledSpace {
    label: String,
    /// The registry spec that constructs the space again.
    spec: String,
    /// Whether its supernet graph passed, so splitters and samplers can be planned on it.
    plannable: bool,
    space: SpaceBox,
    slots: Vec<Slot>,
    /// Valid sampled architectures, in sampling order.
    archs: Vec<Arch>,
    /// How many were sampled in all (valid or not).
    drawn: usize,
    /// The first rejected architecture and the reason, if any was rejected.
    first_rejected: Option<(Arch, String)>,
}

impl SampledSpace {
    /// Draws `options.samples` architectures uniformly over the product of the slots and keeps
    /// those `validate` accepts.
    fn sample(label: &str, spec: &str, space: SpaceBox, options: &CheckOptions) -> Result<SampledSpace, String> {
        let slots = call(space.slots())?.into_vec();
        if slots.is_empty() || slots.iter().any(|s| s.options.is_empty()) {
            return Err("the space has an empty slot list or a slot without options".into());
        }
        let mut rng = Rng::stream(options.seed, "plugins-check");
        let mut archs = Vec::new();
        let mut first_rejected = None;
        for _ in 0..options.samples {
            let arch = Arch::new(slots.iter().map(|s| rng.below(s.options.len() as u64) as u32).collect());
            match call(space.validate(&arch)) {
                Ok(()) => archs.push(arch),
                Err(e) if is_crash(&e) => return Err(e),
                Err(e) => {
                    first_rejected.get_or_insert((arch, e));
                }
            }
        }
        Ok(SampledSpace { label: label.to_string(), spec: spec.to_string(), plannable: true, space, slots, archs, drawn: options.samples, first_rejected })
    }

    fn text(&self, arch: &Arch) -> String {
        call(self.space.format(arch)).map_or_else(|_| format!("{:?}", arch.as_slice()), RString::into_string)
    }
}

/// Checks a search space; returns it with its samples when it can serve as a rule's context.
fn check_space(
    registry: &Registry,
    plugin: &Registered,
    options: &CheckOptions,
    report: &mut Report,
) -> Result<Option<SampledSpace>> {
    report.heading(&format!("space {}", plugin.entry.name))?;
    let made = with_defaults(registry.space(&plugin.entry.name));
    let Some(space) = report.check("constructs with default parameters", made)? else {
        return Ok(None);
    };
    let slots = report.check("slots", call(space.slots()).and_then(|slots| check_slots(&slots.into_vec())))?;
    if slots.is_none() {
        return Ok(None);
    }
    let sampled = SampledSpace::sample(&plugin.entry.name, &plugin.entry.name, space, options);
    let Some(sampled) = report.check("validate", sampled.and_then(|s| {
        let detail = format!("accepts {} of {} sampled architectures", s.archs.len(), s.drawn);
        match (&s.first_rejected, s.archs.is_empty()) {
            (Some((arch, why)), true) => Err(format!(
                "rejects all {} sampled architectures (e.g. `{}`: {why})",
                s.drawn,
                s.text(arch)
            )),
            _ => Ok((s, detail)),
        }
    }))?
    else {
        return Ok(None);
    };

    let round_trip = report.check("text form round-trips", check_round_trip(&sampled))?;
    report.check("parse rejects malformed text", check_malformed(&sampled))?;
    let supernet = report.check("supernet graph", call(sampled.space.supernet_graph()).and_then(|g| check_graph(g, &sampled.slots, &[1.0, 2.0])))?;
    let counting = report.check(
        "counting graph",
        call(sampled.space.counting_graph()).and_then(|g| check_graph(g, &sampled.slots, &[1.0, 2.0])),
    )?;
    if let Some(supernet) = &supernet {
        report.check("subnet graphs", check_subnets(&sampled, supernet))?;
    }
    report.check("default groups and slot layout", {
        call(sampled.space.default_groups()).and_then(|groups| {
            let in_series = call(sampled.space.slots_in_series())?;
            if groups.trim().is_empty() {
                return Err("default_groups is empty (give e.g. `0-1,2,rest`)".into());
            }
            Ok(((), format!("groups `{groups}`, slots in series: {}", if in_series { "yes" } else { "no" })))
        })
    })?;
    let mut sampled = sampled;
    sampled.plannable = supernet.is_some();
    Ok((round_trip.is_some() && counting.is_some()).then_some(sampled))
}

fn check_slots(slots: &[Slot]) -> Result<((), String), String> {
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
    let size = space_size(slots);
    let size = if size < 1e15 { format!("{size:.0}") } else { format!("{size:.3e}") };
    Ok(((), format!("{} slots, {size} architectures", slots.len())))
}

fn check_round_trip(s: &SampledSpace) -> Result<((), String), String> {
    for arch in &s.archs {
        let text = call(s.space.format(arch)).map_err(|e| format!("format {:?}: {e}", arch.as_slice()))?;
        let back = call(s.space.parse(RStr::from_str(&text))).map_err(|e| format!("`{text}` does not parse: {e}"))?;
        if &back != arch {
            return Err(format!(
                "{:?} formats as `{text}`, which parses back as {:?}",
                arch.as_slice(),
                back.as_slice()
            ));
        }
    }
    Ok(((), format!("{} architectures", s.archs.len())))
}

fn check_malformed(s: &SampledSpace) -> Result<((), String), String> {
    for text in MALFORMED {
        match call(s.space.parse(RStr::from_str(text))) {
            Ok(arch) => {
                return Err(format!("parse accepts {text:?} as {:?}", arch.as_slice()));
            }
            Err(e) if is_crash(&e) => return Err(format!("parse of {text:?}: {e}")),
            Err(_) => {}
        }
    }
    Ok(((), format!("{} inputs", MALFORMED.len())))
}

/// A graph must be structurally valid and have static shapes at each channel divisor. (The
/// supernet is checked at full and half width; the counting graph only at full width: rules
/// read its structure, and its input may be a feature map whose channels do not scale.)
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
    let detail = format!(
        "{} nodes, valid, shapes at channel divisor {}, output {output}",
        graph.nodes.len(),
        divisors.join(" and ")
    );
    Ok((graph, detail))
}

fn describe_shape(shape: &Shape) -> String {
    match shape {
        Shape::Map { channels, height, width } => format!("{channels}x{height}x{width}"),
        Shape::Vector { features } => format!("{features} features"),
    }
}

/// Subnet graphs of sampled architectures are valid, with the supernet's output shape; a space
/// may refuse to build one only for an architecture without a live input→output path.
fn check_subnets(s: &SampledSpace, supernet: &Graph) -> Result<((), String), String> {
    let output = supernet.shapes(1.0)?[supernet.output as usize];
    let (mut built, mut dead) = (0, 0);
    for arch in s.archs.iter().take(SUBNET_CHECKS) {
        let text = s.text(arch);
        match call(s.space.subnet_graph(arch)) {
            Ok(graph) => {
                graph.validate(&s.slots).map_err(|e| format!("subnet of `{text}`: {e}"))?;
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

/// A rule must count every sampled architecture of every context space, the same way twice.
fn check_rule(registry: &Registry, plugin: &Registered, contexts: &[SampledSpace], report: &mut Report) -> Result<()> {
    report.heading(&format!("rule {}", plugin.entry.name))?;
    let made = with_defaults(registry.rule(&plugin.entry.name));
    let Some(rule) = report.check("constructs with default parameters", made)? else {
        return Ok(());
    };
    let additive = call(rule.additive_in_series()).map(|a| ((), if a { "yes" } else { "no" }.to_string()));
    report.check("additive in series", additive)?;
    if contexts.is_empty() {
        report.fail("runs on a space", "neither the built-in nb201 nor a space of this library is available")?;
    }
    for context in contexts {
        let result = call(context.space.counting_graph()).and_then(|graph| {
            let count_all = || -> Result<Vec<u32>, String> {
                context
                    .archs
                    .iter()
                    .map(|arch| {
                        call(rule.count(&graph, arch.as_slice().into()))
                            .map_err(|e| format!("`{}`: {e}", context.text(arch)))
                    })
                    .collect()
            };
            let first = count_all()?;
            let second = count_all()?;
            if let Some(i) = (0..first.len()).find(|&i| first[i] != second[i]) {
                return Err(format!(
                    "not deterministic: `{}` counted {}, then {}",
                    context.text(&context.archs[i]),
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
        report.check(&format!("deterministic on {}", context.label), result)?;
    }
    Ok(())
}

/// A splitter must construct with its default parameters, and plan every context space: sizes
/// that add up to the space's size, and a subspace for every sampled architecture, the same one
/// when asked twice.
fn check_splitter(registry: &Registry, plugin: &Registered, contexts: &[SampledSpace], options: &CheckOptions, report: &mut Report) -> Result<()> {
    report.heading(&format!("splitter {}", plugin.entry.name))?;
    let fresh = || with_defaults(registry.splitter(&plugin.entry.name));
    let Some(splitter) = report.check("constructs with default parameters", fresh())? else {
        return Ok(());
    };
    report.check("says what it reads", call(splitter.key()).map(|key| ((), format!("{key:?}"))))?;
    drop(splitter);
    for context in contexts.iter().filter(|c| c.plannable) {
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
            continue;
        };
        let covered = context.archs.iter().try_fold(0usize, |n, arch| {
            let first = plan.info(arch).map_err(|e| format!("`{}`: {e}", context.text(arch)))?;
            let again = plan.info(arch).map_err(|e| format!("`{}`: {e}", context.text(arch)))?;
            if first.subspace as usize >= plan.subspaces().len() {
                return Err(format!("`{}` was assigned to subspace {}, the plan has {}", context.text(arch), first.subspace, plan.subspaces().len()));
            }
            if first.subspace != again.subspace {
                return Err(format!("not deterministic: `{}` went to subspace {}, then {}", context.text(arch), first.subspace, again.subspace));
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

/// A sampler must construct with its default parameters, accept the state another saved, and
/// on every context space (split by the built-in `nonlin` splitter) pick only architectures of
/// the subspaces it names.
fn check_sampler(registry: &Registry, plugin: &Registered, contexts: &[SampledSpace], options: &CheckOptions, report: &mut Report) -> Result<()> {
    report.heading(&format!("sampler {}", plugin.entry.name))?;
    let fresh = || with_defaults(registry.sampler(&plugin.entry.name));
    let Some(sampler) = report.check("constructs with default parameters", fresh())? else {
        return Ok(());
    };
    let restored = call(sampler.save_state()).and_then(|state| {
        let (mut other, _) = fresh()?;
        call(other.load_state(RStr::from_str(&state)))?;
        let again = call(other.save_state())?;
        if again != state {
            return Err(format!("saved `{state}`, restored and saved again `{again}`"));
        }
        Ok(((), if state.is_empty() { "stateless".to_string() } else { format!("state `{state}`") }))
    });
    report.check("state survives save and load", restored)?;
    for context in contexts.iter().filter(|c| c.plannable) {
        let result = registry
            .splitter("nonlin")
            .map_err(|e| format!("{e:#}"))
            .and_then(|splitter| plan_on(registry, context, splitter, options))
            .and_then(|plan| {
                let (mut sampler, _) = fresh()?;
                let mut drawer = plan.drawer(Rng::stream(options.seed, "plugins-check-sampler"));
                let mut per_subspace = vec![0usize; plan.subspaces().len()];
                for step in 0..SAMPLER_STEPS {
                    let picks = drawer.step(&mut sampler).map_err(|e| format!("step {step}: {e}"))?;
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
        report.check(&format!("picks architectures of the subspaces it names on {}", context.label), result)?;
    }
    Ok(())
}

/// Plans a context space with the built-in `enn` rule and the given splitter.
fn plan_on(registry: &Registry, context: &SampledSpace, splitter: SplitterBox, options: &CheckOptions) -> Result<Plan, String> {
    let space = registry.space(&context.spec).map_err(|e| format!("{e:#}"))?;
    let rule = registry.rule("enn").map_err(|e| format!("{e:#}"))?;
    Plan::build(space, rule, splitter, PlanOptions { seed: options.seed, ..PlanOptions::default() })
}
