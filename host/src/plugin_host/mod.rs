//! The plugins as the host sees them: the registry of built-in and library plugins
//! ([`registry`]), the conformance checks ([`conformance`]), the explanation of a refused
//! library ([`abi_report`], [`elf`]) and what a plugin says about itself ([`describe`]).

pub mod abi_report;
pub mod conformance;
pub mod describe;
pub mod elf;
pub mod registry;
