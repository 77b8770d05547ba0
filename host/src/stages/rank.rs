//! The rank stage: how well an estimator ranks architectures against a ground-truth table, next
//! to the trivial predictors params and FLOPs. In a run ([`rank`]) the run's estimator — the
//! supernets (resumably, through `predictions.csv`), a proxy (through `scores-<proxy>.csv`) or an
//! ensemble of both — estimates the architectures of the truth table and the baselines are the
//! exact costs; for `fewshot rank` ([`join`], [`measure`]) the predictions
//! and the baselines come from files.

use std::{collections::HashMap, path::Path};

use anyhow::{anyhow, bail, Result};
use fewshot_core::{
    metrics::{rank_report, Predictor, RankReport},
    proxy::{log_rank_sum, Proxy},
    util::rng::Rng,
};
use fewshot_sdk::Arch;
use serde::Serialize;

use super::{eval::evaluate, score::score, Run};
use crate::{
    config::EvalSplit,
    estimator::Term,
    io::csv::{Csv, TruthTable},
    run_dir::RANK_FILE,
};

/// Top-k percentages of the rank metrics of a run.
const TOP_PERCENTS: [f64; 2] = [1.0, 5.0];
/// Architectures evaluated between two writes of the predictions.
const PREDICTION_CHUNK: usize = 100;

/// The ranking stage's result.
pub struct Ranked {
    /// Rank correlations of the estimator, of each of its terms and of the exact-cost baselines.
    pub report: RankReport,
    /// Ranked architectures (text form), truth, prediction, subspace.
    pub rows: Vec<(String, f64, f64, u32)>,
}

/// Estimates the ranked architectures (those of the truth table, all or a uniform sample of
/// `rank.archs`) with the run's estimator and measures rank correlations against the truth, for
/// the estimator, each of its terms and the exact params / FLOPs.
pub fn rank(run: &Run) -> Result<Ranked> {
    let c = &run.config.rank;
    let path = c.truth.as_deref().expect("rank stage runs with a truth table");
    let mut rows = TruthTable::read(path)?.column(&c.truth_column)?;
    if c.archs > 0 && c.archs < rows.len() {
        let mut rng = Rng::stream(run.config.seed, "rank");
        rng.shuffle(&mut rows);
        rows.truncate(c.archs);
        rows.sort_by_key(|r| r.0);
    }
    let mut archs = Vec::with_capacity(rows.len());
    for (line, text, _) in &rows {
        archs.push(run.plan.parse(text).map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?);
    }
    let estimator = &run.config.eval.estimator;
    let terms = estimate_terms(run, &archs, c.split)?;
    let pred = combine(&terms);

    let mut truth = Vec::new();
    let mut groups = Vec::new();
    let mut params = Vec::new();
    let mut flops = Vec::new();
    let mut table = Vec::new();
    for (((_, text, value), arch), estimate) in rows.iter().zip(&archs).zip(&pred) {
        let info = run.plan.info(arch).map_err(|e| anyhow!("{text}: {e}"))?;
        truth.push(*value);
        groups.push(info.subspace.to_string());
        params.push(info.params_m);
        flops.push(info.flops_m);
        table.push((text.clone(), *value, *estimate, info.subspace));
    }
    // Beside the estimator: each of its terms alone (for an ensemble), then params and FLOPs.
    let mut baselines: Vec<Predictor> = Vec::new();
    if estimator.is_ensemble() {
        baselines.extend(terms.iter().map(|(term, values)| Predictor { name: term.name(), values }));
    }
    baselines.push(Predictor { name: "params", values: &params });
    baselines.push(Predictor { name: "flops", values: &flops });
    let name = estimator.to_string();
    let report = rank_report(&truth, Some(&groups), Predictor { name: &name, values: &pred }, &baselines, &TOP_PERCENTS);
    let json = RankJson { truth: path.display().to_string(), truth_column: &c.truth_column, split: c.split, report: &report };
    run.dir.write_json(RANK_FILE, &json)?;
    Ok(Ranked { report, rows: table })
}

