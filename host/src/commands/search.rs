//! `fewshot search`: evolutionary (or random) search with a run's trained supernets as the
//! evaluator.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use clap::Args;
use fewshot_core::util::files::write_atomic;

use super::run_options::SearchOptions;
use crate::{
    config::CONFIG_FILE,
    output::print,
    registry::Registry,
    workflow::{Run, SEARCH_STATE_FILE},
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
    let mut run = Run::open(&args.run, registry)?;
    let before = run.config.clone();
    args.search.apply(&mut run.config);
    run.config.validate()?;
    if args.restart {
        let state = run.file(SEARCH_STATE_FILE);
        if state.exists() {
            std::fs::remove_file(&state).with_context(|| format!("cannot remove {}", state.display()))?;
        }
    } else {
        // Refuse settings the saved search cannot continue with before anything is written.
        run.open_search()?;
    }
    if run.config != before {
        let path = run.file(CONFIG_FILE);
        write_atomic(&path, run.config.to_toml()?.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let state = run.search(true)?;
    print(&format!("{}\n", run.search_summary(&state, 5)?))?;
    Ok(())
}
