//! The partition of a search space before training: subspaces, their sizes and metric ranges,
//! and exact uniform draws within them.
//!
//! [`Plan::build`] sizes the subspaces a splitter defines by one of three methods:
//! - **enumeration** when the space has at most [`ENUMERATION_LIMIT`] architectures: every
//!   architecture is validated, counted, costed and assigned;
//! - **dynamic programming** for bigger spaces whose slots lie in series and whose counting rule
//!   is additive there (MobileNet with `enn`): the count is a constant plus one contribution per
//!   slot (measured per option and verified on [`VERIFY_SAMPLE`] random architectures — a
//!   violation is an error), so the number of architectures with each count is an exact `u128`
//!   and draws are exact uniform by backward sampling. Used for splitters keyed by the count.
//!   Architectures the space's `validate` rejects are left out of the sizes: spaces of up to
//!   [`SERIES_VALIDATION_LIMIT`] architectures have every one validated (and draws skip the
//!   rejected ones); above that the plan assumes every architecture is valid and says so
//!   ([`Plan::assumption`]);
//! - **estimation** otherwise: a seeded uniform sample of [`ESTIMATE_SAMPLE`] architectures gives
//!   estimated sizes, and draws are by rejection.
//!
//! "Trash" architectures (no live input→output path in the counting graph; NB201 has 341) count
//! in the sizes but are never drawn unless [`PlanOptions::include_trash`] is set.

use std::collections::BTreeMap;

use fewshot_sdk::abi_stable::sabi_trait::TD_Opaque;
use fewshot_sdk::abi_stable::std_types::{RSlice, RString};
use fewshot_sdk::ffi::{DrawForPlugin, FfiArchDraw_TO, RuleBox, SamplerBox, SpaceBox, SplitterBox};
use fewshot_sdk::{Arch, ArchDraw, ArchMetrics, Graph, Pick, PlanContext, Slot, SplitKey, ValueWeight};

use crate::space::cost::{Cost, CostModel};
use crate::space::odometer::{next_arch, product_size};
use crate::space::liveness::Liveness;
use crate::util::rng::Rng;
use crate::space::series::{below_u128, SeriesCounter};

/// Spaces with at most this many architectures are enumerated.
pub const ENUMERATION_LIMIT: u128 = 1_000_000;
/// Random architectures on which the additive decomposition of the count is verified.
pub const VERIFY_SAMPLE: usize = 2_000;
/// Series spaces sized by dynamic programming with at most this many architectures have every
/// architecture validated, so that their sizes leave out the rejected ones.
pub const SERIES_VALIDATION_LIMIT: u128 = 1 << 24;
/// A series space that rejects more architectures than this is estimated instead.
pub const MAX_SERIES_REJECTS: usize = 100_000;
/// Size of the uniform sample behind estimated plans.
pub const ESTIMATE_SAMPLE: usize = 100_000;
/// Rejection sampling gives up after this many tries.
pub const MAX_REJECTION_TRIES: u64 = 1_000_000;

/// How subspace sizes are obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Every architecture enumerated (exact).
    Enumeration,
    /// Dynamic programming over per-slot count contributions (exact).
    DynamicProgramming,
    /// Estimated from a uniform sample of [`ESTIMATE_SAMPLE`] architectures.
    Estimate,
}

impl Method {
    /// A short name: `enumeration`, `dynamic programming`, `estimate`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Enumeration => "enumeration",
            Method::DynamicProgramming => "dynamic programming",
            Method::Estimate => "estimate",
        }
    }
}

/// Options of [`Plan::build`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// The run's seed: fixes the splitter's randomness and the planning samples.
    pub seed: u64,
    /// Whether trash architectures may be drawn for training.
    pub include_trash: bool,
    /// Force a sizing method (`None`: the best that applies).
    pub method: Option<Method>,
}

/// One subspace of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SubspacePlan {
    /// Subspace (= supernet) index.
    pub id: u32,
    /// The splitter's label.
    pub label: String,
    /// Number of architectures (trash included); estimated when the plan is not exact.
    pub size: u128,
    /// Number of architectures that may be drawn for training.
    pub trainable: u128,
    /// Smallest and largest count (0, 0 when empty).
    pub count_range: (u32, u32),
    /// Smallest and largest FLOPs in millions at full width.
    pub flops_m_range: (f64, f64),
    /// Smallest and largest parameter count in millions at full width.
    pub params_m_range: (f64, f64),
}

/// What the plan knows about one architecture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchInfo {
    /// The counting rule's count.
    pub count: u32,
    /// FLOPs in millions at full width.
    pub flops_m: f64,
    /// Parameters in millions at full width.
    pub params_m: f64,
    /// No live input→output path.
    pub trash: bool,
    /// The subspace the splitter assigns.
    pub subspace: u32,
}

