//! The comparison of activations: the same pipeline once per activation (e.g. ReLU, tanh,
//! GELU), each in its own run directory under the comparison's folder (so a comparison resumes
//! like a run), then one table (`comparison.csv`), plot (`comparison.svg`) and report
//! (`comparison.md`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result};

use super::pipeline::{pipeline, RunSummary};
use crate::{
    config::RunConfig,
    io::csv,
    plugin_host::registry::Registry,
    report::{
        markdown::{code_span, Markdown},
        plots::{self, Comparison},
    },
    run_dir::{RunDir, REPORT_FILE},
};

/// The comparison table (one row per activation) and where its report is.
pub struct Compared {
    /// The table's header.
    pub headers: Vec<String>,
    /// One row per activation.
    pub rows: Vec<Vec<String>>,
    /// `comparison.md`.
    pub report: PathBuf,
}

/// Runs the pipeline of `base` once per activation in `out/<activation>`, then writes the
/// comparison files into `out`.
pub fn compare(out: &Path, base: &RunConfig, activations: &[String], registry: Arc<Registry>) -> Result<Compared> {
    let mut results = Vec::new();
    for (i, activation) in activations.iter().enumerate() {
        eprintln!("== activation {activation} ({}/{})", i + 1, activations.len());
        let mut config = base.clone();
        config.space.activation = Some(activation.clone());
        let summary = pipeline(RunDir::new(&out.join(activation)), config, registry.clone())?;
        results.push((activation.clone(), summary));
    }
    let (headers, rows) = comparison_rows(&results);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    csv::write(&out.join("comparison.csv"), &headers, &rows)?;

    let ranked = results.iter().all(|(_, s)| s.rank.is_some());
    let plot = if ranked {
        let params_tau = results.iter().find_map(|(_, s)| baseline_tau(s, "params"));
        Comparison {
            title: "Kendall τ-b of the supernets' ranking per activation".into(),
            value_label: "Kendall τ-b".into(),
            bars: results.iter().map(|(a, s)| (a.clone(), s.rank.as_ref().and_then(|r| r.predictor.overall.kendall_tau_b))).collect(),
            references: params_tau.map(|t| vec![("params (exact)".to_string(), t)]).unwrap_or_default(),
        }
    } else {
        Comparison {
            title: "Supernet accuracy of the best architecture per activation".into(),
            value_label: "accuracy (%)".into(),
            bars: results.iter().map(|(a, s)| (a.clone(), Some(s.best.accuracy))).collect(),
            references: Vec::new(),
        }
    };
    plots::comparison(&out.join("comparison.svg"), &plot)?;

    let mut md = Markdown::new("fewshot compare: activations");
    md.paragraph(&format!(
        "The same pipeline (space, split, sampler, data, budget and seed) run once per activation; each run's report is in its folder. {}",
        if ranked { "The ground truth is the table's, measured with the space's original activation." } else { "" }
    ));
    md.table(&headers, &rows);
    md.image("comparison", "comparison.svg");
    md.paragraph(&results.iter().map(|(a, s)| format!("- {a}: {}", code_span(&s.dir.file(REPORT_FILE).display().to_string()))).collect::<Vec<_>>().join("\n"));
    let report = out.join("comparison.md");
    md.write(&report)?;
    Ok(Compared { headers, rows, report })
}

fn baseline_tau(s: &RunSummary, name: &str) -> Option<f64> {
    s.rank.as_ref()?.baselines.iter().find(|b| b.name == name)?.overall.kendall_tau_b
}

/// The comparison table: one row per activation.
fn comparison_rows(results: &[(String, RunSummary)]) -> (Vec<String>, Vec<Vec<String>>) {
    let ranked = results.iter().any(|(_, s)| s.rank.is_some());
    let truth_columns: Vec<String> = results.iter().flat_map(|(_, s)| s.best_truth.iter().map(|(c, _)| c.clone())).fold(Vec::new(), |mut acc, c| {
        if !acc.contains(&c) && c.ends_with("_acc") {
            acc.push(c);
        }
        acc
    });
    let mut headers: Vec<String> =
        ["activation", "final train loss", "best architecture", "supernet acc (%)", "FLOPs (M)", "params (M)"].map(String::from).to_vec();
    headers.extend(truth_columns.iter().map(|c| format!("best: {c}")));
    if ranked {
        headers.extend(["tau supernets", "tau params", "tau flops"].map(String::from));
    }
    let fmt = |v: Option<f64>, d: usize| v.map_or("n/a".to_string(), |v| format!("{v:.d$}"));
    let rows = results
        .iter()
        .map(|(activation, s)| {
            let mut row = vec![
                activation.clone(),
                fmt(s.final_loss, 4),
                s.best.arch.clone(),
                format!("{:.2}", s.best.accuracy),
                format!("{:.2}", s.best.flops_m),
                format!("{:.3}", s.best.params_m),
            ];
            for c in &truth_columns {
                row.push(fmt(s.best_truth.iter().find(|(k, _)| k == c).map(|(_, v)| *v), 2));
            }
            if ranked {
                row.push(fmt(s.rank.as_ref().and_then(|r| r.predictor.overall.kendall_tau_b), 4));
                row.push(fmt(baseline_tau(s, "params"), 4));
                row.push(fmt(baseline_tau(s, "flops"), 4));
            }
            row
        })
        .collect();
    (headers, rows)
}
