//! `fewshot costs`: exact FLOPs and parameters of subnets, from the space's graph IR.

use anyhow::Result;
use clap::{ArgGroup, Args, ValueEnum};

use crate::{
    cli::plan_args::SpaceArgs,
    io::{csv, output::print, table::render},
    plugin_host::registry::Registry,
    stages::costs::costs,
};

/// Arguments of `fewshot costs`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "arch"])))]
pub struct CostsArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Every architecture of the space (at most 10 million).
    #[arg(long)]
    pub all: bool,
    /// One architecture, in the space's text form.
    #[arg(long, value_name = "STRING")]
    pub arch: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CostFormat::Csv)]
    pub format: CostFormat,
    /// Channel divisor c: costs of the network with every scalable width divided by c.
    #[arg(long, value_name = "C", default_value_t = 1.0)]
    pub channel_divisor: f64,
}

/// Output formats of `fewshot costs`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostFormat {
    /// `arch,flops_m,params_mb` with a header line.
    Csv,
    /// An aligned text table.
    Table,
    /// A JSON array of objects.
    Json,
}

/// Runs `fewshot costs`.
pub fn run(args: &CostsArgs, registry: &Registry) -> Result<()> {
    let rows = costs(registry, &args.space.spec(), args.arch.as_deref(), args.channel_divisor)?;
    let headers = ["arch", "flops_m", "params_mb"];
    let cells = || -> Vec<Vec<String>> {
        rows.iter().map(|r| vec![r.arch.clone(), r.flops_m.to_string(), r.params_mb.to_string()]).collect()
    };
    let text = match args.format {
        CostFormat::Csv => csv::to_string(&headers, &cells())?,
        CostFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
        CostFormat::Table => render(&headers, &cells()),
    };
    Ok(print(&text)?)
}