#[derive(Serialize)]
struct RankJson<'a> {
    truth: String,
    truth_column: &'a str,
    split: EvalSplit,
    #[serde(flatten)]
    report: &'a RankReport,
}

/// The values of every term of the run's estimator for `archs`: the supernets' accuracy
/// estimates ([`predict`]) and proxy scores (resumable through `scores-<proxy>.csv`).
pub fn estimate_terms(run: &Run, archs: &[Arch], split: EvalSplit) -> Result<Vec<(Term, Vec<f64>)>> {
    let mut terms = Vec::new();
    for &term in run.config.eval.estimator.terms() {
        let values = match term {
            Term::Supernet => {
                let predictions = predict(run, archs, split)?;
                archs.iter().map(|a| Ok(predictions[run.text(a)?.as_str()])).collect::<Result<Vec<f64>>>()?
            }
            Term::Proxy(proxy) => {
                let store = run.dir.file(&scores_file(proxy));
                score(&run.config, &run.plan, proxy, archs, Some(&store), true)?.scores
            }
        };
        terms.push((term, values));
    }
    Ok(terms)
}

/// The file of a run directory holding a proxy's scores of the ranked architectures.
pub fn scores_file(proxy: Proxy) -> String {
    format!("scores-{proxy}.csv")
}

/// One term's values as they are, several terms summed by log-rank.
pub fn combine(terms: &[(Term, Vec<f64>)]) -> Vec<f64> {
    match terms {
        [(_, values)] => values.clone(),
        _ => log_rank_sum(&terms.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()),
    }
}

/// Accuracy estimates of `archs`, reusing `predictions.csv` rows written by an earlier,
/// interrupted ranking; new estimates are written every [`PREDICTION_CHUNK`] architectures.
fn predict(run: &Run, archs: &[Arch], split: EvalSplit) -> Result<HashMap<String, f64>> {
    let mut known = run.dir.read_predictions()?;
    let have: HashMap<String, f64> = known.iter().map(|(a, _, v)| (a.clone(), *v)).collect();
    let mut missing = Vec::new();
    for arch in archs {
        if !have.contains_key(&run.text(arch)?) {
            missing.push(arch.clone());
        }
    }
    if !missing.is_empty() {
        eprintln!("estimating {} architectures on the {split} split ({} already done)", missing.len(), archs.len() - missing.len());
    }
    for chunk in missing.chunks(PREDICTION_CHUNK) {
        for e in evaluate(run, chunk, split, true)? {
            known.push((run.text(&e.arch)?, e.subspace, e.accuracy));
        }
        run.dir.write_predictions(&known)?;
    }
    Ok(known.into_iter().map(|(a, _, v)| (a, v)).collect())
}

/// The trivial predictors: (name, column of the truth table).
pub const BASELINE_COLUMNS: [(&str, &str); 2] = [("params", "c10_params_mb"), ("flops", "c10_flops_m")];

/// Row index of each architecture of `table`; a repeated architecture is an error.
fn by_arch(table: &Csv, arch_column: usize) -> Result<HashMap<&str, usize>> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        let arch = row.cells[arch_column].as_str();
        if let Some(&first) = index.get(arch) {
            bail!(
                "{}: line {}: architecture '{arch}' appears again (first on line {})",
                table.path.display(),
                row.line,
                table.rows[first].line
            );
        }
        index.insert(arch, i);
    }
    Ok(index)
}

/// Predictions joined with the ground truth on the architecture string.
pub struct Joined {
    /// The architectures, in the order of the predictions file.
    pub archs: Vec<String>,
    /// Predicted values.
    pub pred: Vec<f64>,
    /// True values.
    pub truth: Vec<f64>,
    /// Group label per architecture, when grouped.
    pub groups: Option<Vec<String>>,
    /// The name of the group column, when grouped.
    pub group_column: Option<String>,
    /// Trivial predictors found in the truth table: (name, values).
    pub baselines: Vec<(String, Vec<f64>)>,
}

