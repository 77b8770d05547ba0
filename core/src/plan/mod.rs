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
//! - **estimation** otherwise: a seeded uniform sample of [`ESTIMATE_SAMPLE`] architectures (or
//!   [`PlanOptions::estimate_sample`]) gives estimated sizes, and draws are by rejection.
//!
//! "Trash" architectures (no live input→output path in the counting graph; NB201 has 341) count
//! in the sizes but are never drawn unless [`PlanOptions::include_trash`] is set.

mod draw;
mod sizes;

use std::collections::BTreeMap;

use fewshot_sdk::abi_stable::std_types::{RSlice, RString};
use fewshot_sdk::ffi::{from_ffi, FfiResult, RuleBox, SpaceBox, SplitterBox};
use fewshot_sdk::{Arch, ArchMetrics, Graph, Slot, SplitKey};

use crate::space::cost::{Cost, CostModel};
use crate::space::SpaceError;
use crate::space::liveness::Liveness;
use crate::space::odometer::product_size;
use crate::space::series::SeriesCounter;
use crate::util::rng::Rng;

pub use draw::PlanDrawer;

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
    /// Estimated from a seeded uniform sample of architectures ([`ESTIMATE_SAMPLE`] unless
    /// [`PlanOptions::estimate_sample`] says otherwise).
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
    /// Architectures in the sample of an estimated plan (`None`: [`ESTIMATE_SAMPLE`]). Two
    /// estimated plans of one space with the same seed and sample size plan over the same
    /// architectures ([`Plan::planning_archs`]).
    pub estimate_sample: Option<usize>,
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

