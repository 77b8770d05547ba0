//! `fewshot rank`: how well predicted accuracies (e.g. the supernets', from `fewshot eval`) rank
//! architectures against a ground-truth table, next to the trivial predictors params and FLOPs.
//!
//! ```text
//! fewshot rank --pred eval.csv --truth nb201.csv [--truth-column c10_test_acc]
//!     [--pred-column accuracy] [--group-column subspace] [--top-percent 1,5]
//!     [--format table|json] [--output FILE] [--plot scatter.svg]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fewshot_core::{metrics::RankReport, util::files::write_atomic};
use serde::Serialize;

use crate::{
    cli::Format,
    config::defaults,
    io::{output::print, table::render},
    report::{plots, rank_table, rank_verdicts},
    stages::rank::{join, measure},
};

/// Arguments of `fewshot rank`.
#[derive(Args, Debug)]
pub struct RankArgs {
    /// Predicted accuracies: a CSV file with an `arch` column, e.g. written by `fewshot eval`.
    #[arg(long, value_name = "CSV")]
    pred: PathBuf,
    /// Ground truth: a CSV file with an `arch` column, e.g. ../shared/data/nb201/nb201.csv.
    #[arg(long, value_name = "CSV")]
    truth: PathBuf,
    /// Column of --truth holding the true accuracy.
    #[arg(long, default_value = defaults::TRUTH_COLUMN)]
    truth_column: String,
    /// Column of --pred holding the predicted accuracy.
    #[arg(long, default_value = "accuracy")]
    pred_column: String,
    /// Column (of --pred, else --truth) grouping architectures, e.g. by subspace. Default:
    /// `subspace` when --pred has it.
    #[arg(long)]
    group_column: Option<String>,
    /// Top-k sizes for overlap and precision, as percentages of the architectures.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    top_percent: Vec<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Write the result to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also draw predicted vs true accuracy, per group, as an SVG scatter plot.
    #[arg(long, value_name = "SVG")]
    plot: Option<PathBuf>,
}

/// Whether the predictor beats one baseline in one scope (`group` null = all architectures).
#[derive(Serialize)]
struct Verdict<'a> {
    group: Option<&'a str>,
    baseline: &'a str,
    beats: Option<bool>,
}

/// The JSON output: inputs, then the report (percents, predictor, baselines), then verdicts.
#[derive(Serialize)]
struct RankJson<'a> {
    pred: String,
    truth: String,
    pred_column: &'a str,
    truth_column: &'a str,
    group_column: Option<&'a str>,
    #[serde(flatten)]
    report: &'a RankReport,
    verdicts: Vec<Verdict<'a>>,
}

fn verdicts(report: &RankReport) -> Vec<Verdict<'_>> {
    let scopes = std::iter::once(None).chain(report.predictor.groups.iter().map(|g| Some(g.group.as_str())));
    scopes
        .flat_map(|group| {
            report.baselines.iter().map(move |b| Verdict { group, baseline: &b.name, beats: report.beats(&b.name, group) })
        })
        .collect()
}

/// Runs `fewshot rank`.
pub fn run(args: &RankArgs) -> Result<()> {
    if let Some(p) = args.top_percent.iter().find(|&&p| !(p > 0.0 && p <= 100.0)) {
        bail!("--top-percent must lie in (0, 100], not {p}");
    }
    let joined = join(&args.pred, &args.truth, &args.pred_column, &args.truth_column, args.group_column.as_deref())?;
    let report = measure(&joined, &args.pred_column, &args.top_percent);
    let group_name = joined.group_column.as_deref().unwrap_or("group");

    let text = match args.format {
        Format::Json => {
            let json = RankJson {
                pred: args.pred.display().to_string(),
                truth: args.truth.display().to_string(),
                pred_column: &args.pred_column,
                truth_column: &args.truth_column,
                group_column: joined.group_column.as_deref(),
                report: &report,
                verdicts: verdicts(&report),
            };
            serde_json::to_string_pretty(&json)? + "\n"
        }
        Format::Table => {
            let (headers, rows) = rank_table(&report, group_name);
            let mut text = format!(
                "Rank correlation of '{}' ({}) with '{}' ({}) on {} architectures\n\n",
                args.pred_column,
                args.pred.display(),
                args.truth_column,
                args.truth.display(),
                joined.archs.len()
            );
            text += &render(&headers, &rows);
            if report.baselines.is_empty() {
                text += "\nno trivial predictors: the truth table has no c10_params_mb or c10_flops_m column\n";
            } else {
                text += "\nAgainst the trivial predictors (Kendall tau-b):\n";
                for line in rank_verdicts(&report, group_name) {
                    text += &format!("  {line}\n");
                }
            }
            text
        }
    };
    if let Some(path) = &args.plot {
        plots::pred_vs_truth(path, &joined.truth, &joined.pred, joined.groups.as_deref(), &report, group_name)?;
    }
    match &args.output {
        Some(path) => write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display())),
        None => print(&text).context("cannot write to standard output"),
    }
}