// A result that crossed the ABI, as a `Result` with the message as error (the SDK's conversion).
use fewshot_sdk::ffi::from_ffi as ffi;

/// Running totals of one subspace while planning.
#[derive(Clone, Debug, Default)]
struct Tally {
    size: u128,
    trash: u128,
    count: Option<(u32, u32)>,
    flops: Option<(u64, u64)>,
    params: Option<(u64, u64)>,
}

fn widen<T: Ord + Copy>(range: &mut Option<(T, T)>, lo: T, hi: T) {
    *range = Some(match *range {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    });
}

impl Tally {
    fn add(&mut self, count: u32, cost: Cost, trash: bool, weight: u128) {
        self.size += weight;
        if trash {
            self.trash += weight;
        }
        widen(&mut self.count, count, count);
        widen(&mut self.flops, cost.flops, cost.flops);
        widen(&mut self.params, cost.params, cost.params);
    }
}

/// One enumerated architecture.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// [`INVALID`] when the space rejects the architecture.
    subspace: u32,
    trash: bool,
}

/// Count, cost and trash flag of an enumerated architecture; `None` when the space rejects it.
type Measurement = Option<(u32, Cost, bool)>;

/// Measurements of a range of architectures and the space's first rejection message.
type Measurements = (Vec<Measurement>, Option<String>);

/// Enumeration gives each thread at least this many architectures.
const MIN_CHUNK: usize = 4096;

const INVALID: u32 = u32::MAX;

/// How draws are made.
enum Index {
    /// Every architecture, indexed in odometer order, with the drawable ones per subspace.
    Enumerated { entries: Vec<Entry>, pools: Vec<Vec<u32>> },
    /// Exact draws through the count DP: per subspace the counts it holds and their weights.
    Series { counter: SeriesCounter, subspace_of_count: BTreeMap<u32, u32>, weights: Vec<Vec<(u32, u128)>> },
    /// Rejection sampling.
    Rejection,
}

/// The partition of a space into subspaces, ready to draw architectures from.
pub struct Plan {
    space: SpaceBox,
    rule: RuleBox,
    splitter: SplitterBox,
    slots: Vec<Slot>,
    radices: Vec<u32>,
    supernet: Graph,
    counting: Graph,
    liveness: Liveness,
    costs: CostModel,
    key: SplitKey,
    method: Method,
    subspaces: Vec<SubspacePlan>,
    total: u128,
    trash: u128,
    include_trash: bool,
    index: Index,
    assumption: Option<String>,
}

/// What planning computed before the splitter saw the space.
struct Measured {
    distribution: Vec<ValueWeight>,
    exact: bool,
}

impl Plan {
    /// Partitions the space: sizes every subspace (see the module docs for the method).
    pub fn build(space: SpaceBox, rule: RuleBox, splitter: SplitterBox, opts: PlanOptions) -> Result<Plan, String> {
        let slots = ffi(space.slots())?.into_vec();
        let radices: Vec<u32> = slots.iter().map(|s| s.options.len() as u32).collect();
        if let Some((i, s)) = slots.iter().enumerate().find(|(_, s)| s.options.is_empty()) {
            return Err(format!("slot {i} ({}) has no options", s.name));
        }
        let supernet = ffi(space.supernet_graph())?;
        supernet.validate(&slots).map_err(|e| format!("the space's supernet graph is invalid: {e}"))?;
        let counting = ffi(space.counting_graph())?;
        counting.validate(&slots).map_err(|e| format!("the space's counting graph is invalid: {e}"))?;
        let liveness = Liveness::new(&counting, &radices)?;
        let costs = CostModel::new(&supernet, 1.0)?;
        let key = ffi(splitter.key())?;
        let total = product_size(&radices).ok_or("the space has more than 2^128 architectures")?;
        let mut plan = Plan {
            space,
            rule,
            splitter,
            slots,
            radices,
            supernet,
            counting,
            liveness,
            costs,
            key,
            method: Method::Estimate,
            subspaces: Vec::new(),
            total,
            trash: 0,
            include_trash: opts.include_trash,
            index: Index::Rejection,
            assumption: None,
        };
        let series_ok = || -> Result<bool, String> {
            Ok(ffi(plan.space.slots_in_series())? && ffi(plan.rule.additive_in_series())? && key == SplitKey::Count)
        };
        let method = match opts.method {
            Some(m) => m,
            None if total <= ENUMERATION_LIMIT => Method::Enumeration,
            None if series_ok()? => Method::DynamicProgramming,
            None => Method::Estimate,
        };
        match method {
            Method::Enumeration => {
                if total > ENUMERATION_LIMIT {
                    return Err(format!("the space has {total} architectures, too many to enumerate (limit {ENUMERATION_LIMIT})"));
                }
                plan.enumerate(opts)?;
            }
            Method::DynamicProgramming => {
                if !series_ok()? {
                    return Err("dynamic programming needs a space whose slots lie in series, a rule additive in series and a splitter keyed by the count".into());
                }
                if let Err(why) = plan.series(opts)? {
                    if opts.method.is_some() {
                        return Err(format!("dynamic programming does not apply: {why}"));
                    }
                    plan.estimate(opts)?;
                }
            }
            Method::Estimate => plan.estimate(opts)?,
        }
        Ok(plan)
    }

