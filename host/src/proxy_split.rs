//! The `proxy` splitter, `--splitter proxy:score=NAME,k=3[,sample=N]`: `k` subspaces of nearly
//! equal size by quantiles of a zero-cost proxy's score — the zero-cost splits of the EFS-NAS
//! paper's Table 1 (the number of linear regions is NASWOT's, `score=naswot`; feature isotropy is
//! AZ-NAS's expressivity, `score=az.expressivity`).
//!
//! It is one of the two splitters the host provides instead of a plugin: its key is a score only the
//! engine computes ([`fewshot_core::proxy`]), so the host scores the architectures the plan is made
//! over and hands the splitter their scores; the plugin ABI stays as it is.
//! - A space of at most [`ENUMERATION_LIMIT`] architectures is planned over every valid one (NB201:
//!   15,625, trash included): each is scored once, the quantiles are exact.
//! - A bigger space is planned over a seeded uniform sample of `sample` architectures (default
//!   [`DEFAULT_SAMPLE`]), which is also the plan's estimation sample: the quantiles and the sizes
//!   are the sample's, and an architecture outside it (a training draw, a ranked or searched
//!   architecture) is scored the first time it is placed, on the run's device.
//!
//! With a run directory the scores are kept there (`split-scores-NAME.csv`, the score stage's
//! resumable store), so reopening the run scores nothing again.

use std::{collections::HashMap, path::Path, sync::Mutex};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::{
    plan::{Plan, PlanOptions, ENUMERATION_LIMIT},
    proxy::{scores, Proxy},
};
use fewshot_plugins::splitters::{bound_digits, quantile_bounds, quantile_group};
use fewshot_sdk::{ffi::splitter_box, Arch, ArchMetrics, Params, PlanContext, SplitKey, Splitter, SubspaceLabel};

use crate::{
    config::RunConfig,
    plugin_host::{conformance::checked_space, registry::{spec_name, Registry}},
    stages::score::{score, score_fn, ScoreFn},
};

/// The splitter's name on the command line.
pub const NAME: &str = "proxy";
/// Architectures in the planning sample of a space too big to enumerate.
pub const DEFAULT_SAMPLE: usize = 1_000;

/// What a `proxy:…` spec asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySplit {
    /// The proxy that scores.
    pub proxy: Proxy,
    /// One of the proxy's components ([`Proxy::columns`]) instead of its score.
    pub column: Option<usize>,
    /// Number of subspaces.
    pub k: u32,
    /// Planning sample of a space too big to enumerate.
    pub sample: usize,
}

fn score_choices() -> String {
    let mut names: Vec<String> = Proxy::ALL.iter().map(|p| p.name().to_string()).collect();
    names.extend(Proxy::Az.columns().iter().map(|c| format!("az.{c}")));
    names.join(", ")
}

impl ProxySplit {
    /// Parses a splitter spec; `None` when it names another splitter.
    pub fn parse(spec: &str) -> Result<Option<ProxySplit>> {
        if spec_name(spec) != NAME {
            return Ok(None);
        }
        let bad = |e: String| anyhow!("splitter `{NAME}` (provided by fewshot): {e}");
        let params = Params::parse(spec.split_once(':').map_or("", |(_, p)| p)).map_err(bad)?;
        let score = params
            .get_str("score")
            .ok_or_else(|| bad(format!("needs `score=NAME`, one of {}", score_choices())))?
            .to_ascii_lowercase();
        let (proxy_name, component) = match score.split_once('.') {
            Some((p, c)) => (p, Some(c)),
            None => (score.as_str(), None),
        };
        let proxy: Proxy = proxy_name.parse().map_err(|_| bad(format!("score `{score}` is not one of {}", score_choices())))?;
        let column = match component {
            None => None,
            Some(c) => Some(
                proxy
                    .columns()
                    .iter()
                    .position(|name| *name == c)
                    .filter(|_| proxy.columns().len() > 1)
                    .ok_or_else(|| bad(format!("score `{score}` is not one of {}", score_choices())))?,
            ),
        };
        let k: u32 = params.get("k", 3).map_err(bad)?;
        let sample: usize = params.get("sample", DEFAULT_SAMPLE).map_err(bad)?;
        if k == 0 {
            return Err(bad("k must be at least 1".into()));
        }
        if sample < k as usize {
            return Err(bad(format!("sample={sample} cannot fill k={k} subspaces")));
        }
        params.finish().map_err(bad)?;
        Ok(Some(ProxySplit { proxy, column, k, sample }))
    }

