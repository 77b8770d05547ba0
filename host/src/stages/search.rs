//! The search stage: evolutionary (or random) search over the run's space, resumable from
//! `search_state.json`. Candidates are drawn uniformly over the slots and must be valid, not
//! trash and within the cost limits ([`PlanCandidates`]); each is scored by its own subspace's
//! supernet on the validation split ([`SupernetFitness`]). Ends by writing `search.csv` and
//! `best.json`.

use anyhow::{anyhow, Result};
use fewshot_core::{
    plan::{ArchInfo, Plan},
    search::{Candidates, Evaluated, Fitness, SearchState},
    util::rng::Rng,
};
use fewshot_sdk::Arch;

use super::{
    eval::{with_evaluator, EvaluatorDyn},
    Run,
};
use crate::{
    config::EvalSplit,
    io::table::render,
    run_dir::{BestRecord, SEARCH_STATE_FILE},
};

/// Runs the configured search (resuming `search_state.json`), then writes `search.csv` and
/// `best.json`.
pub fn search(run: &Run, progress: bool) -> Result<SearchState> {
    let state_path = run.dir.file(SEARCH_STATE_FILE);
    let mut state = open(run)?;
    let s = &run.config.search;
    let limits = Limits { flops_max: s.flops_max, flops_min: s.flops_min, params_max: s.params_max };
    let mut candidates = PlanCandidates { plan: &run.plan, limits };
    let total = state.config().generations + 1;
    with_evaluator(run, EvalSplit::Valid, |eval| {
        let mut fitness = SupernetFitness { plan: &run.plan, eval };
        while !state.is_finished() {
            let generation = state.completed_generations();
            let scored = state.run_generation(&mut candidates, &mut fitness).map_err(|e| e.to_string())?;
            state.save(&state_path).map_err(|e| e.to_string())?;
            if progress {
                let best = state.best().map_or(String::new(), |b| format!(", best so far {:.2}%", b.fitness));
                eprintln!("search: generation {}/{total}: {scored} candidates scored{best}", generation + 1);
            }
        }
        Ok(())
    })?;
    write_results(run, &state)?;
    Ok(state)
}

/// The saved search state (a fresh one where none is saved); an error when the saved one was
/// started with other settings, seed or space.
pub fn open(run: &Run) -> Result<SearchState> {
    let config = run.config.search_config();
    SearchState::open(&run.dir.file(SEARCH_STATE_FILE), config, run.config.seed, run.plan.option_counts().to_vec())
        .map_err(|e| anyhow!("{e}"))
}

/// The `n` best candidates of a search as a table, with ground truth when a truth table is set.
pub fn summary(run: &Run, state: &SearchState, n: usize) -> Result<String> {
    let truth = run.truth_table()?;
    let column = &run.config.rank.truth_column;
    let mut headers: Vec<String> = ["rank", "arch", "subspace", "accuracy (%)", "FLOPs (M)", "params (M)"].map(String::from).to_vec();
    if truth.is_some() {
        headers.push(format!("truth {column}"));
    }
    let mut rows = Vec::new();
    for (i, row) in state.ranked().into_iter().take(n).enumerate() {
        let (arch, info) = describe(run, row)?;
        let mut cells = vec![
            (i + 1).to_string(),
            arch.clone(),
            run.plan.subspaces()[info.subspace as usize].label.clone(),
            format!("{:.2}", row.fitness),
            format!("{:.2}", info.flops_m),
            format!("{:.3}", info.params_m),
        ];
        if let Some(t) = &truth {
            cells.push(t.value(&arch, column).map_or("-".into(), |v| format!("{v:.2}")));
        }
        rows.push(cells);
    }
    Ok(format!(
        "{} search: {} candidates scored; best:\n{}",
        run.config.search.strategy,
        state.history().len(),
        render(&headers, &rows)
    ))
}

/// A scored candidate's text form and plan facts.
pub fn describe(run: &Run, row: &Evaluated) -> Result<(String, ArchInfo)> {
    let arch = Arch::new(row.arch.clone());
    let info = run.plan.info(&arch).map_err(|e| anyhow!(e))?;
    Ok((run.text(&arch)?, info))
}

/// `search.csv` (every scored candidate) and `best.json`.
fn write_results(run: &Run, state: &SearchState) -> Result<()> {
    let mut rows = Vec::with_capacity(state.history().len());
    for row in state.history() {
        let (arch, info) = describe(run, row)?;
        let (generation, subspace, fitness) = (row.generation.to_string(), info.subspace.to_string(), row.fitness.to_string());
        rows.push(vec![generation, arch, subspace, fitness, info.flops_m.to_string(), info.params_m.to_string()]);
    }
    run.dir.write_search_csv(&rows)?;
    let best = state.best().ok_or_else(|| anyhow!("the search scored no candidate"))?;
    let (arch, info) = describe(run, best)?;
    run.dir.write_best(&BestRecord {
        arch,
        subspace: info.subspace,
        subspace_label: run.plan.subspaces()[info.subspace as usize].label.clone(),
        accuracy: best.fitness,
        flops_m: info.flops_m,
        params_m: info.params_m,
        count: info.count,
        generation: best.generation,
        strategy: run.config.search.strategy,
        scored: state.history().len(),
    })
}

/// Search constraints at full width.
#[derive(Clone, Copy, Debug, Default)]
struct Limits {
    flops_max: Option<f64>,
    flops_min: Option<f64>,
    params_max: Option<f64>,
}

/// Candidates of the search: uniform over the slot product; legal = valid in the space, not
/// trash, within the cost limits.
struct PlanCandidates<'a> {
    plan: &'a Plan,
    limits: Limits,
}

impl Candidates for PlanCandidates<'_> {
    fn option_counts(&self) -> Vec<u32> {
        self.plan.option_counts().to_vec()
    }

    fn random(&mut self, rng: &mut Rng) -> Result<Vec<u32>, String> {
        Ok(self.plan.option_counts().iter().map(|&n| rng.below(u64::from(n)) as u32).collect())
    }

    fn legal(&mut self, arch: &[u32]) -> Result<bool, String> {
        let Ok(info) = self.plan.info(&Arch::new(arch.to_vec())) else {
            return Ok(false);
        };
        let l = self.limits;
        Ok(!info.trash
            && l.flops_max.is_none_or(|m| info.flops_m <= m)
            && l.flops_min.is_none_or(|m| info.flops_m >= m)
            && l.params_max.is_none_or(|m| info.params_m <= m))
    }
}

/// Fitness of a candidate: its own subspace's supernet accuracy on the validation split.
struct SupernetFitness<'a> {
    plan: &'a Plan,
    eval: &'a dyn EvaluatorDyn,
}

impl Fitness for SupernetFitness<'_> {
    fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
        let pairs = archs
            .iter()
            .map(|a| {
                let info = self.plan.info(&Arch::new(a.clone())).map_err(|e| e.to_string())?;
                Ok((info.subspace, a.clone()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        self.eval.accuracy_many(&pairs, false)
    }
}
