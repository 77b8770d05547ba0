//! `fewshot run`: the whole pipeline in one resumable run directory — plan, train, rank (with a
//! truth table), search, report — then the best architecture on stdout.

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use clap::Args;

use crate::{
    estimator::Estimator,
    cli::run_options::RunOptions,
    io::output::print,
    plugin_host::registry::Registry,
    run_dir::{RunDir, REPORT_FILE},
    stages::{
        pipeline::{pipeline, RunSummary},
    },
};

/// Arguments of `fewshot run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Run directory (default: runs/<space>-<splitter>-<sampler>-seed<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out with its stored configuration.
    #[arg(long, requires = "out")]
    pub resume: bool,
}

/// Runs `fewshot run`.
pub fn run(args: &RunArgs, registry: Arc<Registry>) -> Result<()> {
    let config = match &args.out {
        Some(out) => args.options.config_for(out, args.resume)?,
        None => args.options.resolve()?,
    };
    let out = args.out.clone().unwrap_or_else(|| RunDir::default_path(&config));
    let summary = pipeline(RunDir::new(&out), config, registry)?;
    print(&format!("{}\n", summary_text(&summary)))?;
    Ok(())
}

/// The closing lines `fewshot run` prints.
fn summary_text(s: &RunSummary) -> String {
    let fitness = if s.estimator == Estimator::supernet() {
        format!("supernet accuracy {:.2}%", s.best.accuracy)
    } else {
        format!("{} score {:.4}", s.estimator, s.best.accuracy)
    };
    let mut out = format!(
        "best architecture: {}\n  subspace {} ({}), {}, {:.2} MFLOPs, {:.3} M params\n",
        s.best.arch, s.best.subspace, s.best.subspace_label, fitness, s.best.flops_m, s.best.params_m
    );
    if !s.best_truth.is_empty() {
        let values: Vec<String> = s.best_truth.iter().map(|(c, v)| format!("{c} {v:.2}")).collect();
        out.push_str(&format!("  ground truth: {}\n", values.join(", ")));
    }
    if let Some(r) = &s.rank {
        let tau = |name: &str| {
            r.baselines
                .iter()
                .find(|b| b.name == name)
                .and_then(|b| b.overall.kendall_tau_b)
                .map_or("n/a".to_string(), |t| format!("{t:.3}"))
        };
        out.push_str(&format!(
            "  Kendall tau over {} architectures: {} {}, params {}, flops {}\n",
            r.predictor.overall.n,
            if s.estimator == Estimator::supernet() { "supernets" } else { r.predictor.name.as_str() },
            r.predictor.overall.kendall_tau_b.map_or("n/a".to_string(), |t| format!("{t:.3}")),
            tau("params"),
            tau("flops")
        ));
    }
    out.push_str(&format!("report: {}", s.dir.file(REPORT_FILE).display()));
    out
}
