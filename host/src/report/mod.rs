//! Reports of a run: SVG plots ([`plots`]), the `report.md` builder ([`markdown`]), and the
//! tables they share with the command line (rank correlations as text or markdown).

pub mod markdown;
pub mod plots;

use std::path::Path;

use anyhow::{Context, Result};
use fewshot_core::metrics::{group_order, PredictorReport, RankMetrics, RankReport};
use serde::{Deserialize, Serialize};

/// One line of a run's `metrics.jsonl`: the epoch and, per supernet, its training metrics.
/// Only these fields are read; any others on the line are ignored.
///
/// ```json
/// {"epoch": 3, "supernets": [{"loss": 1.21, "accuracy": 56.3, "steps": 391}, ...], ...}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch number as the trainer counts it.
    pub epoch: u32,
    /// One entry per supernet, in subspace order.
    pub supernets: Vec<SupernetEpoch>,
}

/// One supernet's training metrics over one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupernetEpoch {
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy in percent.
    pub accuracy: f64,
    /// Optimizer steps this supernet received in the epoch.
    pub steps: u64,
}

/// Parses `metrics.jsonl` text (one [`EpochRecord`] per non-empty line); `origin` names the
/// source in errors.
pub fn parse_metrics_jsonl(text: &str, origin: &str) -> Result<Vec<EpochRecord>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{origin}: line {}: not a training metrics record", i + 1))
        })
        .collect()
}

/// Reads a run's `metrics.jsonl`.
pub fn read_metrics_jsonl(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_metrics_jsonl(&text, &path.display().to_string())
}

/// A metric with four decimals, or `n/a` when undefined.
pub fn format_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

/// The distinct labels, in report order (numeric when all are integers).
pub fn group_labels<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    group_order(&labels.map(String::from).collect::<Vec<_>>())
}

/// A plain-text table with columns padded to their widest cell.
pub fn text_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, &w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers);
    for row in rows {
        out += &line(row);
    }
    out
}

fn metric_cells(metrics: &RankMetrics) -> Vec<String> {
    let mut cells = vec![
        metrics.n.to_string(),
        format_metric(metrics.kendall_tau_b),
        format_metric(metrics.spearman_rho),
    ];
    for top in &metrics.top_k {
        cells.push(format_metric(top.overlap));
        cells.push(format_metric(top.precision));
    }
    cells
}

fn percent_label(percent: f64) -> String {
    format!("{percent}%")
}

/// The rank-correlation table: one row per scope (all, then each group named
/// `"{group_name} {label}"`) and predictor (the one under test, then the baselines), with
/// n, τ-b, ρ, and overlap/precision at each top-k percentage.
pub fn rank_table(report: &RankReport, group_name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut headers: Vec<String> = ["scope", "predictor", "n", "tau_b", "rho"].map(String::from).to_vec();
    for &p in &report.percents {
        headers.push(format!("overlap@{}", percent_label(p)));
        headers.push(format!("precision@{}", percent_label(p)));
    }
    let predictors: Vec<&PredictorReport> = std::iter::once(&report.predictor).chain(&report.baselines).collect();
    let mut rows = Vec::new();
    let row = |scope: &str, name: &str, metrics: &RankMetrics| {
        let mut cells = vec![scope.to_string(), name.to_string()];
        cells.extend(metric_cells(metrics));
        cells
    };
    for p in &predictors {
        rows.push(row("all", &p.name, &p.overall));
    }
    for (g, group) in report.predictor.groups.iter().enumerate() {
        let scope = format!("{group_name} {}", group.group);
        for p in &predictors {
            rows.push(row(&scope, &p.name, &p.groups[g].metrics));
        }
    }
    (headers, rows)
}