/// Reads the predictions and the ground truth and joins them on the `arch` column: every
/// predicted architecture must appear in the truth table, each file at most once. The group
/// column is taken from the predictions, else the truth table (`None`: `subspace` if the
/// predictions have it); the baselines are the [`BASELINE_COLUMNS`] the truth table has.
pub fn join(pred_path: &Path, truth_path: &Path, pred_column: &str, truth_column: &str, group_column: Option<&str>) -> Result<Joined> {
    let pred_table = Csv::read(pred_path)?;
    let truth_table = Csv::read(truth_path)?;
    let (pred_arch, pred_value) = (pred_table.require("arch")?, pred_table.require(pred_column)?);
    let (truth_arch, truth_value) = (truth_table.require("arch")?, truth_table.require(truth_column)?);
    if pred_table.rows.is_empty() {
        bail!("{}: no predictions", pred_path.display());
    }
    by_arch(&pred_table, pred_arch)?;
    let truth_rows = by_arch(&truth_table, truth_arch)?;
    // Every truth value must be a number, as `split --truth` requires, not only the predicted.
    for row in 0..truth_table.rows.len() {
        truth_table.number(row, truth_value)?;
    }

    let missing: Vec<&str> = pred_table
        .rows
        .iter()
        .map(|row| row.cells[pred_arch].as_str())
        .filter(|arch| !truth_rows.contains_key(arch))
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "{} of {} architectures in {} are not in {}, e.g. '{first}'",
            missing.len(),
            pred_table.rows.len(),
            pred_path.display(),
            truth_path.display()
        );
    }

    // The group column comes from the predictions if they have it, else from the truth table.
    let group_source = match group_column {
        Some(name) => match (pred_table.column(name), truth_table.column(name)) {
            (Some(c), _) => Some((name, true, c)),
            (None, Some(c)) => Some((name, false, c)),
            (None, None) => bail!("no column '{name}' in {} or {}", pred_path.display(), truth_path.display()),
        },
        None => pred_table.column("subspace").map(|c| ("subspace", true, c)),
    };
    let baseline_columns: Vec<(&str, usize)> =
        BASELINE_COLUMNS.iter().filter_map(|&(name, column)| truth_table.column(column).map(|c| (name, c))).collect();

    let mut joined = Joined {
        archs: Vec::with_capacity(pred_table.rows.len()),
        pred: Vec::with_capacity(pred_table.rows.len()),
        truth: Vec::with_capacity(pred_table.rows.len()),
        groups: group_source.map(|_| Vec::new()),
        group_column: group_source.map(|(name, _, _)| name.to_string()),
        baselines: baseline_columns.iter().map(|(name, _)| (name.to_string(), Vec::new())).collect(),
    };
    for (i, row) in pred_table.rows.iter().enumerate() {
        let row = &row.cells;
        let arch = row[pred_arch].as_str();
        let t = truth_rows[arch];
        joined.archs.push(arch.to_string());
        joined.pred.push(pred_table.score(i, pred_value)?);
        joined.truth.push(truth_table.number(t, truth_value)?);
        if let (Some(groups), Some((_, from_pred, c))) = (joined.groups.as_mut(), group_source) {
            groups.push(if from_pred { row[c].clone() } else { truth_table.rows[t].cells[c].clone() });
        }
        for ((_, values), &(_, c)) in joined.baselines.iter_mut().zip(&baseline_columns) {
            values.push(truth_table.number(t, c)?);
        }
    }
    Ok(joined)
}

/// Measures the joined predictions and baselines; `name` names the predictor in the report.
pub fn measure(joined: &Joined, name: &str, percents: &[f64]) -> RankReport {
    let baselines: Vec<Predictor> =
        joined.baselines.iter().map(|(name, values)| Predictor { name, values }).collect();
    rank_report(&joined.truth, joined.groups.as_deref(), Predictor { name, values: &joined.pred }, &baselines, percents)
}
