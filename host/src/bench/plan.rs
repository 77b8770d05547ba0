//! The planning benchmark (`fewshot bench plan`): how fast the split is planned and
//! architectures are drawn.
//!
//! Reports the median of several runs of: planning NB201 (enumerate and assign all 15,625),
//! planning MobileNet (per-slot contributions, verification, DP), the exact MobileNet subspace
//! sizes from the per-slot contributions, and sampler throughput in architectures per second
//! through the sampler plugins and the plan's drawer.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use fewshot_core::{
    plan::{Plan, PlanOptions},
    space::series::SeriesCounter,
    util::rng::Rng,
};
use fewshot_sdk::{Arch, ArchDraw};
use serde::Serialize;

use crate::plugin_host::{conformance::checked_space, registry::Registry};

/// One benchmark result.
#[derive(Serialize, Debug)]
pub struct Measure {
    /// What was timed.
    pub name: String,
    /// The median over the runs.
    pub median: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Timed runs.
    pub runs: usize,
    /// The target, where the design sets one.
    pub goal: Option<&'static str>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn plan(registry: &Registry, space: &str) -> Result<Plan> {
    Plan::build(registry.space(space)?, registry.rule("enn")?, registry.splitter("nonlin")?, PlanOptions::default())
        .map_err(|e| anyhow!("{e}"))
}

/// Median milliseconds of `Plan::build` (plugin construction not timed).
fn time_plan(registry: &Registry, space: &str, runs: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (s, r, sp) = (registry.space(space)?, registry.rule("enn")?, registry.splitter("nonlin")?);
        let start = Instant::now();
        let p = Plan::build(s, r, sp, PlanOptions::default()).map_err(|e| anyhow!("{e}"))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        black_box(p);
    }
    Ok(median(times))
}

/// Median milliseconds of the conformance checks every command runs on a space before using it
/// (construction included), at channel divisor 2.
fn time_checks(registry: &Registry, space: &str, runs: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        black_box(checked_space(registry, space, 2.0)?);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(times))
}

/// Median milliseconds to compute MobileNet's exact subspace sizes from the per-slot count
/// contributions (the dynamic program and the grouping into subspaces).
fn time_series_sizes(p: &Plan, runs: usize) -> Result<f64> {
    let counter = p.series_counter().ok_or_else(|| anyhow!("the MobileNet plan is not a dynamic-programming plan"))?;
    let deltas: Vec<Vec<i64>> = counter.increments().iter().map(|s| s.iter().map(|&x| i64::from(x)).collect()).collect();
    // Subspace of each count, in the order of the distribution.
    let subspace_of: Vec<usize> = counter
        .distribution()
        .iter()
        .map(|&(count, _)| Ok(p.info(&Arch::new(counter.first(count))).map_err(|e| anyhow!("{e}"))?.subspace as usize))
        .collect::<Result<_>>()?;
    let expected: Vec<u128> = p.subspaces().iter().map(|s| s.size).collect();
    const REPEAT: usize = 200;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        for _ in 0..REPEAT {
            let dp = SeriesCounter::new(counter.base(), black_box(&deltas)).map_err(|e| anyhow!("{e}"))?;
            let mut sizes = vec![0u128; expected.len()];
            for ((_, ways), &k) in dp.distribution().into_iter().zip(&subspace_of) {
                sizes[k] += ways;
            }
            if sizes != expected {
                bail!("the timed dynamic program gave sizes {sizes:?}, the plan {expected:?}");
            }
            black_box(sizes);
        }
        times.push(start.elapsed().as_secs_f64() * 1e3 / REPEAT as f64);
    }
    Ok(median(times))
}

/// Median architectures per second through a sampler plugin and the plan's drawer.
fn time_sampler(registry: &Registry, p: &Plan, sampler: &str, picks_per_run: usize, runs: usize) -> Result<f64> {
    let mut s = registry.sampler(sampler)?;
    let mut drawer = p.drawer(Rng::stream(0, "bench"));
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut picks = 0;
        while picks < picks_per_run {
            picks += black_box(drawer.draw_step(&mut s).map_err(|e| anyhow!("{e}"))?).len();
        }
        rates.push(picks as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    Ok(median(rates))
}

/// Median architectures per second of the drawer alone (round robin over subspaces).
fn time_drawer(p: &Plan, draws: usize, runs: usize) -> Result<f64> {
    let mut drawer = p.drawer(Rng::stream(0, "bench"));
    let k = drawer.subspaces();
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        for i in 0..draws {
            black_box(drawer.draw(i as u32 % k).map_err(|e| anyhow!("{e}"))?);
        }
        rates.push(draws as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    Ok(median(rates))
}

/// Every benchmark, each the median of `runs` timed runs (at least 5).
pub fn measure(registry: &Registry, runs: usize) -> Result<Vec<Measure>> {
    if runs < 5 {
        bail!("--runs must be at least 5 (got {runs})");
    }
    let nb201 = plan(registry, "nb201")?;
    let mobilenet = plan(registry, "mobilenet")?;
    let m = |name: &str, median: f64, unit: &'static str, goal: Option<&'static str>| Measure {
        name: name.to_string(),
        median,
        unit,
        runs,
        goal,
    };
    let mut results = vec![
        m("plan nb201: enumerate and assign 15,625 (enn, nonlin)", time_plan(registry, "nb201", runs)?, "ms", Some("< 5 ms")),
        m("plan mobilenet: contributions, verification, DP (enn, nonlin)", time_plan(registry, "mobilenet", runs)?, "ms", None),
        m("exact mobilenet subspace sizes by DP", time_series_sizes(&mobilenet, runs)?, "ms", Some("< 1 ms")),
        m("pre-run conformance checks of nb201", time_checks(registry, "nb201", runs)?, "ms", Some("< 10 ms")),
        m("pre-run conformance checks of mobilenet", time_checks(registry, "mobilenet", runs)?, "ms", Some("< 10 ms")),
    ];
    for (space, p) in [("nb201", &nb201), ("mobilenet", &mobilenet)] {
        for (sampler, picks) in [("sbs", 600_000), ("uniform", 600_000), ("group-uniform", 600_000), ("fair", 60_000)] {
            let goal = (sampler == "sbs").then_some(">= 1 M/s");
            let name = format!("sampler {sampler} on {space} ({} subspaces)", p.subspaces().len());
            results.push(m(&name, time_sampler(registry, p, sampler, picks, runs)?, "M archs/s", goal));
        }
        results.push(m(&format!("drawer alone on {space}"), time_drawer(p, 600_000, runs)?, "M archs/s", None));
    }
    Ok(results)
}