    /// The subspaces, by id.
    pub fn subspaces(&self) -> &[SubspacePlan] {
        &self.subspaces
    }

    /// The space's slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Number of options of each slot.
    pub fn option_counts(&self) -> &[u32] {
        &self.radices
    }

    /// The search space.
    pub fn space(&self) -> &SpaceBox {
        &self.space
    }

    /// The space's supernet graph.
    pub fn supernet_graph(&self) -> &Graph {
        &self.supernet
    }

    /// The space's counting graph.
    pub fn counting_graph(&self) -> &Graph {
        &self.counting
    }

    /// Full-width costs of the space's subnets.
    pub fn costs(&self) -> &CostModel {
        &self.costs
    }

    /// How the sizes were obtained.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether sizes are exact (enumeration or dynamic programming) rather than estimated.
    pub fn exact(&self) -> bool {
        self.method != Method::Estimate
    }

    /// Number of architectures in the space (estimated when the space rejects some and the plan
    /// is not exact).
    pub fn total(&self) -> u128 {
        self.total
    }

    /// What exact sizes assume that planning could not check, if anything (a series space too
    /// big to validate every architecture is assumed to accept them all).
    pub fn assumption(&self) -> Option<&str> {
        self.assumption.as_deref()
    }

    /// Number of trash architectures (estimated when the plan is not exact).
    pub fn trash(&self) -> u128 {
        self.trash
    }

    /// The count DP behind an exact plan of a series space.
    pub fn series_counter(&self) -> Option<&SeriesCounter> {
        match &self.index {
            Index::Series { counter, .. } => Some(counter),
            _ => None,
        }
    }

    /// Parses an architecture's text form and checks it belongs to the space.
    pub fn parse(&self, text: &str) -> Result<Arch, String> {
        let arch = ffi(self.space.parse(text.into()))?;
        self.check(&arch)?;
        Ok(arch)
    }

    /// The text form of an architecture.
    pub fn format(&self, arch: &Arch) -> Result<String, String> {
        ffi(self.space.format(arch)).map(RString::into_string)
    }

    /// Checks slot ranges and the space's own validity rules.
    fn check(&self, arch: &Arch) -> Result<(), String> {
        arch.check_against(&self.slots)?;
        ffi(self.space.validate(arch))
    }

    fn count(&self, arch: &[u32]) -> Result<u32, String> {
        ffi(self.rule.count(&self.counting, RSlice::from_slice(arch))).map_err(|e| {
            let text = self.format(&Arch::new(arch.to_vec())).unwrap_or_else(|_| format!("{arch:?}"));
            format!("counting rule failed on {text}: {e}")
        })
    }

    fn is_trash(&self, arch: &[u32]) -> bool {
        !self.liveness.has_live_path(arch)
    }

    fn assign(&self, arch: &Arch, count: u32, cost: Cost) -> Result<u32, String> {
        let metrics = ArchMetrics { count, flops_m: cost.flops_m(), params_m: cost.params_m() };
        let k = ffi(self.splitter.assign(arch, &metrics))?;
        if k as usize >= self.subspaces.len() {
            return Err(format!(
                "the splitter put {} in subspace {k}, but planned only {} subspaces",
                self.format(arch)?,
                self.subspaces.len()
            ));
        }
        Ok(k)
    }

    /// Validates an architecture, then computes its metrics and subspace.
    pub fn info(&self, arch: &Arch) -> Result<ArchInfo, String> {
        self.check(arch)?;
        let count = self.count(arch.as_slice())?;
        let cost = self.costs.cost(arch.as_slice());
        let subspace = self.assign(arch, count, cost)?;
        Ok(ArchInfo {
            count,
            flops_m: cost.flops_m(),
            params_m: cost.params_m(),
            trash: self.is_trash(arch.as_slice()),
            subspace,
        })
    }