    /// The score's name: the proxy's, or `az.COMPONENT`.
    pub fn score_name(&self) -> String {
        match self.column {
            Some(c) => format!("{}.{}", self.proxy, self.proxy.columns()[c]),
            None => self.proxy.to_string(),
        }
    }

    /// The value the split reads for each row of proxy values (NaN counts as lowest).
    fn values(&self, rows: &[Vec<f64>]) -> Vec<f64> {
        let values = match self.column {
            Some(c) => rows.iter().map(|r| r[c]).collect(),
            None => scores(self.proxy, rows),
        };
        values.into_iter().map(|v| if v.is_nan() { f64::NEG_INFINITY } else { v }).collect()
    }
}

/// Plans `config`'s space split by `split`: plans it once without a split to learn which
/// architectures the plan is made over, scores them (stored in `run_dir` when given), then plans
/// again with a splitter that holds the scores.
pub fn plan(split: &ProxySplit, config: &RunConfig, registry: &Registry, options: PlanOptions, run_dir: Option<&Path>) -> Result<Plan> {
    let build = |space, splitter, options| -> Result<Plan> {
        let rule = registry.rule(&config.split.rule)?;
        Plan::build(space, rule, splitter, options).map_err(|e| anyhow!("cannot plan the split: {e}"))
    };
    let options = PlanOptions { estimate_sample: Some(split.sample), ..options };
    let space = checked_space(registry, &config.space_spec(), config.train.channel_divisor)?;
    let whole = build(space, registry.splitter("none")?, options)?;
    let sampled = whole.total() > ENUMERATION_LIMIT;
    if sampled && split.proxy == Proxy::Az && split.column.is_none() {
        bail!(
            "splitter `{NAME}`: the space has {} architectures, so it is planned over a sample, and AZ-NAS's score ranks within the set scored; split by one of its components instead (score=az.expressivity, …)",
            whole.total()
        );
    }
    let archs = whole.planning_archs().ok_or_else(|| anyhow!("splitter `{NAME}`: the plan visits no architecture"))?;
    if let Some(dir) = run_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
    }
    let store = run_dir.map(|dir| dir.join(format!("split-scores-{}.csv", split.proxy)));
    eprintln!(
        "splitter {NAME}: planning over {} architectures ({}) scored with {}",
        archs.len(),
        if sampled { "a seeded sample" } else { "the whole space" },
        split.proxy
    );
    let scored = score(config, &whole, split.proxy, &archs, store.as_deref(), true)?;
    let planned = split.values(&scored.values);
    let known: HashMap<Vec<u32>, f64> = archs.iter().map(|a| a.as_slice().to_vec()).zip(planned.iter().copied()).collect();
    let on_demand = if sampled { Some(score_fn(config, &whole, split.proxy)?) } else { None };
    let method = Some(whole.method());
    drop(whole);
    let splitter = ProxySplitter { split: split.clone(), planned, known: Mutex::new(known), on_demand, upper: Vec::new() };
    // The same space again (the plan owns its space), checked above.
    build(registry.space(&config.space_spec())?, splitter_box(splitter), PlanOptions { method, ..options })
}

/// The splitter: the scores of the planning architectures, and for sampled plans a way to
/// score the others.
struct ProxySplitter {
    split: ProxySplit,
    /// The score of every planning architecture, in plan order (repeats kept).
    planned: Vec<f64>,
    /// Scores by architecture, growing as architectures outside the planning set are scored.
    known: Mutex<HashMap<Vec<u32>, f64>>,
    on_demand: Option<ScoreFn>,
    /// Each subspace's largest score.
    upper: Vec<f64>,
}

/// A bound for a label: fixed decimals, or scientific notation for large magnitudes (SynFlow's
/// scores reach 1e44).
fn bound_text(v: f64, digits: usize) -> String {
    if v.is_finite() && v.abs() >= 1e6 {
        format!("{v:.3e}")
    } else {
        format!("{v:.digits$}")
    }
}

