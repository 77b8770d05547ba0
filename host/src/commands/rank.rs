//! `fewshot rank`: how well predicted accuracies (e.g. the supernets', from `fewshot eval`) rank
//! architectures against a ground-truth table, next to the trivial predictors params and FLOPs.
//!
//! ```text
//! fewshot rank --pred eval.csv --truth nb201.csv [--truth-column c10_test_acc]
//!     [--pred-column accuracy] [--group-column subspace] [--top-percent 1,5]
//!     [--format table|json] [--output FILE] [--plot scatter.svg]
//! ```

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use fewshot_core::{
    util::files::write_atomic,
    metrics::{rank_report, Predictor, RankReport},
};
use serde::Serialize;

use crate::{
    output::print,
    report::{plots, rank_table, rank_verdicts, text_table},
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
    #[arg(long, default_value = "c10_test_acc")]
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

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Table,
    Json,
}

/// The trivial predictors: (name, column of the truth table).
pub const BASELINE_COLUMNS: [(&str, &str); 2] = [("params", "c10_params_mb"), ("flops", "c10_flops_m")];

/// A CSV file read whole, with the line number of each row for messages.
struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(file);
        let bad = |e: csv::Error| anyhow::anyhow!("{}: not a valid CSV file: {e}", path.display());
        let headers: Vec<String> = reader.headers().map_err(bad)?.iter().map(String::from).collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(bad)?;
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record.iter().map(String::from).collect()));
        }
        Ok(Table { path: path.to_path_buf(), headers, rows })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    fn require(&self, name: &str) -> Result<usize> {
        self.column(name).with_context(|| {
            format!("{}: no column '{name}' (columns: {})", self.path.display(), self.headers.join(", "))
        })
    }

    /// Row index of each architecture; a repeated architecture is an error.
    fn by_arch(&self, arch_column: usize) -> Result<HashMap<&str, usize>> {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.rows.len());
        for (i, (line, row)) in self.rows.iter().enumerate() {
            let arch = row[arch_column].as_str();
            if let Some(&first) = index.get(arch) {
                bail!(
                    "{}: line {line}: architecture '{arch}' appears again (first on line {})",
                    self.path.display(),
                    self.rows[first].0
                );
            }
            index.insert(arch, i);
        }
        Ok(index)
    }

    /// The number in `column` of row `row`.
    fn number(&self, row: usize, column: usize) -> Result<f64> {
        let (line, cells) = &self.rows[row];
        let text = &cells[column];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => bail!(
                "{}: line {line}: column '{}' is not a finite number: '{text}'",
                self.path.display(),
                self.headers[column]
            ),
        }
    }
}

/// Predictions joined with the ground truth on the architecture string.
pub struct Joined {
    /// The architectures, in the order of the predictions file.
    pub archs: Vec<String>,
    /// Predicted values.
    pub pred: Vec<f64>,
    /// True values.
    pub truth: Vec<f64>,
    /// Group label per architecture, when grouped.
    pub groups: Option<Vec<String>>,
    /// The name of the group column, when grouped.
    pub group_column: Option<String>,
    /// Trivial predictors found in the truth table: (name, values).
    pub baselines: Vec<(String, Vec<f64>)>,
}

/// Reads the predictions and the ground truth and joins them on the `arch` column: every
/// predicted architecture must appear in the truth table, each file at most once. The group
/// column is taken from the predictions, else the truth table (`None`: `subspace` if the
/// predictions have it); the baselines are the [`BASELINE_COLUMNS`] the truth table has.
pub fn join(pred_path: &Path, truth_path: &Path, pred_column: &str, truth_column: &str, group_column: Option<&str>) -> Result<Joined> {
    let pred_table = Table::read(pred_path)?;
    let truth_table = Table::read(truth_path)?;
    let (pred_arch, pred_value) = (pred_table.require("arch")?, pred_table.require(pred_column)?);
    let (truth_arch, truth_value) = (truth_table.require("arch")?, truth_table.require(truth_column)?);
    if pred_table.rows.is_empty() {
        bail!("{}: no predictions", pred_path.display());
    }
    pred_table.by_arch(pred_arch)?;
    let truth_rows = truth_table.by_arch(truth_arch)?;
    // Every truth value must be a number, as `split --truth` requires, not only the predicted.
    for row in 0..truth_table.rows.len() {
        truth_table.number(row, truth_value)?;
    }

    let missing: Vec<&str> = pred_table
        .rows
        .iter()
        .map(|(_, row)| row[pred_arch].as_str())
        .filter(|arch| !truth_rows.contains_key(arch))
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "{} of {} architectures in {} are not in {}, e.g. '{first}'",
            missing.len(),
            pred_table.rows.len(),
            pred_path.display(),
            truth_path.display()
        );
    }

    // The group column comes from the predictions if they have it, else from the truth table.
    let group_source = match group_column {
        Some(name) => match (pred_table.column(name), truth_table.column(name)) {
            (Some(c), _) => Some((name, true, c)),
            (None, Some(c)) => Some((name, false, c)),
            (None, None) => bail!("no column '{name}' in {} or {}", pred_path.display(), truth_path.display()),
        },
        None => pred_table.column("subspace").map(|c| ("subspace", true, c)),
    };
    let baseline_columns: Vec<(&str, usize)> =
        BASELINE_COLUMNS.iter().filter_map(|&(name, column)| truth_table.column(column).map(|c| (name, c))).collect();

    let mut joined = Joined {
        archs: Vec::with_capacity(pred_table.rows.len()),
        pred: Vec::with_capacity(pred_table.rows.len()),
        truth: Vec::with_capacity(pred_table.rows.len()),
        groups: group_source.map(|_| Vec::new()),
        group_column: group_source.map(|(name, _, _)| name.to_string()),
        baselines: baseline_columns.iter().map(|(name, _)| (name.to_string(), Vec::new())).collect(),
    };
    for (i, (_, row)) in pred_table.rows.iter().enumerate() {
        let arch = row[pred_arch].as_str();
        let t = truth_rows[arch];
        joined.archs.push(arch.to_string());
        joined.pred.push(pred_table.number(i, pred_value)?);
        joined.truth.push(truth_table.number(t, truth_value)?);
        if let (Some(groups), Some((_, from_pred, c))) = (joined.groups.as_mut(), group_source) {
            groups.push(if from_pred { row[c].clone() } else { truth_table.rows[t].1[c].clone() });
        }
        for ((_, values), &(_, c)) in joined.baselines.iter_mut().zip(&baseline_columns) {
            values.push(truth_table.number(t, c)?);
        }
    }
    Ok(joined)
}

/// Measures the joined predictions and baselines; `name` names the predictor in the report.
pub fn measure(joined: &Joined, name: &str, percents: &[f64]) -> RankReport {
    let baselines: Vec<Predictor> =
        joined.baselines.iter().map(|(name, values)| Predictor { name, values }).collect();
    rank_report(&joined.truth, joined.groups.as_deref(), Predictor { name, values: &joined.pred }, &baselines, percents)
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
            text += &text_table(&headers, &rows);
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
