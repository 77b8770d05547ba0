//! The command-line argument types that several commands share: the architectures to work on
//! ([`arch_args`]), the space and split options of the commands without a configuration file
//! ([`plan_args`]), the configuration and its
//! overrides ([`run_options`]), and the output formats. Every option that sets a configuration
//! key takes its default from [`crate::config`]; none keeps a second one.

pub mod arch_args;
pub mod plan_args;
pub mod run_options;

use clap::ValueEnum;

/// Table or JSON output. (The values carry no doc comments: clap would show them, switching
/// `--help` to its long form.)
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    // An aligned text table.
    Table,
    // JSON.
    Json,
}
