//! `fewshot`: few-shot neural architecture search from the command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

mod commands;
mod registry;

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
    /// List and check plugins.
    Plugins(commands::plugins::PluginsArgs),
    /// Speed benchmarks.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let registry = registry::Registry::load(&cli.plugins)?;
    match &cli.command {
        Command::Plugins(args) => commands::plugins::run(args, &registry),
        Command::Bench(command) => commands::bench::run(command, &registry),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