    /// A drawer of architectures for samplers, with its own generator.
    pub fn drawer(&self, rng: Rng) -> PlanDrawer<'_> {
        PlanDrawer { plan: self, rng }
    }

    /// Hands the distribution to the splitter and records its subspaces (sizes still empty).
    fn prepare(&mut self, measured: Measured, seed: u64) -> Result<(), String> {
        let ctx = PlanContext {
            slots: self.slots.clone().into(),
            default_groups: ffi(self.space.default_groups())?,
            distribution: measured.distribution.into(),
            exact: measured.exact,
            seed,
        };
        let labels = ffi(self.splitter.prepare(&ctx))?;
        if labels.is_empty() {
            return Err("the splitter planned no subspace".into());
        }
        self.subspaces = labels
            .iter()
            .enumerate()
            .map(|(id, l)| SubspacePlan {
                id: id as u32,
                label: l.label.to_string(),
                size: 0,
                trainable: 0,
                count_range: (0, 0),
                flops_m_range: (0.0, 0.0),
                params_m_range: (0.0, 0.0),
            })
            .collect();
        Ok(())
    }

    /// Fills sizes and ranges from per-subspace tallies.
    fn finish(&mut self, tallies: &[Tally]) {
        for (sub, t) in self.subspaces.iter_mut().zip(tallies) {
            sub.size = t.size;
            sub.trainable = if self.include_trash { t.size } else { t.size - t.trash };
            sub.count_range = t.count.unwrap_or((0, 0));
            let m = |r: Option<(u64, u64)>| r.map_or((0.0, 0.0), |(a, b)| (a as f64 / 1e6, b as f64 / 1e6));
            sub.flops_m_range = m(t.flops);
            sub.params_m_range = m(t.params);
        }
        self.trash = tallies.iter().map(|t| t.trash).sum();
    }

    /// The distribution of the splitter's key over weighted (count, cost) observations.
    fn distribution(&self, observed: impl Iterator<Item = (u32, Cost, f64)>) -> Vec<ValueWeight> {
        let mut by_value: BTreeMap<u64, f64> = BTreeMap::new();
        let key = self.key;
        for (count, cost, weight) in observed {
            let value = match key {
                SplitKey::Count => u64::from(count),
                SplitKey::Flops => cost.flops,
                SplitKey::Params => cost.params,
                _ => return Vec::new(),
            };
            *by_value.entry(value).or_default() += weight;
        }
        let scale = if key == SplitKey::Count { 1.0 } else { 1e6 };
        by_value.into_iter().map(|(v, weight)| ValueWeight { value: v as f64 / scale, weight }).collect()
    }

    /// Validates, counts, costs and checks every architecture in `start..end` (odometer order).
    fn measure_range(&self, start: usize, end: usize) -> Result<Measurements, String> {
        let mut arch = self.decode(start);
        let mut out = Vec::with_capacity(end - start);
        let mut first_rejection = None;
        for _ in start..end {
            let choices = arch.as_slice();
            out.push(match ffi(self.space.validate(&arch)) {
                Ok(()) => Some((self.count(choices)?, self.costs.cost(choices), self.is_trash(choices))),
                Err(e) => {
                    first_rejection.get_or_insert(e);
                    None
                }
            });
            next_arch(&self.radices, &mut arch.choices);
        }
        Ok((out, first_rejection))
    }

    /// [`Plan::measure_range`] over the whole space, split across the machine's cores.
    fn measure_all(&self) -> Result<Measurements, String> {
        let total = self.total as usize;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(total.div_ceil(MIN_CHUNK)).max(1);
        let chunk = total.div_ceil(threads);
        let parts: Vec<Result<Measurements, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || self.measure_range(t * chunk, ((t + 1) * chunk).min(total))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a planning thread crashed".into())))
                .collect()
        });
        let mut all = Vec::with_capacity(total);
        let mut first_rejection = None;
        for part in parts {
            let (measured, rejection) = part?;
            all.extend(measured);
            first_rejection = first_rejection.or(rejection);
        }
        Ok((all, first_rejection))
    }

    fn enumerate(&mut self, opts: PlanOptions) -> Result<(), String> {
        let (measured, first_rejection) = self.measure_all()?;
        let valid = measured.iter().flatten().count();
        if valid == 0 {
            return Err(format!("the space rejects every architecture: {}", first_rejection.unwrap_or_default()));
        }
        let distribution = self.distribution(measured.iter().flatten().map(|&(count, cost, _)| (count, cost, 1.0)));
        self.prepare(Measured { distribution, exact: true }, opts.seed)?;

        let mut tallies = vec![Tally::default(); self.subspaces.len()];
        let mut pools: Vec<Vec<u32>> = vec![Vec::new(); self.subspaces.len()];
        let mut entries: Vec<Entry> = Vec::with_capacity(measured.len());
        let mut arch = Arch::new(vec![0; self.radices.len()]);
        for (i, m) in measured.into_iter().enumerate() {
            let entry = match m {
                None => Entry { subspace: INVALID, trash: false },
                Some((count, cost, trash)) => {
                    let k = self.assign(&arch, count, cost)?;
                    tallies[k as usize].add(count, cost, trash, 1);
                    if self.include_trash || !trash {
                        pools[k as usize].push(i as u32);
                    }
                    Entry { subspace: k, trash }
                }
            };
            entries.push(entry);
            next_arch(&self.radices, &mut arch.choices);
        }
        self.total = valid as u128;
        self.method = Method::Enumeration;
        self.finish(&tallies);
        self.index = Index::Enumerated { entries, pools };
        Ok(())
    }

    /// Plans by dynamic programming. `Ok(Err(why))` when the method does not apply here (an
    /// option cuts the chain, or the space rejects some architectures); `Err` when the rule
    /// claims additivity but is not additive, or the splitter does not split by the count alone.
    fn series(&mut self, opts: PlanOptions) -> Result<Result<(), String>, String> {
        let n = self.radices.len();
        let mut arch = Arch::new(vec![0; n]);
        let usable = |plan: &Plan, arch: &Arch| -> Result<(), String> {
            ffi(plan.space.validate(arch)).map_err(|e| format!("the space rejects {}: {e}", plan.format(arch).unwrap_or_default()))?;
            if plan.is_trash(arch.as_slice()) {
                return Err(format!("{} has no live path", plan.format(arch)?));
            }
            Ok(())
        };
        if let Err(why) = usable(self, &arch) {
            return Ok(Err(why));
        }
        let reference = self.count(arch.as_slice())?;
        let mut deltas: Vec<Vec<i64>> = Vec::with_capacity(n);
        for s in 0..n {
            let mut row = vec![0i64; self.radices[s] as usize];
            for o in 1..self.radices[s] {
                arch.choices[s] = o;
                if let Err(why) = usable(self, &arch) {
                    return Ok(Err(why));
                }
                row[o as usize] = i64::from(self.count(arch.as_slice())?) - i64::from(reference);
            }
            arch.choices[s] = 0;
            deltas.push(row);
        }
        let counter = match SeriesCounter::new(reference, &deltas) {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };

        let mut rng = Rng::stream(opts.seed, "plan-verify");
        let mut checks: Vec<(Arch, u32)> = Vec::with_capacity(VERIFY_SAMPLE);
        for _ in 0..VERIFY_SAMPLE {
            let a = Arch::new(self.radices.iter().map(|&r| rng.below(u64::from(r)) as u32).collect());
            if let Err(why) = usable(self, &a) {
                return Ok(Err(why));
            }
            let count = self.count(a.as_slice())?;
            let predicted = counter.count(a.as_slice());
            if count != predicted {
                return Err(format!(
                    "the counting rule says it is additive on this series space, but {} counts {count} where the per-slot contributions give {predicted}",
                    self.format(&a)?
                ));
            }
            checks.push((a, count));
        }

        let valid = if self.total <= SERIES_VALIDATION_LIMIT {
            let rejected = match self.rejected()? {
                Ok(rejected) => rejected,
                Err(why) => return Ok(Err(why)),
            };
            valid_distribution(&counter, &rejected)
        } else {
            self.assumption = Some(format!(
                "every architecture is valid (validate accepted all {VERIFY_SAMPLE} sampled; the space's {} architectures are too many to validate each)",
                self.total
            ));
            counter.distribution()
        };
        self.total = valid.iter().map(|&(_, w)| w).sum();
        let distribution = valid.iter().map(|&(c, w)| ValueWeight { value: f64::from(c), weight: w as f64 }).collect();
        self.prepare(Measured { distribution, exact: true }, opts.seed)?;

        let mut subspace_of_count: BTreeMap<u32, u32> = BTreeMap::new();
        for &(count, _) in &valid {
            let first = Arch::new(counter.first(count));
            let k = self.assign(&first, count, self.costs.cost(first.as_slice()))?;
            subspace_of_count.insert(count, k);
        }
        for (a, count) in &checks {
            let k = self.assign(a, *count, self.costs.cost(a.as_slice()))?;
            if k != subspace_of_count[count] {
                return Err(format!(
                    "the splitter declares it splits by the count, but puts {} (count {count}) in subspace {k} and {} (same count) in subspace {}",
                    self.format(a)?,
                    self.format(&Arch::new(counter.first(*count)))?,
                    subspace_of_count[count]
                ));
            }
        }

        let mut tallies = vec![Tally::default(); self.subspaces.len()];
        let mut weights: Vec<Vec<(u32, u128)>> = vec![Vec::new(); self.subspaces.len()];
        let cost_ranges = self.costs.per_slot().map(|(fixed, _)| {
            let table = |f: fn(Cost) -> u64| -> Vec<Vec<u64>> {
                (0..n)
                    .map(|s| (0..self.radices[s]).map(|o| f(self.costs.option_cost(s, o))).collect())
                    .collect()
            };
            (fixed, counter.extremes(&table(|c| c.flops)), counter.extremes(&table(|c| c.params)))
        });
        for &(count, ways) in &valid {
            let k = subspace_of_count[&count] as usize;
            let t = &mut tallies[k];
            t.size += ways;
            widen(&mut t.count, count, count);
            weights[k].push((count, ways));
            if let Some((fixed, flops, params)) = &cost_ranges {
                let r = (count - counter.base()) as usize;
                if let (Some((f0, f1)), Some((p0, p1))) = (flops[r], params[r]) {
                    widen(&mut t.flops, fixed.flops + f0, fixed.flops + f1);
                    widen(&mut t.params, fixed.params + p0, fixed.params + p1);
                }
            }
        }
        if cost_ranges.is_none() {
            // Costs that couple slots: ranges from the verification sample (approximate).
            for (a, count) in &checks {
                let k = subspace_of_count[count] as usize;
                let c = self.costs.cost(a.as_slice());
                widen(&mut tallies[k].flops, c.flops, c.flops);
                widen(&mut tallies[k].params, c.params, c.params);
            }
        }
        self.method = Method::DynamicProgramming;
        self.finish(&tallies);
        self.index = Index::Series { counter, subspace_of_count, weights };
        Ok(Ok(()))
    }

    /// Every architecture of a series space that `validate` rejects, validated across the
    /// machine's cores. `Ok(Err(why))` when dynamic programming does not apply: a valid
    /// architecture has no live path, or more than [`MAX_SERIES_REJECTS`] are rejected.
    fn rejected(&self) -> Result<Result<Vec<Vec<u32>>, String>, String> {
        let total = self.total as usize;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(total.div_ceil(MIN_CHUNK)).max(1);
        let chunk = total.div_ceil(threads);
        let parts: Vec<Result<Vec<Vec<u32>>, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || self.rejected_in(t * chunk, ((t + 1) * chunk).min(total))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("a planning thread crashed".into())))
                .collect()
        });
        let mut rejected = Vec::new();
        for part in parts {
            match part {
                Ok(part) => rejected.extend(part),
                Err(why) => return Ok(Err(why)),
            }
            if rejected.len() > MAX_SERIES_REJECTS {
                return Ok(Err(format!("the space rejects more than {MAX_SERIES_REJECTS} architectures")));
            }
        }
        Ok(Ok(rejected))
    }

    /// The architectures in `start..end` (odometer order) that `validate` rejects; `Err` for a
    /// valid one without a live path, or more than [`MAX_SERIES_REJECTS`] rejects.
    fn rejected_in(&self, start: usize, end: usize) -> Result<Vec<Vec<u32>>, String> {
        let mut arch = self.decode(start);
        let mut rejected = Vec::new();
        for _ in start..end {
            if ffi(self.space.validate(&arch)).is_err() {
                rejected.push(arch.choices.to_vec());
                if rejected.len() > MAX_SERIES_REJECTS {
                    return Err(format!("the space rejects more than {MAX_SERIES_REJECTS} architectures"));
                }
            } else if self.is_trash(arch.as_slice()) {
                return Err(format!("{} has no live path", self.format(&arch)?));
            }
            next_arch(&self.radices, &mut arch.choices);
        }
        Ok(rejected)
    }

    fn estimate(&mut self, opts: PlanOptions) -> Result<(), String> {
        let n = self.radices.len();
        let mut rng = Rng::stream(opts.seed, "plan-sample");
        let mut sample: Vec<(Arch, u32, Cost, bool)> = Vec::new();
        let mut first_rejection: Option<String> = None;
        for _ in 0..ESTIMATE_SAMPLE {
            let arch = Arch::new((0..n).map(|s| rng.below(u64::from(self.radices[s])) as u32).collect());
            if let Err(e) = ffi(self.space.validate(&arch)) {
                first_rejection.get_or_insert(e);
                continue;
            }
            let count = self.count(arch.as_slice())?;
            let cost = self.costs.cost(arch.as_slice());
            let trash = self.is_trash(arch.as_slice());
            sample.push((arch, count, cost, trash));
        }
        if sample.is_empty() {
            return Err(format!(
                "the space rejected all {ESTIMATE_SAMPLE} sampled architectures: {}",
                first_rejection.unwrap_or_default()
            ));
        }
        let scale = self.total as f64 / ESTIMATE_SAMPLE as f64;
        let distribution = self.distribution(sample.iter().map(|(_, count, cost, _)| (*count, *cost, scale)));
        self.prepare(Measured { distribution, exact: false }, opts.seed)?;
        let mut tallies = vec![Tally::default(); self.subspaces.len()];
        for (arch, count, cost, trash) in &sample {
            let k = self.assign(arch, *count, *cost)?;
            tallies[k as usize].add(*count, *cost, *trash, 1);
        }
        let estimate = |n: u128| (n as f64 * scale).round() as u128;
        for t in &mut tallies {
            t.size = estimate(t.size);
            t.trash = estimate(t.trash);
        }
        self.total = estimate(sample.len() as u128);
        self.method = Method::Estimate;
        self.finish(&tallies);
        self.index = Index::Rejection;
        Ok(())
    }

    /// Index of an architecture in odometer order.
    fn encode(&self, arch: &[u32]) -> usize {
        arch.iter().zip(&self.radices).fold(0usize, |acc, (&o, &r)| acc * r as usize + o as usize)
    }

    /// The architecture at an odometer index.
    fn decode(&self, mut index: usize) -> Arch {
        let mut choices = vec![0u32; self.radices.len()];
        for s in (0..self.radices.len()).rev() {
            let r = self.radices[s] as usize;
            choices[s] = (index % r) as u32;
            index /= r;
        }
        Arch::new(choices)
    }

    fn drawable(&self, trash: bool) -> bool {
        self.include_trash || !trash
    }
}

