//! `fewshot`: few-shot neural architecture search from the command line.
//!
//! The crate in layers, each using only the ones listed before it:
//! - [`io`]: CSV files, text tables, standard output;
//! - [`report`]: markdown and SVG plots, the rank-correlation tables;
//! - [`plugin_host`]: the plugin registry, conformance checks, reports on refused libraries;
//! - [`config`]: the run configuration (`config.toml`) and its defaults;
//! - [`bench`]: speed benchmarks;
//! - [`run_dir`]: the files of a run directory;
//! - [`stages`]: plan, train, eval, rank, search, report, the pipeline and the comparison;
//! - [`cli`]: the argument types that commands share;
//! - [`commands`]: one entry point per subcommand, dispatched here.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod bench;
mod cli;
mod commands;
mod config;
mod estimator;
mod grad_split;
mod io;
mod plugin_host;
mod progress;
mod proxy_split;
mod report;
mod run_dir;
mod stages;

use plugin_host::registry::{LoadError, Registry};

/// Few-shot NAS: split a search space, train one supernet per subspace, search.
#[derive(Parser, Debug)]
#[command(name = "fewshot", version, about)]
struct Cli {
    /// Load a plugin library (repeatable). Folders in FEWSHOT_PLUGIN_PATH are loaded too.
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Show full diagnostics (e.g. the whole ABI layout report of a refused plugin).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List, show and check plugins.
    Plugins(commands::plugins::PluginsArgs),
    /// Plan the split of a search space: subspaces, sizes, count and cost ranges.
    Split(commands::split::SplitArgs),
    /// Exact FLOPs and parameters of architectures.
    Costs(commands::costs::CostsArgs),
    /// Speed benchmarks.
    Bench(commands::bench::BenchArgs),
    /// Rank correlation of predicted accuracies with a ground-truth table.
    Rank(commands::rank::RankArgs),
    /// Train the supernets of a split (one per subspace) with a sampler.
    Train(commands::train::TrainArgs),
    /// Estimate subnet accuracies with a run's trained supernets.
    Eval(commands::eval::EvalArgs),
    /// Score architectures with a zero-cost proxy (naswot, az, synflow, snip), without training.
    Score(commands::score::ScoreArgs),
    /// Evolutionary (or random) search with a run's supernets as the evaluator.
    Search(commands::search::SearchArgs),
    /// The whole pipeline in one resumable run directory: plan, train, rank, search, report.
    Run(commands::run::RunArgs),
    /// Run the pipeline once per activation and compare.
    Compare(commands::compare::CompareArgs),
    /// Train found architectures from scratch as stand-alone networks and test them.
    Retrain(commands::retrain::RetrainArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Built-ins plus every library; loaded only by commands that need it (`plugins check` loads
    // just the library it checks).
    let registry = || Registry::load(&cli.plugins);
    match &cli.command {
        Command::Plugins(args) => commands::plugins::run(args, registry),
        Command::Split(args) => commands::split::run(args, &registry()?),
        Command::Costs(args) => commands::costs::run(args, &registry()?),
        Command::Bench(args) => commands::bench::run(args, registry()?.into()),
        Command::Rank(args) => commands::rank::run(args),
        Command::Train(args) => commands::train::run(args, registry()?.into()),
        Command::Eval(args) => commands::eval::run(args, registry()?.into()),
        Command::Score(args) => commands::score::run(args, &registry()?),
        Command::Search(args) => commands::search::run(args, registry()?.into()),
        Command::Run(args) => commands::run::run(args, registry()?.into()),
        Command::Compare(args) => commands::compare::run(args, registry()?.into()),
        Command::Retrain(args) => commands::retrain::run(args, registry()?.into()),
    }
}

/// Reports a bug in fewshot itself as an error line instead of Rust's panic message (panics in
/// plugin code never get here: the SDK turns them into errors at the boundary).
fn report_internal_errors() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error in fewshot{location}: {message} (please report this)");
    }));
}

fn main() -> ExitCode {
    report_internal_errors();
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("error: {err:#}");
            let full_report = err
                .chain()
                .find_map(|e| e.downcast_ref::<LoadError>())
                .and_then(|e| e.full_report.as_deref());
            if let (true, Some(report)) = (verbose, full_report) {
                eprintln!("\n{report}");
            }
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}
