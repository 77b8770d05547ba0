//! `fewshot costs`: exact FLOPs and parameters of subnets, from the space's graph IR.

use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use clap::{ArgGroup, Args, ValueEnum};
use fewshot_core::space::cost::CostModel;
use fewshot_core::space::odometer::{product_size, Odometer};
use fewshot_sdk::abi_stable::std_types::{RResult, RString};
use fewshot_sdk::Arch;
use serde::Serialize;

use super::pipeline::SpaceArgs;
use super::table::render;
use crate::output::print;
use crate::registry::Registry;

/// `--all` refuses spaces with more architectures than this.
pub const ALL_LIMIT: u128 = 10_000_000;

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

#[derive(Serialize)]
struct Row {
    arch: String,
    flops_m: f64,
    params_mb: f64,
}

fn ffi<T>(r: RResult<T, RString>) -> Result<T> {
    r.into_result().map_err(|e| anyhow!("{e}"))
}

/// Quotes a CSV field when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Runs `fewshot costs`.
pub fn run(args: &CostsArgs, registry: &Registry) -> Result<()> {
    let space = args.space.build(registry, args.channel_divisor)?;
    let slots = ffi(space.slots())?.into_vec();
    let graph = ffi(space.supernet_graph())?;
    graph.validate(&slots).map_err(|e| anyhow!("the space's supernet graph is invalid: {e}"))?;
    let model = CostModel::new(&graph, args.channel_divisor).map_err(|e| anyhow!("{e}"))?;
    let mut rows = Vec::new();
    let mut row = |arch: &Arch| -> Result<()> {
        let cost = model.cost(arch.as_slice());
        rows.push(Row { arch: ffi(space.format(arch))?.into_string(), flops_m: cost.flops_m(), params_mb: cost.params_m() });
        Ok(())
    };
    if let Some(text) = &args.arch {
        let arch = ffi(space.parse(text.as_str().into()))?;
        arch.check_against(&slots).map_err(|e| anyhow!("{text}: {e}"))?;
        ffi(space.validate(&arch)).map_err(|e| anyhow!("{text} is not in the space: {e}"))?;
        row(&arch)?;
    } else {
        let radices: Vec<u32> = slots.iter().map(|s| s.options.len() as u32).collect();
        let total = product_size(&radices).unwrap_or(u128::MAX);
        if total > ALL_LIMIT {
            bail!("the space has {total} architectures; --all lists at most {ALL_LIMIT} (use --arch)");
        }
        let mut odometer = Odometer::new(&radices);
        let mut arch = Arch::new(vec![0; radices.len()]);
        while let Some(choices) = odometer.advance() {
            arch.choices.copy_from_slice(choices);
            if ffi(space.validate(&arch)).is_ok() {
                row(&arch)?;
            }
        }
    }
    let text = match args.format {
        CostFormat::Csv => {
            let mut out = String::from("arch,flops_m,params_mb\n");
            for r in &rows {
                writeln!(out, "{},{},{}", csv_field(&r.arch), r.flops_m, r.params_mb)?;
            }
            out
        }
        CostFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
        CostFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| vec![r.arch.clone(), r.flops_m.to_string(), r.params_mb.to_string()])
                .collect();
            render(&["arch", "flops_m", "params_mb"], &cells)
        }
    };
    Ok(print(&text)?)
}