/// Why a space could not be planned, or an architecture not placed or drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A plugin (space, counting rule, splitter or sampler) failed; its message crossed the ABI.
    #[error("{0}")]
    Plugin(String),
    /// The space's graphs or count decomposition are unusable.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// An architecture that does not fit the space's slots.
    #[error("{0}")]
    InvalidArch(String),
    /// An architecture the space does not hold.
    #[error("not in the space")]
    NotInSpace,
    /// A slot without options.
    #[error("slot {slot} ({name}) has no options")]
    NoOptions {
        /// The slot.
        slot: usize,
        /// Its name.
        name: String,
    },
    /// A graph of the space fails the SDK's check.
    #[error("the space's {which} graph is invalid: {reason}")]
    InvalidGraph {
        /// `supernet` or `counting`.
        which: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// More architectures than a `u128` counts.
    #[error("the space has more than 2^128 architectures")]
    TooLarge,
    /// Enumeration asked for a space too big to enumerate.
    #[error("the space has {0} architectures, too many to enumerate (limit {ENUMERATION_LIMIT})")]
    TooManyToEnumerate(u128),
    /// Dynamic programming asked for a space, rule or splitter it does not fit.
    #[error(
        "dynamic programming needs a space whose slots lie in series, a rule additive in series and a splitter keyed by the count"
    )]
    NotSeries,
    /// Dynamic programming asked for, but it does not apply to this space.
    #[error("dynamic programming does not apply: {0}")]
    SeriesInapplicable(String),
    /// The counting rule failed on an architecture.
    #[error("counting rule failed on {arch}: {reason}")]
    Count {
        /// The architecture's text form.
        arch: String,
        /// The rule's message.
        reason: String,
    },
    /// A rule that claims to be additive in series but is not.
    #[error(
        "the counting rule says it is additive on this series space, but {arch} counts {count} where the per-slot contributions give {predicted}"
    )]
    NotAdditive {
        /// The architecture's text form.
        arch: String,
        /// Its count.
        count: u32,
        /// The count the per-slot contributions give.
        predicted: u32,
    },
    /// The splitter planned no subspace.
    #[error("the splitter planned no subspace")]
    NoSubspaces,
    /// The splitter assigned an architecture to a subspace it did not plan.
    #[error("the splitter put {arch} in subspace {subspace}, but planned only {planned} subspaces")]
    UnplannedSubspace {
        /// The architecture's text form.
        arch: String,
        /// The subspace it was put in.
        subspace: u32,
        /// Subspaces planned.
        planned: usize,
    },
    /// A splitter keyed by the count that splits two architectures of one count apart.
    #[error(
        "the splitter declares it splits by the count, but puts {arch} (count {count}) in subspace {subspace} and {other} (same count) in subspace {other_subspace}"
    )]
    NotByCount {
        /// One architecture's text form.
        arch: String,
        /// Their count.
        count: u32,
        /// Its subspace.
        subspace: u32,
        /// The other architecture's text form.
        other: String,
        /// Its subspace.
        other_subspace: u32,
    },
    /// The space's `validate` rejects every architecture (its first message).
    #[error("the space rejects every architecture: {0}")]
    RejectsAll(String),
    /// The space's `validate` rejected the whole estimation sample (its first message).
    #[error("the space rejected all {0} sampled architectures: {1}")]
    RejectsSample(usize, String),
    /// A planning thread panicked.
    #[error("a planning thread crashed")]
    ThreadCrashed,
    /// A subspace index beyond the plan.
    #[error("subspace {subspace} does not exist (the plan has {planned})")]
    NoSuchSubspace {
        /// The subspace asked for.
        subspace: u32,
        /// Subspaces of the plan.
        planned: usize,
    },
    /// A subspace without any architecture that may be drawn.
    #[error("subspace {subspace} ({label}) has no trainable architecture")]
    EmptySubspace {
        /// The subspace.
        subspace: u32,
        /// Its label.
        label: String,
    },
    /// No subspace has an architecture that may be drawn.
    #[error("no subspace has a trainable architecture")]
    NothingTrainable,
    /// Rejection sampling found no drawable architecture of a subspace.
    #[error("no trainable architecture of subspace {subspace} ({label}) in {MAX_REJECTION_TRIES} uniform draws")]
    NoneDrawnIn {
        /// The subspace.
        subspace: u32,
        /// Its label.
        label: String,
    },
    /// Rejection sampling found no drawable architecture at all.
    #[error("no trainable architecture in {MAX_REJECTION_TRIES} uniform draws")]
    NoneDrawn,
    /// No valid architecture with a count was drawn.
    #[error("no valid architecture with count {0} in {MAX_REJECTION_TRIES} draws")]
    NoneWithCount(u32),
    /// A sampler picked an architecture of another subspace.
    #[error("the sampler picked {arch} for subspace {picked}, but it belongs to subspace {actual}")]
    WrongSubspace {
        /// The architecture's text form.
        arch: String,
        /// The subspace the sampler named.
        picked: u32,
        /// The subspace it belongs to.
        actual: u32,
    },
    /// A sampler picked an architecture excluded from training.
    #[error("the sampler picked {0}, which is excluded from training (trash)")]
    PickedTrash(String),
}

/// Unwraps a result that crossed the ABI ([`from_ffi`]), its message a [`PlanError::Plugin`].
fn ffi<T>(r: FfiResult<T>) -> Result<T, PlanError> {
    from_ffi(r).map_err(PlanError::Plugin)
}

/// One enumerated architecture.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// [`INVALID`] when the space rejects the architecture.
    subspace: u32,
    trash: bool,
}

/// The subspace of an [`Entry`] the space rejects.
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
    /// The architectures an estimated plan was sized on (empty otherwise).
    sample: Vec<Arch>,
}