/// The count distribution of a series space without the `rejected` architectures: `(count,
/// number of valid architectures)`, ascending, counts without any left out.
fn valid_distribution(counter: &SeriesCounter, rejected: &[Vec<u32>]) -> Vec<(u32, u128)> {
    let mut rejected_per_count: BTreeMap<u32, u128> = BTreeMap::new();
    for arch in rejected {
        *rejected_per_count.entry(counter.count(arch)).or_default() += 1;
    }
    counter
        .distribution()
        .into_iter()
        .map(|(count, ways)| (count, ways - rejected_per_count.get(&count).copied().unwrap_or(0)))
        .filter(|&(_, ways)| ways > 0)
        .collect()
}

/// Draws architectures of a [`Plan`] for samplers: implements [`ArchDraw`] with a seeded,
/// checkpointable generator.
pub struct PlanDrawer<'a> {
    plan: &'a Plan,
    rng: Rng,
}

impl PlanDrawer<'_> {
    /// The generator, for checkpoints.
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Runs one step of a sampler plugin through this drawer and checks that every pick names
    /// a subspace of the plan and an architecture that belongs to it.
    pub fn step(&mut self, sampler: &mut SamplerBox) -> Result<Vec<Pick>, String> {
        let picks = {
            let mut host = DrawForPlugin(self);
            ffi(sampler.step(FfiArchDraw_TO::from_ptr(&mut host, TD_Opaque)))?.into_vec()
        };
        for pick in &picks {
            let actual = self.subspace_of(&pick.arch)?;
            if actual != Some(pick.subspace) {
                let text = self.plan.format(&pick.arch)?;
                return Err(match actual {
                    Some(k) => format!("the sampler picked {text} for subspace {}, but it belongs to subspace {k}", pick.subspace),
                    None => format!("the sampler picked {text}, which is excluded from training (trash)"),
                });
            }
        }
        Ok(picks)
    }

    fn rejection(&mut self, subspace: Option<u32>) -> Result<Pick, String> {
        let plan = self.plan;
        for _ in 0..MAX_REJECTION_TRIES {
            let arch = Arch::new(plan.radices.iter().map(|&r| self.rng.below(u64::from(r)) as u32).collect());
            if ffi(plan.space.validate(&arch)).is_err() || !plan.drawable(plan.is_trash(arch.as_slice())) {
                continue;
            }
            let count = plan.count(arch.as_slice())?;
            let k = plan.assign(&arch, count, plan.costs.cost(arch.as_slice()))?;
            if subspace.is_none_or(|want| want == k) {
                return Ok(Pick { subspace: k, arch });
            }
        }
        Err(match subspace {
            Some(k) => format!(
                "no trainable architecture of subspace {k} ({}) in {MAX_REJECTION_TRIES} uniform draws",
                plan.subspaces[k as usize].label
            ),
            None => format!("no trainable architecture in {MAX_REJECTION_TRIES} uniform draws"),
        })
    }

    /// A uniformly drawn valid architecture with `count`: drawn among all with that count, again
    /// while the space rejects it (the plan's weights leave rejected ones out, so one exists).
    fn valid_with_count(&mut self, counter: &SeriesCounter, count: u32) -> Result<Arch, String> {
        for _ in 0..MAX_REJECTION_TRIES {
            let arch = Arch::new(counter.sample(count, &mut self.rng));
            if ffi(self.plan.space.validate(&arch)).is_ok() {
                return Ok(arch);
            }
        }
        Err(format!("no valid architecture with count {count} in {MAX_REJECTION_TRIES} draws"))
    }

    /// Picks an index with probability proportional to its weight.
    fn weighted<T: Copy>(&mut self, items: impl Iterator<Item = (T, u128)> + Clone) -> Option<T> {
        let total: u128 = items.clone().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut at = below_u128(&mut self.rng, total);
        for (item, w) in items {
            if at < w {
                return Some(item);
            }
            at -= w;
        }
        None
    }

    fn empty(&self, subspace: u32) -> String {
        format!(
            "subspace {subspace} ({}) has no trainable architecture",
            self.plan.subspaces[subspace as usize].label
        )
    }
}

