//! The whole pipeline in one run directory — plan, train, rank (with a truth table), search,
//! report — as `fewshot run` and `fewshot compare` run it. Every stage is resumable: running it
//! again continues where it stopped (training from its last checkpoint, ranking from the
//! predictions written so far, the search from its last generation). Progress goes to stderr.

use std::{sync::Arc, time::Instant};

use anyhow::Result;
use fewshot_core::metrics::RankReport;

use super::{plan, rank, report, search, train, Run};
use crate::{
    config::RunConfig,
    estimator::Estimator,
    io::table::render,
    plugin_host::registry::Registry,
    report::{rank_table, rank_verdicts},
    run_dir::{BestRecord, RunDir},
};

/// What a finished run produced.
pub struct RunSummary {
    /// The run directory.
    pub dir: RunDir,
    /// The best architecture of the search.
    pub best: BestRecord,
    /// Its ground-truth values, when a truth table is set.
    pub best_truth: Vec<(String, f64)>,
    /// Rank correlations, when a truth table is set.
    pub rank: Option<RankReport>,
    /// Last epoch's mean training loss over all supernets.
    pub final_loss: Option<f64>,
    /// What estimated the architectures.
    pub estimator: Estimator,
}

/// Runs every stage in `dir`.
pub fn pipeline(dir: RunDir, config: RunConfig, registry: Arc<Registry>) -> Result<RunSummary> {
    let mut stages = StageLog::new(if config.rank.truth.is_some() { 5 } else { 4 });
    let mut announce = |what: &'static str| stages.begin(what);
    let run = Run::create(dir, config, registry)?;
    announce("plan");
    let split = run.write_plan()?;
    eprint!("{}", plan::table(&split));
    announce("train");
    if run.config.eval.estimator.needs_supernets() {
        train::train(&run, run.dir.has_checkpoint(), None, true)?;
        eprintln!("{}", train::summary(&run)?);
    } else {
        eprintln!("no supernets to train: the estimator `{}` is training-free", run.config.eval.estimator);
    }
    let ranked = if run.config.rank.truth.is_some() {
        announce("rank");
        let ranked = rank::rank(&run)?;
        let (headers, rows) = rank_table(&ranked.report, "subspace");
        eprintln!("{}", render(&headers, &rows));
        for verdict in rank_verdicts(&ranked.report, "subspace") {
            eprintln!("  {verdict}");
        }
        Some(ranked)
    } else {
        None
    };
    announce("search");
    let state = search::search(&run, true)?;
    eprintln!("{}", search::summary(&run, &state, 5)?);
    announce("report");
    report::write(&run, &state, ranked.as_ref())?;
    stages.finish();
    let best = run.dir.read_best()?;
    let best_truth = match run.truth_table()? {
        Some(t) => t.values(&best.arch),
        None => Vec::new(),
    };
    let final_loss = if run.config.eval.estimator.needs_supernets() { train::final_loss(&run)? } else { None };
    let estimator = run.config.eval.estimator.clone();
    Ok(RunSummary { dir: run.dir, best, best_truth, rank: ranked.map(|r| r.report), final_loss, estimator })
}

/// Announces the pipeline's stages on stderr, each with the time the one before it took.
struct StageLog {
    stages: usize,
    done: usize,
    current: Option<(&'static str, Instant)>,
}

impl StageLog {
    fn new(stages: usize) -> StageLog {
        StageLog { stages, done: 0, current: None }
    }

    /// Ends the current stage and starts `what`.
    fn begin(&mut self, what: &'static str) {
        self.finish();
        eprintln!("[{}/{}] {what}", self.done + 1, self.stages);
        self.current = Some((what, Instant::now()));
    }

    /// Ends the current stage, printing how long it took.
    fn finish(&mut self) {
        if let Some((what, start)) = self.current.take() {
            self.done += 1;
            eprintln!("[{}/{}] {what}: done in {:.1} s", self.done, self.stages, start.elapsed().as_secs_f64());
        }
    }
}