impl Plan {
    /// Partitions the space: sizes every subspace (see the module docs for the method).
    pub fn build(space: SpaceBox, rule: RuleBox, splitter: SplitterBox, opts: PlanOptions) -> Result<Plan, PlanError> {
        let slots = ffi(space.slots())?.into_vec();
        let radices: Vec<u32> = slots.iter().map(|s| s.options.len() as u32).collect();
        if let Some((i, s)) = slots.iter().enumerate().find(|(_, s)| s.options.is_empty()) {
            return Err(PlanError::NoOptions { slot: i, name: s.name.to_string() });
        }
        let invalid = |which: &'static str| move |reason: String| PlanError::InvalidGraph { which, reason };
        let supernet = ffi(space.supernet_graph())?;
        supernet.validate(&slots).map_err(invalid("supernet"))?;
        let counting = ffi(space.counting_graph())?;
        counting.validate(&slots).map_err(invalid("counting"))?;
        let liveness = Liveness::new(&counting, &radices)?;
        let costs = CostModel::new(&supernet, 1.0)?;
        let key = ffi(splitter.key())?;
        let total = product_size(&radices).ok_or(PlanError::TooLarge)?;
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
            sample: Vec::new(),
        };
        let series_ok = || -> Result<bool, PlanError> {
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
                    return Err(PlanError::TooManyToEnumerate(total));
                }
                plan.enumerate(opts)?;
            }
            Method::DynamicProgramming => {
                if !series_ok()? {
                    return Err(PlanError::NotSeries);
                }
                if let Err(why) = plan.series(opts)? {
                    if opts.method.is_some() {
                        return Err(PlanError::SeriesInapplicable(why.0));
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

    /// The architectures the splitter's partition was planned over: every valid architecture of
    /// an enumerated plan (odometer order), the seeded sample of an estimated one (valid
    /// architectures, trash included, in draw order, repeats kept); `None` for a plan by dynamic
    /// programming, which visits no architecture.
    pub fn planning_archs(&self) -> Option<Vec<Arch>> {
        match &self.index {
            Index::Enumerated { entries, .. } => Some(
                entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.subspace != INVALID)
                    .map(|(i, _)| self.decode(i))
                    .collect(),
            ),
            Index::Series { .. } => None,
            Index::Rejection => Some(self.sample.clone()),
        }
    }

    /// The count DP behind an exact plan of a series space.
    pub fn series_counter(&self) -> Option<&SeriesCounter> {
        match &self.index {
            Index::Series { counter, .. } => Some(counter),
            _ => None,
        }
    }

    /// Parses an architecture's text form and checks it belongs to the space.
    pub fn parse(&self, text: &str) -> Result<Arch, PlanError> {
        let arch = ffi(self.space.parse(text.into()))?;
        self.check(&arch)?;
        Ok(arch)
    }

    /// The text form of an architecture.
    pub fn format(&self, arch: &Arch) -> Result<String, PlanError> {
        ffi(self.space.format(arch)).map(RString::into_string)
    }

    /// Checks slot ranges and the space's own validity rules.
    fn check(&self, arch: &Arch) -> Result<(), PlanError> {
        arch.check_against(&self.slots).map_err(PlanError::InvalidArch)?;
        ffi(self.space.validate(arch))
    }

    /// The space's reason to reject `arch`, if it does.
    fn rejection(&self, arch: &Arch) -> Option<String> {
        from_ffi(self.space.validate(arch)).err()
    }

    fn count(&self, arch: &[u32]) -> Result<u32, PlanError> {
        from_ffi(self.rule.count(&self.counting, RSlice::from_slice(arch))).map_err(|reason| {
            let text = self.format(&Arch::new(arch.to_vec())).unwrap_or_else(|_| format!("{arch:?}"));
            PlanError::Count { arch: text, reason }
        })
    }

    fn is_trash(&self, arch: &[u32]) -> bool {
        !self.liveness.has_live_path(arch)
    }

    fn assign(&self, arch: &Arch, count: u32, cost: Cost) -> Result<u32, PlanError> {
        let metrics = ArchMetrics { count, flops_m: cost.flops_m(), params_m: cost.params_m() };
        let k = ffi(self.splitter.assign(arch, &metrics))?;
        if k as usize >= self.subspaces.len() {
            return Err(PlanError::UnplannedSubspace { arch: self.format(arch)?, subspace: k, planned: self.subspaces.len() });
        }
        Ok(k)
    }

    /// Validates an architecture, then computes its metrics and subspace.
    pub fn info(&self, arch: &Arch) -> Result<ArchInfo, PlanError> {
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
        PlanDrawer::new(self, rng)
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