impl Splitter for ProxySplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, _ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        let name = self.split.score_name();
        let mut sorted = self.planned.clone();
        sorted.sort_by(f64::total_cmp);
        let mut dist: Vec<(f64, f64)> = Vec::new();
        for v in sorted {
            match dist.last_mut() {
                Some((last, weight)) if *last == v => *weight += 1.0,
                _ => dist.push((v, 1.0)),
            }
        }
        let k = self.split.k as usize;
        let bounds = quantile_bounds(&dist, k).ok_or_else(|| {
            format!("{name}: {} scores ({} distinct) cannot be cut into k={k} groups of similar size; use a smaller k", self.planned.len(), dist.len())
        })?;
        self.upper = bounds.iter().map(|b| b.1).collect();
        let digits = bound_digits(&bounds);
        Ok(bounds
            .iter()
            .enumerate()
            .map(|(i, (lo, hi))| SubspaceLabel {
                label: format!("{name} {}/{k} [{}, {}]", i + 1, bound_text(*lo, digits), bound_text(*hi, digits)).into(),
            })
            .collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        if self.upper.is_empty() {
            return Err("the splitter was not prepared".into());
        }
        let known = self.known.lock().map_err(|_| "a scoring thread crashed".to_string())?.get(arch.as_slice()).copied();
        let value = match (known, &self.on_demand) {
            (Some(v), _) => v,
            (None, Some(score)) => {
                let value = self.split.values(&[score(arch.as_slice())?])[0];
                self.known.lock().map_err(|_| "a scoring thread crashed".to_string())?.insert(arch.as_slice().to_vec(), value);
                value
            }
            (None, None) => return Err(format!("{:?} is not among the architectures scored for the split", arch.as_slice())),
        };
        Ok(quantile_group(&self.upper, value) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_components() {
        assert_eq!(ProxySplit::parse("nonlin").unwrap(), None);
        let s = ProxySplit::parse("proxy:score=naswot").unwrap().unwrap();
        assert_eq!((s.proxy, s.column, s.k, s.sample), (Proxy::Naswot, None, 3, DEFAULT_SAMPLE));
        let s = ProxySplit::parse("proxy:score=az.expressivity,k=4,sample=50").unwrap().unwrap();
        assert_eq!((s.proxy, s.column, s.k, s.sample), (Proxy::Az, Some(0), 4, 50));
        assert_eq!(s.score_name(), "az.expressivity");
    }

    #[test]
    fn bad_specs_say_what_is_accepted() {
        let e = ProxySplit::parse("proxy").unwrap_err().to_string();
        assert!(e.contains("needs `score=NAME`") && e.contains("az.expressivity"), "{e}");
        let e = ProxySplit::parse("proxy:score=flops").unwrap_err().to_string();
        assert!(e.contains("not one of"), "{e}");
        let e = ProxySplit::parse("proxy:score=naswot.naswot").unwrap_err().to_string();
        assert!(e.contains("not one of"), "{e}");
        let e = ProxySplit::parse("proxy:score=naswot,k=0").unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        let e = ProxySplit::parse("proxy:score=naswot,groups=1").unwrap_err().to_string();
        assert!(e.contains("unknown parameter `groups`"), "{e}");
    }

    #[test]
    fn quantiles_keep_ties_together_and_count_nan_lowest() {
        let split = ProxySplit::parse("proxy:score=naswot,k=2").unwrap().unwrap();
        let values = split.values(&[vec![1.0], vec![f64::NAN], vec![3.0], vec![3.0]]);
        assert_eq!(values[1], f64::NEG_INFINITY);
        let mut s = ProxySplitter { split, planned: values, known: Mutex::new(HashMap::new()), on_demand: None, upper: Vec::new() };
        let ctx = PlanContext { slots: Default::default(), default_groups: "".into(), distribution: Default::default(), exact: true, seed: 0 };
        let labels = s.prepare(&ctx).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(s.upper, vec![1.0, 3.0]);
        assert!(labels[0].label.starts_with("naswot 1/2 [-inf, 1"), "{}", labels[0].label);
        let e = s.assign(&Arch::new(vec![0]), &ArchMetrics { count: 0, flops_m: 0.0, params_m: 0.0 }).unwrap_err();
        assert!(e.contains("not among"), "{e}");
    }
}
