//! `fewshot split`: the partition of the search space before training — per subspace its
//! size, trainable architectures, count range and cost ranges, and with `--truth` the median and
//! best ground-truth accuracy (the analysis of the EFS-NAS paper's Fig. 2).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use fewshot_core::plan::Plan;
use serde::Serialize;

use super::pipeline::PipelineArgs;
use super::table::{render, Format};
use crate::output::print;
use crate::registry::Registry;

/// Arguments of `fewshot split`.
#[derive(Args, Debug)]
pub struct SplitArgs {
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Ground-truth table: CSV with an `arch` column in the space's text form (e.g.
    /// ../shared/data/nb201/nb201.csv).
    #[arg(long, value_name = "CSV")]
    pub truth: Option<PathBuf>,
    /// Column of the truth table to summarise per subspace.
    #[arg(long, value_name = "COLUMN", default_value = "c10_test_acc", requires = "truth")]
    pub truth_column: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Ground-truth statistics of one subspace.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct TruthStats {
    /// Architectures of the subspace found in the table.
    n: usize,
    median: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize, Debug)]
struct SubspaceRow {
    id: u32,
    label: String,
    size: u128,
    trainable: u128,
    count_min: u32,
    count_max: u32,
    flops_m_min: f64,
    flops_m_max: f64,
    params_m_min: f64,
    params_m_max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<TruthStats>,
}

/// A split plan as `fewshot split` prints it (and `plan.json` stores it).
#[derive(Serialize, Debug)]
pub struct SplitReport {
    space: String,
    rule: String,
    splitter: String,
    method: &'static str,
    exact: bool,
    /// What exact sizes assume that planning could not check.
    #[serde(skip_serializing_if = "Option::is_none")]
    assumes: Option<String>,
    total: u128,
    trash: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth_column: Option<String>,
    subspaces: Vec<SubspaceRow>,
}

/// Splits one CSV line into fields (double-quoted fields may hold commas and `""`).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The `arch` and `column` cells of a ground-truth CSV: (line number, architecture text, value).
pub fn read_truth(path: &Path, column: &str) -> Result<Vec<(usize, String, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read truth table {}", path.display()))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| anyhow!("truth table {} is empty", path.display()))?;
    let header = csv_fields(header);
    let find = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            anyhow!("truth table {} has no column `{name}` (columns: {})", path.display(), header.join(", "))
        })
    };
    let (arch_col, value_col) = (find("arch")?, find(column)?);
    let mut rows = Vec::new();
    for (i, line) in lines {
        let cells = csv_fields(line);
        let cell = |c: usize| {
            cells.get(c).map(|s| s.trim()).ok_or_else(|| {
                anyhow!("truth table {} line {}: only {} fields", path.display(), i + 1, cells.len())
            })
        };
        let value: f64 = cell(value_col)?
            .parse()
            .map_err(|_| anyhow!("truth table {} line {}: `{}` is not a number", path.display(), i + 1, cell(value_col).unwrap_or("")))?;
        rows.push((i + 1, cell(arch_col)?.to_string(), value));
    }
    Ok(rows)
}

/// Median and maximum of the truth values per subspace.
fn truth_stats(plan: &Plan, path: &Path, column: &str) -> Result<Vec<TruthStats>> {
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); plan.subspaces().len()];
    for (line, text, value) in read_truth(path, column)? {
        let arch = plan
            .parse(&text)
            .map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?;
        let info = plan.info(&arch).map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?;
        values[info.subspace as usize].push(value);
    }
    Ok(values
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let median = (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 });
            TruthStats { n, median, max: v.last().copied() }
        })
        .collect())
}

fn range(lo: f64, hi: f64, digits: usize) -> String {
    format!("{lo:.digits$}-{hi:.digits$}")
}

/// The plan of a split as a report: per subspace its size, count and cost ranges, and with a
/// truth table (path, column) the median and best ground-truth value.
pub fn split_report(plan: &Plan, space: &str, rule: &str, splitter: &str, truth: Option<(&Path, &str)>) -> Result<SplitReport> {
    let stats = match truth {
        Some((path, column)) => Some(truth_stats(plan, path, column)?),
        None => None,
    };
    let report = SplitReport {
        space: space.to_string(),
        rule: rule.to_string(),
        splitter: splitter.to_string(),
        method: plan.method().name(),
        exact: plan.exact(),
        assumes: plan.assumption().map(String::from),
        total: plan.total(),
        trash: plan.trash(),
        truth_column: truth.map(|(_, column)| column.to_string()),
        subspaces: plan
            .subspaces()
            .iter()
            .enumerate()
            .map(|(k, s)| SubspaceRow {
                id: s.id,
                label: s.label.clone(),
                size: s.size,
                trainable: s.trainable,
                count_min: s.count_range.0,
                count_max: s.count_range.1,
                flops_m_min: s.flops_m_range.0,
                flops_m_max: s.flops_m_range.1,
                params_m_min: s.params_m_range.0,
                params_m_max: s.params_m_range.1,
                truth: stats.as_ref().map(|t| t[k].clone()),
            })
            .collect(),
    };
    if report.subspaces.is_empty() {
        bail!("the plan has no subspaces");
    }
    Ok(report)
}

/// Runs `fewshot split`.
pub fn run(args: &SplitArgs, registry: &Registry) -> Result<()> {
    let plan = args.pipeline.plan(registry)?;
    let truth = args.truth.as_deref().map(|path| (path, args.truth_column.as_str()));
    let report = split_report(&plan, &args.pipeline.space.spec(), &args.pipeline.rule, &args.pipeline.splitter_spec(), truth)?;
    let text = match args.format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        Format::Table => table(&report),
    };
    Ok(print(&text)?)
}

/// The report as a text table with a one-line summary.
pub fn table(r: &SplitReport) -> String {
    let mut sizes = if r.exact { format!("exact ({})", r.method) } else { format!("estimated ({})", r.method) };
    if let Some(assumption) = &r.assumes {
        sizes.push_str(&format!(", assuming {assumption}"));
    }
    let mut out = format!(
        "space {}, rule {}, splitter {}: {} architectures ({} trash), {} subspaces, sizes {sizes}\n\n",
        r.space,
        r.rule,
        r.splitter,
        r.total,
        r.trash,
        r.subspaces.len()
    );
    let mut headers = vec!["id", "label", "size", "trainable", "count", "FLOPs (M)", "params (M)"];
    let truth_headers = r.truth_column.as_ref().map(|c| (format!("median {c}"), format!("max {c}")));
    if let Some((median, max)) = &truth_headers {
        headers.push(median);
        headers.push(max);
    }
    let rows: Vec<Vec<String>> = r
        .subspaces
        .iter()
        .map(|s| {
            let count = if s.count_min == s.count_max {
                s.count_min.to_string()
            } else {
                format!("{}-{}", s.count_min, s.count_max)
            };
            let mut row = vec![
                s.id.to_string(),
                s.label.clone(),
                s.size.to_string(),
                s.trainable.to_string(),
                count,
                range(s.flops_m_min, s.flops_m_max, 2),
                range(s.params_m_min, s.params_m_max, 3),
            ];
            if let Some(t) = &s.truth {
                let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
                row.push(show(t.median));
                row.push(show(t.max));
            }
            row
        })
        .collect();
    out.push_str(&render(&headers, &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\""), vec!["a", "b,c", "d\"e"]);
        assert_eq!(csv_fields("x,,y"), vec!["x", "", "y"]);
    }
}
