//! `fewshot search`: evolutionary (or random) search with a run's trained supernets as the
//! evaluator.

use std::{path::PathBuf, sync::Arc};

use anyhow::Result;
use clap::Args;

use crate::{
    cli::run_options::SearchOptions,
    io::output::print,
    plugin_host::registry::Registry,
    run_dir::RunDir,
    stages::{search, Run},
};

/// Arguments of `fewshot search`; options given override the run's `[search]` settings (and are
/// stored in its config.toml).
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Run directory of a trained run.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    #[command(flatten)]
    pub search: SearchOptions,
    /// Discard a previous (finished or interrupted) search of this run and start over.
    #[arg(long)]
    pub restart: bool,
}

/// Runs `fewshot search`.
pub fn run(args: &SearchArgs, registry: Arc<Registry>) -> Result<()> {
    let mut run = Run::open(RunDir::new(&args.run), registry)?;
    let before = run.config.clone();
    args.search.apply(&mut run.config);
    run.config.validate()?;
    if args.restart {
        run.dir.remove_search_state()?;
    } else {
        // Refuse settings the saved search cannot continue with before anything is written.
        search::open(&run)?;
    }
    if run.config != before {
        run.dir.save_config(&run.config)?;
    }
    let state = search::search(&run, true)?;
    print(&format!("{}\n", search::summary(&run, &state, 5)?))?;
    Ok(())
}
