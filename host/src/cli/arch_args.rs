//! Which architectures a command works on: `--arch TEXT`, `--archs FILE` or `--all` (exactly
//! one), shared by `eval` and `score`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgGroup, Args};
use fewshot_core::plan::Plan;
use fewshot_sdk::Arch;

use crate::stages::eval::{all_architectures, listed_architectures};

/// `--arch`, `--archs` or `--all`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["arch", "archs", "all"])))]
pub struct ArchArgs {
    /// One architecture, in the space's text form.
    #[arg(long, value_name = "TEXT")]
    pub arch: Option<String>,
    /// A file of architectures: one per line, or a CSV with an `arch` column.
    #[arg(long, value_name = "FILE")]
    pub archs: Option<PathBuf>,
    /// Every architecture of the space (spaces of up to a million architectures).
    #[arg(long)]
    pub all: bool,
}

impl ArchArgs {
    /// The architectures named, each read with `parse` (errors name the file and line).
    pub fn select(&self, plan: &Plan, parse: impl Fn(&str) -> Result<Arch>) -> Result<Vec<Arch>> {
        match (&self.arch, &self.archs) {
            (Some(text), _) => Ok(vec![parse(text)?]),
            (None, Some(path)) => listed_architectures(path, parse),
            (None, None) => all_architectures(plan),
        }
    }
}
