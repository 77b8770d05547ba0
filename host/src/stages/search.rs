//! The search stage: evolutionary (or random) search over the run's space, resumable from
//! `search_state.json`. Candidates are drawn uniformly over the slots and must be valid, not
//! trash and within the cost limits ([`PlanCandidates`]); each is scored by the run's estimator:
//! its own subspace's supernet on the validation split ([`SupernetFitness`]), or a proxy or an
//! ensemble ([`EstimatorFitness`]). Ends by writing `search.csv` and
//! `best.json`.

use anyhow::{anyhow, bail, Result};
use fewshot_core::{
    plan::{ArchInfo, Plan},
    proxy::Proxy,
    search::{Candidates, Evaluated, Fitness, SearchState},
    util::rng::Rng,
};
use fewshot_sdk::Arch;

use super::{
    eval::{with_evaluator, EvaluatorDyn},
    score::score,
    Run,
};
use crate::{
    config::EvalSplit,
    estimator::{Estimator, Term},
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
    let mut drive = |fitness: &mut dyn Fitness| -> Result<(), String> {
        while !state.is_finished() {
            let generation = state.completed_generations();
            let scored = state.run_generation(&mut candidates, fitness).map_err(|e| e.to_string())?;
            state.save(&state_path).map_err(|e| e.to_string())?;
            if progress {
                let best = state.best().map_or(String::new(), |b| format!(", best so far {:.4}", b.fitness));
                eprintln!("search: generation {}/{total}: {scored} candidates scored{best}", generation + 1);
            }
        }
        Ok(())
    };
    let estimator = &run.config.eval.estimator;
    if *estimator == Estimator::supernet() {
        with_evaluator(run, EvalSplit::Valid, |eval| drive(&mut SupernetFitness { plan: &run.plan, eval }))?;
    } else if estimator.needs_supernets() {
        with_evaluator(run, EvalSplit::Valid, |eval| {
            let mut fitness = EstimatorFitness::new(run, Some(eval)).map_err(|e| format!("{e:#}"))?;
            drive(&mut fitness)
        })?;
    } else {
        let mut fitness = EstimatorFitness::new(run, None)?;
        drive(&mut fitness).map_err(|e| anyhow!(e))?;
    }
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
    let fitness = fitness_label(&run.config.eval.estimator);
    let mut headers: Vec<String> = ["rank", "arch", "subspace", fitness.as_str(), "FLOPs (M)", "params (M)"].map(String::from).to_vec();
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
            format!("{:.4}", row.fitness),
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

/// What a candidate's fitness is, for table headers: the supernets' accuracy, or the estimator's
/// score.
pub fn fitness_label(estimator: &Estimator) -> String {
    if *estimator == Estimator::supernet() {
        "accuracy (%)".to_string()
    } else {
        format!("{estimator} score")
    }
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

/// Architectures of the reference sample that an estimator's ranks are taken against in the
/// search.
pub const REFERENCE_ARCHS: usize = 100;

/// Fitness by any estimator other than the supernets alone. A single-valued proxy's fitness is
/// its score. Set-relative scores — AZ-NAS's sum of log-ranks of its components, and ensembles'
/// sum of log-ranks of their terms — rank a candidate against a fixed, seeded reference sample
/// of [`REFERENCE_ARCHS`] legal architectures instead of against the other candidates, so that a
/// candidate's fitness does not change as the search goes on. Proxy values are kept in
/// `scores-search-<proxy>.csv` (resumable); the supernet term is the validation accuracy.
struct EstimatorFitness<'a> {
    run: &'a Run,
    eval: Option<&'a dyn EvaluatorDyn>,
    /// Per term, where a reference is needed (else empty).
    reference: Vec<TermReference>,
}

/// One term's values on the reference sample.
struct TermReference {
    /// Each column's values, sorted.
    columns: Vec<Vec<f64>>,
    /// The term's scores, sorted.
    scores: Vec<f64>,
    /// Each column's mean and standard deviation over its finite values.
    moments: Vec<(f64, f64)>,
}

/// Weight of the tie-breaker: the sum of the columns' z-scores against the reference. Distinct
/// sums of log-ranks differ by at least ln(101/100.5) ≈ 0.005, so it only orders candidates
/// whose log-ranks tie — e.g. several better than every reference architecture.
const TIE_BREAK: f64 = 1e-9;

/// The mean and standard deviation of the finite values.
fn moments(values: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len().max(1) as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A value's z-score, bounded to ±1000 (−1000 for a value that is not finite).
fn z_score(value: f64, (mean, sd): (f64, f64)) -> f64 {
    if !value.is_finite() || sd == 0.0 {
        return if value.is_finite() { 0.0 } else { -1000.0 };
    }
    ((value - mean) / sd).clamp(-1000.0, 1000.0)
}

impl<'a> EstimatorFitness<'a> {
    fn new(run: &'a Run, eval: Option<&'a dyn EvaluatorDyn>) -> Result<EstimatorFitness<'a>> {
        let mut fitness = EstimatorFitness { run, eval, reference: Vec::new() };
        let estimator = &run.config.eval.estimator;
        let needs_reference = estimator.is_ensemble() || estimator.terms().contains(&Term::Proxy(Proxy::Az));
        if needs_reference {
            let sample = reference_sample(run)?;
            let raw = fitness.raw(&sample)?;
            for columns in raw {
                let mut sorted: Vec<Vec<f64>> = columns.clone();
                sorted.iter_mut().for_each(|c| c.sort_by(f64::total_cmp));
                let mut scores: Vec<f64> = (0..sample.len()).map(|i| term_score(&sorted, &columns, i)).collect();
                scores.sort_by(f64::total_cmp);
                let moments = columns.iter().map(|c| moments(c)).collect();
                fitness.reference.push(TermReference { columns: sorted, scores, moments });
            }
        }
        Ok(fitness)
    }

    /// Per term, per column of the term, the values of `archs`.
    fn raw(&self, archs: &[Arch]) -> Result<Vec<Vec<Vec<f64>>>> {
        let mut out = Vec::new();
        for &term in self.run.config.eval.estimator.terms() {
            let columns = match term {
                Term::Supernet => {
                    let eval = self.eval.expect("an evaluator when the estimator has the supernet term");
                    let pairs = archs
                        .iter()
                        .map(|a| Ok((self.run.plan.info(a).map_err(|e| anyhow!(e))?.subspace, a.as_slice().to_vec())))
                        .collect::<Result<Vec<_>>>()?;
                    vec![eval.accuracy_many(&pairs, false).map_err(|e| anyhow!(e))?]
                }
                Term::Proxy(proxy) => {
                    let store = self.run.dir.file(&format!("scores-search-{proxy}.csv"));
                    let scored = score(&self.run.config, &self.run.plan, proxy, archs, Some(&store), false)?;
                    (0..proxy.columns().len()).map(|c| scored.values.iter().map(|v| v[c]).collect()).collect()
                }
            };
            out.push(columns);
        }
        Ok(out)
    }
}

/// A term's score for architecture `i` of `columns`: the value itself for one column, else the
/// sum over columns of the log-rank against the sorted reference columns.
fn term_score(reference: &[Vec<f64>], columns: &[Vec<f64>], i: usize) -> f64 {
    match columns {
        [only] => only[i],
        _ => reference.iter().zip(columns).map(|(sorted, column)| log_quantile(sorted, column[i])).sum(),
    }
}

/// ln(rank / (n + 1)) of `value` among the sorted `reference` of n values and itself (ties
/// count half).
fn log_quantile(reference: &[f64], value: f64) -> f64 {
    let below = reference.partition_point(|&r| r < value);
    let equal = reference.partition_point(|&r| r <= value) - below;
    ((below as f64 + 1.0 + equal as f64 / 2.0) / (reference.len() as f64 + 1.0)).ln()
}

/// The seeded sample of legal architectures the estimator's ranks are taken against.
fn reference_sample(run: &Run) -> Result<Vec<Arch>> {
    let s = &run.config.search;
    let mut candidates = PlanCandidates {
        plan: &run.plan,
        limits: Limits { flops_max: s.flops_max, flops_min: s.flops_min, params_max: s.params_max },
    };
    let mut rng = Rng::stream(run.config.seed, "search:reference");
    let mut sample = Vec::with_capacity(REFERENCE_ARCHS);
    for _ in 0..REFERENCE_ARCHS * 100 {
        if sample.len() == REFERENCE_ARCHS {
            break;
        }
        let arch = candidates.random(&mut rng).map_err(|e| anyhow!(e))?;
        if candidates.legal(&arch).map_err(|e| anyhow!(e))? {
            sample.push(Arch::new(arch));
        }
    }
    if sample.is_empty() {
        bail!("no legal architecture found for the estimator's reference sample (check the search's cost limits)");
    }
    Ok(sample)
}

impl Fitness for EstimatorFitness<'_> {
    fn evaluate(&mut self, archs: &[Vec<u32>]) -> Result<Vec<f64>, String> {
        let archs: Vec<Arch> = archs.iter().map(|a| Arch::new(a.clone())).collect();
        let raw = self.raw(&archs).map_err(|e| format!("{e:#}"))?;
        let single = self.reference.len() <= 1 && raw.len() == 1;
        Ok((0..archs.len())
            .map(|i| {
                let scores = raw.iter().enumerate().map(|(t, columns)| {
                    let sorted = self.reference.get(t).map_or(&[][..], |r| &r.columns[..]);
                    let score = term_score(sorted, columns, i);
                    (t, score)
                });
                let mut fitness: f64 = if single {
                    scores.map(|(_, s)| s).sum()
                } else {
                    scores.map(|(t, s)| log_quantile(&self.reference[t].scores, s)).sum()
                };
                for (columns, reference) in raw.iter().zip(&self.reference) {
                    for (column, &m) in columns.iter().zip(&reference.moments) {
                        fitness += TIE_BREAK * z_score(column[i], m);
                    }
                }
                // A network the proxy cannot score (−inf, NaN) ranks last; the search keeps
                // finite fitness only.
                if fitness.is_finite() {
                    fitness
                } else if fitness == f64::INFINITY {
                    f64::MAX
                } else {
                    f64::MIN
                }
            })
            .collect())
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
