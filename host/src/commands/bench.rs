//! `fewshot bench`: speed benchmarks of the pipeline's stages — `plan` (planning and drawing),
//! `step` (the SBS training step against the PyTorch yardstick), `score` (zero-cost proxies
//! against `bench/torch_score.py`) and `eval` (supernet accuracy estimates against
//! `bench/torch_eval.py`).

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use clap::{Args, Subcommand};
use fewshot_core::{engine::backend::Device, proxy::Proxy};

use crate::{
    bench::{eval, plan, score, step},
    cli::Format,
    config::EvalSplit,
    io::{output::print, table::render},
    plugin_host::registry::Registry,
};

/// Arguments of `fewshot bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Split planning and architecture sampling: NB201 plan, exact MobileNet sizes, sampler
    /// throughput.
    Plan(BenchPlanArgs),
    /// Time the SBS training step of the reference workload (K NB201 supernets, one subnet per
    /// supernet per step, losses summed, one SGD update) and print the median ms/step.
    Step(StepArgs),
    /// Architectures per second of each zero-cost proxy on a list of architectures (the
    /// workload of `bench/torch_score.py`).
    Score(BenchScoreArgs),
    /// Architectures per second of supernet accuracy estimates with a trained run (the PyTorch
    /// yardstick: bench/torch_eval.py).
    Eval(BenchEvalArgs),
}

/// Arguments of `fewshot bench eval`.
#[derive(Args, Debug)]
pub struct BenchEvalArgs {
    /// A trained run directory (its supernets, images and `[eval]` settings).
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Architectures: one per line, or a CSV with an `arch` column.
    #[arg(long, value_name = "FILE")]
    archs: PathBuf,
    /// Only the first N architectures of the list.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// The images evaluated on.
    #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
    split: EvalSplit,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Arguments of `fewshot bench score`.
#[derive(Args, Debug)]
pub struct BenchScoreArgs {
    /// Proxies to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "naswot,az,synflow,snip")]
    proxy: Vec<Proxy>,
    /// Architectures: one per line, or a CSV with an `arch` column.
    #[arg(long, value_name = "FILE")]
    archs: PathBuf,
    /// Only the first N architectures of the list.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Search space spec.
    #[arg(long, default_value = "nb201")]
    space: String,
    /// Images (an ImageFolder tree or CIFAR-10 binary folder; default: built-in images).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Images in the scoring batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Channel divisor of the scored networks.
    #[arg(long, default_value_t = 1.0)]
    channel_divisor: f64,
    /// Compute device: cpu, reference, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights and the batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Arguments of `fewshot bench plan`.
#[derive(Args, Debug)]
pub struct BenchPlanArgs {
    /// Timed runs per benchmark; the median is reported (at least 5).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Arguments of `fewshot bench step`: the workload of the PyTorch yardstick by default.
#[derive(Args, Debug)]
pub struct StepArgs {
    /// Search space spec.
    #[arg(long, default_value = "nb201")]
    space: String,
    /// Architecture sequence: one line per step, one architecture per supernet (default: for
    /// NB201 `../shared/bench/sbs_archs.txt`, the sequence the PyTorch reference runs, from the
    /// current folder or the source checkout; for any other space a seeded sequence of uniformly
    /// drawn valid architectures).
    #[arg(long, value_name = "FILE")]
    archs: Option<PathBuf>,
    /// Write the sequence the benchmark runs to FILE, in the format of --archs (for a
    /// yardstick to run the same steps, e.g. bench/torch_mobilenet_step.py).
    #[arg(long, value_name = "FILE")]
    save_archs: Option<PathBuf>,
    /// Number of supernets K.
    #[arg(long, default_value_t = 3)]
    supernets: usize,
    /// Channel divisor c.
    #[arg(long, default_value_t = 2.0)]
    channel_divisor: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Compute device: cpu, reference (the GPU code path on the CPU, for checks), cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights and the random batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl StepArgs {
    fn workload(&self) -> step::Workload {
        step::Workload {
            space: self.space.clone(),
            archs: self.archs.clone(),
            save_archs: self.save_archs.clone(),
            supernets: self.supernets,
            channel_divisor: self.channel_divisor,
            batch: self.batch,
            steps: self.steps,
            warmup: self.warmup,
            device: self.device,
            threads: self.threads,
            seed: self.seed,
        }
    }
}

/// Runs `fewshot bench`.
pub fn run(args: &BenchArgs, registry: Arc<Registry>) -> Result<()> {
    let text = match &args.command {
        BenchCommand::Plan(a) => {
            let results = plan::measure(&registry, a.runs)?;
            match a.format {
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&results)?),
                Format::Table => {
                    let rows: Vec<Vec<String>> = results
                        .iter()
                        .map(|r| {
                            let digits = if r.median < 0.1 { 4 } else { 2 };
                            vec![r.name.clone(), format!("{:.digits$} {}", r.median, r.unit), r.goal.unwrap_or("").to_string()]
                        })
                        .collect();
                    format!("median of {} runs\n{}", a.runs, render(&["benchmark", "median", "goal"], &rows))
                }
            }
        }
        BenchCommand::Step(a) => step::run(&a.workload(), &registry)?,
        BenchCommand::Score(a) => score::run(
            &score::ScoreWorkload {
                proxies: a.proxy.clone(),
                space: a.space.clone(),
                archs: a.archs.clone(),
                limit: a.limit,
                data: a.data.clone(),
                batch: a.batch,
                channel_divisor: a.channel_divisor,
                device: a.device,
                threads: a.threads,
                seed: a.seed,
            },
            &registry,
        )?,
        BenchCommand::Eval(a) => eval::run(
            &eval::EvalWorkload { run: a.run.clone(), archs: a.archs.clone(), limit: a.limit, split: a.split, threads: a.threads },
            registry.clone(),
        )?,
    };
    Ok(print(&text)?)
}