impl ArchDraw for PlanDrawer<'_> {
    fn subspaces(&self) -> u32 {
        self.plan.subspaces.len() as u32
    }

    fn subspace_size(&self, subspace: u32) -> f64 {
        self.plan.subspaces.get(subspace as usize).map_or(0.0, |s| s.trainable as f64)
    }

    fn option_counts(&self) -> Vec<u32> {
        self.plan.radices.clone()
    }

    fn draw(&mut self, subspace: u32) -> Result<Arch, String> {
        let plan = self.plan;
        if subspace as usize >= plan.subspaces.len() {
            return Err(format!("subspace {subspace} does not exist (the plan has {})", plan.subspaces.len()));
        }
        match &plan.index {
            Index::Enumerated { pools, .. } => {
                let pool = &pools[subspace as usize];
                if pool.is_empty() {
                    return Err(self.empty(subspace));
                }
                let i = pool[self.rng.below(pool.len() as u64) as usize];
                Ok(plan.decode(i as usize))
            }
            Index::Series { counter, weights, .. } => {
                let count = self
                    .weighted(weights[subspace as usize].iter().copied())
                    .ok_or_else(|| self.empty(subspace))?;
                self.valid_with_count(counter, count)
            }
            Index::Rejection => self.rejection(Some(subspace)).map(|p| p.arch),
        }
    }

    fn draw_any(&mut self) -> Result<Pick, String> {
        let plan = self.plan;
        match &plan.index {
            Index::Enumerated { pools, .. } => {
                let subspace = self
                    .weighted(pools.iter().enumerate().map(|(k, p)| (k as u32, p.len() as u128)))
                    .ok_or("no subspace has a trainable architecture")?;
                Ok(Pick { subspace, arch: self.draw(subspace)? })
            }
            Index::Series { counter, subspace_of_count, weights } => {
                let count = self
                    .weighted(weights.iter().flatten().copied())
                    .ok_or("no subspace has a trainable architecture")?;
                Ok(Pick { subspace: subspace_of_count[&count], arch: self.valid_with_count(counter, count)? })
            }
            Index::Rejection => self.rejection(None),
        }
    }

    fn subspace_of(&self, arch: &Arch) -> Result<Option<u32>, String> {
        let plan = self.plan;
        arch.check_against(&plan.slots)?;
        match &plan.index {
            Index::Enumerated { entries, .. } => {
                let e = entries[plan.encode(arch.as_slice())];
                if e.subspace == INVALID {
                    return Err(ffi(plan.space.validate(arch)).err().unwrap_or_else(|| "not in the space".into()));
                }
                Ok(plan.drawable(e.trash).then_some(e.subspace))
            }
            Index::Series { counter, subspace_of_count, .. } => {
                ffi(plan.space.validate(arch))?;
                Ok(subspace_of_count.get(&counter.count(arch.as_slice())).copied())
            }
            Index::Rejection => {
                let info = plan.info(arch)?;
                Ok(plan.drawable(info.trash).then_some(info.subspace))
            }
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_distribution_leaves_out_the_rejected_architectures() {
        // Two slots adding {0, 1}: counts 0, 1, 2 with 1, 2, 1 architectures.
        let counter = SeriesCounter::new(0, &[vec![0, 1], vec![0, 1]]).unwrap();
        assert_eq!(valid_distribution(&counter, &[]), vec![(0, 1), (1, 2), (2, 1)]);
        assert_eq!(valid_distribution(&counter, &[vec![0, 1]]), vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(valid_distribution(&counter, &[vec![1, 1], vec![0, 0]]), vec![(1, 2)]);
    }
}
