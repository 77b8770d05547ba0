//! `fewshot split`: the partition of the search space before training — per subspace its
//! size, trainable architectures, count range and cost ranges, and with `--truth` the median and
//! best ground-truth accuracy (the analysis of the EFS-NAS paper's Fig. 2).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{
    cli::{plan_args::PlanArgs, Format},
    config::defaults,
    io::output::print,
    plugin_host::registry::Registry,
    stages::plan::{plan, split_report, table},
};

/// Arguments of `fewshot split`.
#[derive(Args, Debug)]
pub struct SplitArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Ground-truth table: CSV with an `arch` column in the space's text form (e.g.
    /// ../shared/data/nb201/nb201.csv).
    #[arg(long, value_name = "CSV")]
    pub truth: Option<PathBuf>,
    /// Column of the truth table to summarise per subspace.
    #[arg(long, value_name = "COLUMN", default_value = defaults::TRUTH_COLUMN, requires = "truth")]
    pub truth_column: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Images the `proxy` splitter scores on (its batch comes from the training half): a
    /// CIFAR-10 binary folder or an ImageFolder tree (default: built-in generated images).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Resize images to N×N on load; the space's input resolution follows.
    #[arg(long, value_name = "N")]
    pub resolution: Option<usize>,
}

/// Runs `fewshot split`.
pub fn run(args: &SplitArgs, registry: &Registry) -> Result<()> {
    let mut config = args.plan.config();
    config.data.path.clone_from(&args.data);
    config.data.resolution = args.resolution;
    config.validate()?;
    let plan = plan(&config, registry, None)?;
    let truth = args.truth.as_deref().map(|path| (path, args.truth_column.as_str()));
    let report = split_report(&plan, &config, truth)?;
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Format::Table => table(&report),
    };
    Ok(print(&text)?)
}
