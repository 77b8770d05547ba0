//! `fewshot bench score`: architectures per second of each zero-cost proxy on a list of
//! architectures — the workload `bench/torch_score.py` runs in PyTorch (same proxies, batch,
//! width, images and threads), so that the two figures form a ratio. The clock starts after the
//! network is built and the batch loaded, as the PyTorch script's does.

use std::path::PathBuf;

use anyhow::{bail, Result};
use fewshot_core::{engine::backend::Device, proxy::Proxy};

use crate::{
    config::RunConfig,
    io::table::render,
    plugin_host::registry::Registry,
    stages::{eval::listed_architectures, plan::plan, score::score},
};

/// What to score.
#[derive(Debug)]
pub struct ScoreWorkload {
    /// The proxies.
    pub proxies: Vec<Proxy>,
    /// Search space spec.
    pub space: String,
    /// Architecture list (one per line, or a CSV with an `arch` column).
    pub archs: PathBuf,
    /// Only the first this many architectures of the list.
    pub limit: Option<usize>,
    /// Images (none: built-in generated images).
    pub data: Option<PathBuf>,
    /// Images in the scoring batch.
    pub batch: usize,
    /// Channel divisor of the scored networks.
    pub channel_divisor: f64,
    /// Compute device.
    pub device: Device,
    /// CPU threads (none: all cores).
    pub threads: Option<usize>,
    /// Seed.
    pub seed: u64,
}

/// Runs the benchmark; returns a table and one `RESULT proxy=… archs_per_s=…` line per proxy.
pub fn run(w: &ScoreWorkload, registry: &Registry) -> Result<String> {
    if w.batch < 2 {
        bail!("--batch must be at least 2");
    }
    if let Some(threads) = w.threads {
        fewshot_core::engine::backend::set_cpu_threads(threads).map_err(anyhow::Error::msg)?;
    }
    let mut config = RunConfig::default();
    config.space.spec.clone_from(&w.space);
    config.data.path.clone_from(&w.data);
    config.device = w.device;
    config.seed = w.seed;
    config.proxy.batch = w.batch;
    config.proxy.channel_divisor = w.channel_divisor;
    let plan = plan(&config, registry, None)?;
    let mut archs = listed_architectures(&w.archs, |text| plan.parse(text).map_err(|e| anyhow::anyhow!("{e}")))?;
    archs.truncate(w.limit.unwrap_or(usize::MAX));
    let mut rows = Vec::new();
    let mut results = String::new();
    for &proxy in &w.proxies {
        let scored = score(&config, &plan, proxy, &archs, None, false)?;
        let rate = archs.len() as f64 / scored.seconds.max(f64::MIN_POSITIVE);
        rows.push(vec![proxy.to_string(), archs.len().to_string(), format!("{:.2}", scored.seconds), format!("{rate:.2}")]);
        results += &format!("RESULT proxy={proxy} archs={} seconds={:.3} archs_per_s={rate:.3}\n", archs.len(), scored.seconds);
    }
    Ok(format!(
        "fewshot bench score: space={} device={} threads={} batch={} divisor={} archs={}\n{}{results}",
        w.space,
        w.device,
        fewshot_core::engine::backend::cpu_threads(),
        w.batch,
        w.channel_divisor,
        w.archs.display(),
        render(&["proxy", "archs", "seconds", "archs/s"], &rows)
    ))
}
