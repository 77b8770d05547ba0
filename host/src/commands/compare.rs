//! `fewshot compare`: the same pipeline once per activation (e.g. ReLU, tanh, GELU), then one
//! comparison table and plot. Each activation gets its own run directory under `--out`, so the
//! comparison resumes like `fewshot run`.

use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use clap::Args;
use fewshot_core::util::files::write_atomic;

use super::{
    run::{pipeline, RunSummary},
    run_options::RunOptions,
};
use crate::{
    output::print,
    registry::Registry,
    report::{
        markdown::{code_span, Markdown},
        plots::{self, Comparison},
        text_table,
    },
};

/// Arguments of `fewshot compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Activations to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "relu,tanh,gelu")]
    pub activations: Vec<String>,
    /// Folder of the comparison (one run directory per activation inside).
    #[arg(long, value_name = "DIR", default_value = "runs/compare")]
    pub out: PathBuf,
}

/// Runs `fewshot compare`.
pub fn run(args: &CompareArgs, registry: Arc<Registry>) -> Result<()> {
    if args.activations.is_empty() {
        bail!("--activations names no activation");
    }
    if args.options.activation.is_some() {
        bail!("give the activations with --activations, not --activation");
    }
    let mut results = Vec::new();
    for (i, activation) in args.activations.iter().enumerate() {
        eprintln!("== activation {activation} ({}/{})", i + 1, args.activations.len());
        let mut config = args.options.resolve()?;
        config.space.activation = Some(activation.clone());
        let summary = pipeline(&args.out.join(activation), config, registry.clone())?;
        results.push((activation.clone(), summary));
    }
    let table = comparison_rows(&results);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut csv = table.0.join(",") + "\n";
    for row in &table.1 {
        csv.push_str(&(row.iter().map(|c| c.replace(',', ";")).collect::<Vec<_>>().join(",") + "\n"));
    }
    write_atomic(&args.out.join("comparison.csv"), csv.as_bytes()).context("cannot write comparison.csv")?;

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
    plots::comparison(&args.out.join("comparison.svg"), &plot)?;

    let mut md = Markdown::new("fewshot compare: activations");
    md.paragraph(&format!(
        "The same pipeline (space, split, sampler, data, budget and seed) run once per activation; each run's report is in its folder. {}",
        if ranked { "The ground truth is the table's, measured with the space's original activation." } else { "" }
    ));
    md.table(&table.0, &table.1);
    md.image("comparison", "comparison.svg");
    md.paragraph(&results.iter().map(|(a, s)| format!("- {a}: {}", code_span(&s.dir.join("report.md").display().to_string()))).collect::<Vec<_>>().join("\n"));
    md.write(&args.out.join("comparison.md"))?;
    print(&format!("{}\ncomparison: {}\n", text_table(&table.0, &table.1), args.out.join("comparison.md").display()))?;
    Ok(())
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