/// One line per scope saying whether the predictor's τ-b beats each baseline's, e.g.
/// `all: supernet τ-b 0.7350 beats params (0.5778) and flops (0.5778)`.
pub fn rank_verdicts(report: &RankReport, group_name: &str) -> Vec<String> {
    let mut scopes: Vec<(String, Option<&str>)> = vec![("all".to_string(), None)];
    scopes.extend(report.predictor.groups.iter().map(|g| (format!("{group_name} {}", g.group), Some(g.group.as_str()))));
    let tau = |p: &PredictorReport, group: Option<&str>| match group {
        None => p.overall.kendall_tau_b,
        Some(g) => p.groups.iter().find(|m| m.group == g).and_then(|m| m.metrics.kendall_tau_b),
    };
    scopes
        .into_iter()
        .map(|(scope, group)| {
            let (mut beaten, mut not_beaten, mut undefined) = (Vec::new(), Vec::new(), Vec::new());
            for base in &report.baselines {
                let text = format!("{} ({})", base.name, format_metric(tau(base, group)));
                match report.beats(&base.name, group) {
                    Some(true) => beaten.push(text),
                    Some(false) => not_beaten.push(text),
                    None => undefined.push(text),
                }
            }
            let mut parts = Vec::new();
            if !beaten.is_empty() {
                parts.push(format!("beats {}", beaten.join(" and ")));
            }
            if !not_beaten.is_empty() {
                parts.push(format!("does NOT beat {}", not_beaten.join(" and ")));
            }
            if !undefined.is_empty() {
                parts.push(format!("cannot be compared with {}", undefined.join(" and ")));
            }
            let name = &report.predictor.name;
            format!("{scope}: {name} τ-b {} {}", format_metric(tau(&report.predictor, group)), parts.join(", "))
                .trim_end()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use fewshot_core::metrics::{rank_report, Predictor};

    use super::*;

    #[test]
    fn metrics_jsonl_reads_the_minimal_fields_and_names_bad_lines() {
        let text = "{\"epoch\":0,\"supernets\":[{\"loss\":2.1,\"accuracy\":20.5,\"steps\":10}],\"lr\":0.1}\n\n\
                    {\"epoch\":1,\"supernets\":[{\"loss\":1.5,\"accuracy\":40.0,\"steps\":10}]}\n";
        let records = parse_metrics_jsonl(text, "m.jsonl").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].supernets[0], SupernetEpoch { loss: 1.5, accuracy: 40.0, steps: 10 });
        let err = parse_metrics_jsonl("{\"epoch\":0}\n{oops\n", "m.jsonl").unwrap_err();
        assert_eq!(err.to_string(), "m.jsonl: line 1: not a training metrics record");

        let dir = std::env::temp_dir().join(format!("fewshot-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
        assert_eq!(read_metrics_jsonl(&dir.join("metrics.jsonl")).unwrap(), records);
        let missing = read_metrics_jsonl(&dir.join("missing.jsonl")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read ") && missing.ends_with("missing.jsonl"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_tables_align_columns() {
        let table = text_table(&["a".into(), "bb".into()], &[vec!["long".into(), "1".into()], vec!["x".into(), "22".into()]]);
        assert_eq!(table, "a     bb\nlong  1\nx     22\n");
    }

    #[test]
    fn rank_table_and_verdicts_cover_every_scope_and_predictor() {
        let truth = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let pred = [1.0, 2.0, 3.0, 6.0, 5.0, 4.0];
        let params = [1.0, 3.0, 2.0, 4.0, 5.0, 6.0];
        let groups: Vec<String> = ["0", "0", "0", "1", "1", "1"].map(String::from).to_vec();
        let report = rank_report(
            &truth,
            Some(&groups),
            Predictor { name: "supernet", values: &pred },
            &[Predictor { name: "params", values: &params }],
            &[50.0],
        );
        let (headers, rows) = rank_table(&report, "subspace");
        assert_eq!(headers, ["scope", "predictor", "n", "tau_b", "rho", "overlap@50%", "precision@50%"]);
        let scopes: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
        assert_eq!(
            scopes,
            [("all", "supernet"), ("all", "params"), ("subspace 0", "supernet"), ("subspace 0", "params"), ("subspace 1", "supernet"), ("subspace 1", "params")]
        );
        assert_eq!(rows[2][3], "1.0000");
        assert_eq!(rows[4][3], "-1.0000");
        let verdicts = rank_verdicts(&report, "subspace");
        assert_eq!(verdicts[1], "subspace 0: supernet τ-b 1.0000 beats params (0.3333)");
        assert_eq!(verdicts[2], "subspace 1: supernet τ-b -1.0000 does NOT beat params (1.0000)");
    }
}
