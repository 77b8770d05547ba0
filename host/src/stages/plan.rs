//! The plan stage: the split of a configuration's space into subspaces, and its report (per
//! subspace the size, trainable architectures, count range and cost ranges, and with a truth
//! table the median and best ground-truth value, the analysis of the EFS-NAS paper's Fig. 2),
//! as a run's `plan.json` stores it and as the text table `fewshot split` prints.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use fewshot_core::plan::{Plan, PlanOptions};
use serde::Serialize;

use crate::{
    config::RunConfig,
    io::{csv::TruthTable, table::render},
    plugin_host::{conformance::checked_space, registry::Registry},
    grad_split::{self, GradSplit},
    proxy_split::{self, ProxySplit},
};

/// Plans the split of a configuration: constructs and checks its space (with its supernet at
/// the configuration's channel divisor), rule and splitter. The host's own `proxy` splitter
/// ([`crate::proxy_split`]) first scores the space, keeping the scores in `run_dir` when given;
/// its `gradmatch` splitter ([`crate::grad_split`]) first warms up a supernet and keeps its
/// decision there.
pub fn plan(config: &RunConfig, registry: &Registry, run_dir: Option<&Path>) -> Result<Plan> {
    let options = PlanOptions { seed: config.seed, include_trash: config.split.include_trash, ..PlanOptions::default() };
    if let Some(split) = ProxySplit::parse(&config.splitter_spec())? {
        return proxy_split::plan(&split, config, registry, options, run_dir);
    }
    if let Some(split) = GradSplit::parse(&config.splitter_spec())? {
        return grad_split::plan(&split, config, registry, options, run_dir);
    }
    let space = checked_space(registry, &config.space_spec(), config.train.channel_divisor)?;
    let rule = registry.rule(&config.split.rule)?;
    let splitter = registry.splitter(&config.splitter_spec()).map_err(|e| match &config.split.groups {
        Some(_) => anyhow!("{e:#} (--groups is passed to the splitter as `groups=...`; `nonlin` takes it)"),
        None => e,
    })?;
    Plan::build(space, rule, splitter, options).map_err(|e| anyhow!("cannot plan the split: {e}"))
}

/// Ground-truth statistics of one subspace.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct TruthStats {
    /// Architectures of the subspace found in the table.
    n: usize,
    median: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize, Debug)]
struct SubspaceRow {
    id: u32,
    label: String,
    size: u128,
    trainable: u128,
    count_min: u32,
    count_max: u32,
    flops_m_min: f64,
    flops_m_max: f64,
    params_m_min: f64,
    params_m_max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<TruthStats>,
}

/// A split plan as `fewshot split` prints it (and `plan.json` stores it).
#[derive(Serialize, Debug)]
pub struct SplitReport {
    space: String,
    rule: String,
    splitter: String,
    method: &'static str,
    exact: bool,
    /// What exact sizes assume that planning could not check.
    #[serde(skip_serializing_if = "Option::is_none")]
    assumes: Option<String>,
    /// Architectures an estimated plan was sized on.
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<usize>,
    total: u128,
    trash: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth_column: Option<String>,
    subspaces: Vec<SubspaceRow>,
}

/// Median and maximum of the truth values per subspace.
fn truth_stats(plan: &Plan, path: &Path, column: &str) -> Result<Vec<TruthStats>> {
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); plan.subspaces().len()];
    for (line, text, value) in TruthTable::read(path)?.column(column)? {
        let arch = plan
            .parse(&text)
            .map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?;
        let info = plan.info(&arch).map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?;
        values[info.subspace as usize].push(value);
    }
    Ok(values
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let median = (n > 0).then(|| if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 });
            TruthStats { n, median, max: v.last().copied() }
        })
        .collect())
}

fn range(lo: f64, hi: f64, digits: usize) -> String {
    format!("{lo:.digits$}-{hi:.digits$}")
}

/// The plan of a split as a report: the specs of `config` that made it, per subspace its size,
/// count and cost ranges, and with a truth table (path, column) the median and best
/// ground-truth value.
pub fn split_report(plan: &Plan, config: &RunConfig, truth: Option<(&Path, &str)>) -> Result<SplitReport> {
    let stats = match truth {
        Some((path, column)) => Some(truth_stats(plan, path, column)?),
        None => None,
    };
    let report = SplitReport {
        space: config.space_spec(),
        rule: config.split.rule.clone(),
        splitter: config.splitter_spec(),
        method: plan.method().name(),
        exact: plan.exact(),
        assumes: plan.assumption().map(String::from),
        sample: if plan.exact() { None } else { plan.planning_archs().map(|a| a.len()) },
        total: plan.total(),
        trash: plan.trash(),
        truth_column: truth.map(|(_, column)| column.to_string()),
        subspaces: plan
            .subspaces()
            .iter()
            .enumerate()
            .map(|(k, s)| SubspaceRow {
                id: s.id,
                label: s.label.clone(),
                size: s.size,
                trainable: s.trainable,
                count_min: s.count_range.0,
                count_max: s.count_range.1,
                flops_m_min: s.flops_m_range.0,
                flops_m_max: s.flops_m_range.1,
                params_m_min: s.params_m_range.0,
                params_m_max: s.params_m_range.1,
                truth: stats.as_ref().map(|t| t[k].clone()),
            })
            .collect(),
    };
    if report.subspaces.is_empty() {
        bail!("the plan has no subspaces");
    }
    Ok(report)
}

/// The report as a text table with a one-line summary.
pub fn table(r: &SplitReport) -> String {
    let mut sizes = match r.sample {
        _ if r.exact => format!("exact ({})", r.method),
        Some(n) => format!("estimated ({} over {n} sampled architectures)", r.method),
        None => format!("estimated ({})", r.method),
    };
    if let Some(assumption) = &r.assumes {
        sizes.push_str(&format!(", assuming {assumption}"));
    }
    let mut out = format!(
        "space {}, rule {}, splitter {}: {} architectures ({} trash), {} subspaces, sizes {sizes}\n\n",
        r.space,
        r.rule,
        r.splitter,
        r.total,
        r.trash,
        r.subspaces.len()
    );
    let mut headers = vec!["id", "label", "size", "trainable", "count", "FLOPs (M)", "params (M)"];
    let truth_headers = r.truth_column.as_ref().map(|c| (format!("median {c}"), format!("max {c}")));
    if let Some((median, max)) = &truth_headers {
        headers.push(median);
        headers.push(max);
    }
    let rows: Vec<Vec<String>> = r
        .subspaces
        .iter()
        .map(|s| {
            let count = if s.count_min == s.count_max {
                s.count_min.to_string()
            } else {
                format!("{}-{}", s.count_min, s.count_max)
            };
            let mut row = vec![
                s.id.to_string(),
                s.label.clone(),
                s.size.to_string(),
                s.trainable.to_string(),
                count,
                range(s.flops_m_min, s.flops_m_max, 2),
                range(s.params_m_min, s.params_m_max, 3),
            ];
            if let Some(t) = &s.truth {
                let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
                row.push(show(t.median));
                row.push(show(t.max));
            }
            row
        })
        .collect();
    out.push_str(&render(&headers, &rows));
    out
}
