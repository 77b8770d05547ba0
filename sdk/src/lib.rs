//! # fewshot-sdk
//!
//! The only dependency of a fewshot plugin. It defines:
//! - the data that crosses the ABI: [`Arch`]itectures, [`Slot`]s and the network-graph IR
//!   ([`graph`]), all `#[derive(StableAbi)]`;
//! - the four plugin kinds as Rust traits ([`SearchSpace`], [`CountingRule`], [`Splitter`],
//!   [`Sampler`]) and their ABI-stable trait objects ([`ffi`]);
//! - [`PluginEntry`], the root module a library exports ([`export_plugins!`]) and the
//!   registration of built-ins ([`register_builtin!`]).
//!
//! Plugins describe and decide; the host computes. No tensor crosses the boundary.
//! See `docs/plugin-guide.md` for a walk-through from an empty crate to a loaded plugin.
#![allow(non_local_definitions)]
#![warn(missing_docs)]

pub mod arch;
pub mod ffi;
pub mod graph;
pub mod guard;
pub mod params;
pub mod plugin;

pub use abi_stable;
pub use inventory;

pub use arch::{space_size, Arch, Slot};
pub use ffi::{PluginEntry, PluginKind};
pub use graph::{Activation, Graph, GraphBuilder, Guard, Node, Op, Shape, Subnet, Width};
pub use params::Params;
pub use plugin::{
    ArchDraw, ArchMetrics, CountingRule, Pick, PlanContext, Sampler, SearchSpace, SplitKey,
    Splitter, SubspaceLabel, ValueWeight,
};

/// The version of this SDK. A library built against an incompatible version is refused at load
/// time with a message naming both versions.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exports a plugin library's root module. Give it a function returning the library's entries:
///
/// ```ignore
/// fn entries() -> Vec<fewshot_sdk::PluginEntry> { vec![/* PluginEntry::space(...), ... */] }
/// fewshot_sdk::export_plugins!(entries);
/// ```
///
/// The crate must be a `cdylib` and depend on `abi_stable` directly (the attribute this expands
/// to refers to `::abi_stable`). It must unwind on panic: built with `panic = "abort"`, it does
/// not compile, because a panic in plugin code would then kill the host instead of becoming an
/// error.
#[macro_export]
macro_rules! export_plugins {
    ($entries:path) => {
        #[cfg(panic = "abort")]
        ::core::compile_error!(
            "a fewshot plugin cannot be built with `panic = \"abort\"`: the SDK turns a panic in plugin \
             code into an error only while unwinding works, and an aborting plugin kills the host \
             without a message. Remove `panic = \"abort\"` from the [profile.*] sections of Cargo.toml \
             (and `-C panic=abort` from RUSTFLAGS)"
        );
        #[::abi_stable::export_root_module]
        pub fn fewshot_plugin_root_module() -> $crate::ffi::PluginLibraryRef {
            // A name of its own, so it cannot shadow the caller's function (often `entries`).
            extern "C" fn __fewshot_guarded_entries(
            ) -> $crate::ffi::FfiResult<$crate::abi_stable::std_types::RVec<$crate::PluginEntry>> {
                $crate::ffi::guarded_entries($entries)
            }
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::ffi::PluginLibrary {
                sdk_version: $crate::abi_stable::std_types::RStr::from_str($crate::SDK_VERSION),
                entries: __fewshot_guarded_entries,
            }
            .leak_into_prefix()
        }
    };
}

/// Registers a built-in plugin entry with `inventory` (for crates linked into the host; dynamic
/// libraries use [`export_plugins!`] instead).
#[macro_export]
macro_rules! register_builtin {
    ($entry:path) => {
        $crate::inventory::submit! {
            $crate::ffi::BuiltinPlugin { entry: $entry }
        }
    };
}
