//! The four plugin kinds, as plain Rust traits a plugin author implements.
//!
//! The SDK wraps implementations in ABI-stable trait objects ([`crate::ffi`]); every call goes
//! through a guard that turns a panic into an error, so a crashing plugin cannot take the host
//! down. Plugins describe and decide; the host computes (no tensor crosses the boundary).

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

use crate::{arch::Arch, arch::Slot, graph::Graph, graph::Subnet};

/// A search space: slots and options, the text form of architectures, and network graphs.
pub trait SearchSpace: Send + Sync + 'static {
    /// The decision slots, in architecture order.
    fn slots(&self) -> Vec<Slot>;

    /// Parses the canonical text form of an architecture.
    fn parse(&self, text: &str) -> Result<Arch, String>;

    /// The canonical text form of an architecture (`parse(format(a)) == a`).
    fn format(&self, arch: &Arch) -> String;

    /// Rejects architectures that are not part of the space beyond the slot structure
    /// (slot count and option ranges are checked by the host). Default: all are valid.
    fn validate(&self, _arch: &Arch) -> Result<(), String> {
        Ok(())
    }

    /// The supernet: every candidate op of every slot, guarded by its (slot, option).
    fn supernet_graph(&self) -> Graph;

    /// The network of one subnet. Default: the supernet graph materialised for `arch`.
    fn subnet_graph(&self, arch: &Arch) -> Result<Graph, String> {
        self.supernet_graph().subnet(arch.as_slice())
    }

    /// The searchable part of the network, as counting rules see it (NB201: one cell, whose
    /// genotype all cells share; MobileNet: the 21 searchable layers). Fixed parts of the
    /// network add a constant to any count and are left out.
    fn counting_graph(&self) -> Graph;

    /// The default `nonlin` grouping of counts for this space, e.g. `0-1,2,3`.
    fn default_groups(&self) -> String;

    /// True when the slots lie in series on the counting graph (every input-to-output path
    /// crosses every slot, as in a chain of layers). Together with an additive counting rule
    /// this lets the host size and sample subspaces of huge spaces exactly by dynamic
    /// programming. Default: false.
    fn slots_in_series(&self) -> bool {
        false
    }
}

/// A counting rule: reads the graph of one subnet and returns a number (e.g. the number of
/// nonlinear functions on the longest live path).
pub trait CountingRule: Send + Sync + 'static {
    /// The count for one subnet of the space's counting graph.
    fn count(&self, subnet: Subnet<'_>) -> Result<u32, String>;

    /// True when, on a space whose slots lie in series, the count is a constant plus one
    /// contribution per slot. Default: false.
    fn additive_in_series(&self) -> bool {
        false
    }
}

/// What a splitter reads from an architecture to decide its subspace.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKey {
    /// The counting rule's count.
    Count,
    /// Exact FLOPs at full width.
    Flops,
    /// Exact parameter count at full width.
    Params,
    /// The architecture itself.
    Arch,
}

/// The numbers the host computes for an architecture before a splitter sees it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct ArchMetrics {
    /// The counting rule's count.
    pub count: u32,
    /// Multiply-adds of convolutions and linear layers at full width, in millions.
    pub flops_m: f64,
    /// Parameters at full width, in millions.
    pub params_m: f64,
}

/// One value of a distribution and how many architectures take it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct ValueWeight {
    /// The value (a count, FLOPs in millions or parameters in millions).
    pub value: f64,
    /// Number of architectures (or estimated share) with this value.
    pub weight: f64,
}

/// What the host tells a splitter before it partitions the space.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PlanContext {
    /// The space's slots.
    pub slots: RVec<Slot>,
    /// The space's default `nonlin` grouping.
    pub default_groups: RString,
    /// Distribution of the splitter's key over the whole space, sorted by value (empty for
    /// [`SplitKey::Arch`]).
    pub distribution: RVec<ValueWeight>,
    /// Whether `distribution` is exact (enumeration or dynamic programming) or estimated from
    /// a uniform sample.
    pub exact: bool,
    /// The run's seed.
    pub seed: u64,
}

/// A subspace as a splitter describes it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SubspaceLabel {
    /// Human-readable label, e.g. `count 0-1` or `edge0=nor_conv_3x3`.
    pub label: RString,
}

/// A splitting criterion: maps architectures to subspaces.
pub trait Splitter: Send + Sync + 'static {
    /// What the splitter reads.
    fn key(&self) -> SplitKey;

    /// Decides the partition before any training; returns one label per subspace.
    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String>;

    /// The subspace of an architecture (after `prepare`).
    fn assign(&self, arch: &Arch, metrics: &ArchMetrics) -> Result<u32, String>;
}

/// One (subspace, architecture) pair to train in a step.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pick {
    /// Subspace (= supernet) index.
    pub subspace: u32,
    /// The architecture to train in that subspace's supernet.
    pub arch: Arch,
}

/// The host's handle a sampler draws through. Draws are exact uniform where the host can make
/// them so (enumeration or dynamic programming), rejection sampling otherwise; architectures
/// excluded from training (e.g. trash) are never drawn. All randomness comes from the host's
/// seeded generator, so runs are reproducible and resumable.
pub trait ArchDraw {
    /// Number of subspaces.
    fn subspaces(&self) -> u32;
    /// Number of trainable architectures in a subspace.
    fn subspace_size(&self, subspace: u32) -> f64;
    /// Number of options of each slot.
    fn option_counts(&self) -> Vec<u32>;
    /// A uniformly drawn trainable architecture of one subspace.
    fn draw(&mut self, subspace: u32) -> Result<Arch, String>;
    /// A uniformly drawn trainable architecture of the whole space, with its subspace.
    fn draw_any(&mut self) -> Result<Pick, String>;
    /// The subspace of an architecture; `None` when it is excluded from training.
    fn subspace_of(&self, arch: &Arch) -> Result<Option<u32>, String>;
    /// A random 64-bit number from the host's seeded generator.
    fn next_u64(&mut self) -> u64;
}

impl dyn ArchDraw + '_ {
    /// A uniform index in `0..n` (n > 0), from the host's generator.
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift with rejection: exact uniform.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// A sampler: decides which (subspace, architecture) pairs each training step trains.
pub trait Sampler: Send + Sync + 'static {
    /// The pairs for the next step (losses of one step are summed before one optimizer step).
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String>;

    /// Serialised internal state for checkpoints (empty for stateless samplers).
    fn save_state(&self) -> String {
        String::new()
    }

    /// Restores state saved by `save_state`.
    fn load_state(&mut self, state: &str) -> Result<(), String> {
        if state.is_empty() {
            Ok(())
        } else {
            Err("this sampler keeps no state, but the checkpoint holds some".into())
        }
    }
}
