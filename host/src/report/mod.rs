//! Reports: SVG plots ([`plots`]), the markdown builder ([`markdown`]), and the rank-correlation
//! tables and verdicts they share with the command line (rendered as text by
//! [`crate::io::table`] or as markdown).

pub mod markdown;
pub mod plots;

use fewshot_core::metrics::{group_order, PredictorReport, RankMetrics, RankReport};

/// A metric with four decimals, or `n/a` when undefined.
pub fn format_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

/// The distinct labels, in report order (numeric when all are integers).
pub fn group_labels<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    group_order(&labels.map(String::from).collect::<Vec<_>>())
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

/// A `metrics.jsonl` record of `epoch` with one supernet per (loss, accuracy, steps), for tests.
#[cfg(test)]
pub fn test_epoch(epoch: usize, supernets: &[(f64, f64, u64)]) -> fewshot_core::train::EpochMetrics {
    use fewshot_core::train::{EpochMetrics, SupernetEpoch};
    EpochMetrics {
        epoch,
        lr: 0.025,
        steps: supernets.iter().map(|s| s.2).max().unwrap_or(0),
        images: 0,
        images_per_s: 0.0,
        seconds: 0.0,
        loss: 0.0,
        accuracy: 0.0,
        supernets: supernets
            .iter()
            .enumerate()
            .map(|(k, &(loss, accuracy, steps))| SupernetEpoch { subspace: k as u32, steps, loss, accuracy })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use fewshot_core::metrics::{rank_report, Predictor};

    use super::*;

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
