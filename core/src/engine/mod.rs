//! The compute engine: backends and devices, the kernels behind each op family, and supernets
//! (parameter layout, storage and the forward pass) built from a space's graph.

pub mod backend;
pub mod kernels;
pub mod supernet;

use fewshot_sdk::arch::ArchMismatch;

use crate::space::SpaceError;

/// Why a device could not be used, a supernet not be built from a graph, or an architecture not
/// be run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The graph is unusable (malformed, an op this host cannot run, a bad channel divisor).
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// A graph whose input is not an image.
    #[error("the graph input must be an image")]
    InputNotImage,
    /// A graph whose output is not a vector of logits.
    #[error("the graph output must be a vector of logits (end with a linear layer)")]
    OutputNotLogits,
    /// An architecture that does not fit the space's slots.
    #[error("{}", arch_mismatch(.0))]
    InvalidArch(ArchMismatch),
    /// A BatchNorm mode other than `plain` and `affine`.
    #[error("unknown BatchNorm mode `{0}` (expected plain or affine)")]
    UnknownNorm(String),
    /// A `cuda:N` device whose index is not a number.
    #[error("bad device `{0}`: the GPU index must be a number, e.g. cuda:0")]
    DeviceIndex(String),
    /// A device name this build does not know.
    #[error("unknown device `{0}` (expected cpu, reference, cuda or cuda:N)")]
    UnknownDevice(String),
    /// CUDA asked for in a build without the `cuda` feature.
    #[error(
        "device cuda:{0} asked for, but this fewshot was built without CUDA support (rebuild with `cargo build --release --features cuda`)"
    )]
    NoCudaSupport(usize),
    /// No CUDA driver on this machine (the loader's message).
    #[error(
        "no CUDA driver found (cannot load libcuda.so.1: {0}); use --device cpu, or run on a machine with an NVIDIA GPU and driver"
    )]
    NoCudaDriver(String),
    /// Zero CPU threads asked for.
    #[error("the number of threads must be positive")]
    NoThreads,
    /// The CPU thread pool could not be set up (it already exists).
    #[error("cannot set {threads} CPU threads: {source}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// What rayon said.
        source: rayon::ThreadPoolBuildError,
    },
}

/// The wording of an architecture that does not fit the space's slots.
fn arch_mismatch(e: &ArchMismatch) -> String {
    match *e {
        ArchMismatch::Length { choices, slots } => format!("architecture has {choices} choices but the space has {slots} slots"),
        ArchMismatch::Option { slot, options, choice } => format!("slot {slot} has {options} options, got option {choice}"),
    }
}
