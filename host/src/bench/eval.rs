//! `fewshot bench eval`: architectures per second of supernet accuracy estimates — the inner
//! loop of ranking and search — with a trained run's supernets on its validation or test images.
//! `bench/torch_eval.py` runs the same workload in PyTorch (the same network at the same width,
//! images, evaluation batch and threads, BatchNorm on batch statistics), so that the two figures
//! form a ratio. The clock starts once the supernets are loaded and the images are tensors.

use std::{path::PathBuf, sync::Arc, time::Instant};

use anyhow::{anyhow, Result};

use crate::{
    config::EvalSplit,
    io::table::render,
    plugin_host::registry::Registry,
    run_dir::RunDir,
    stages::{
        eval::{listed_architectures, with_evaluator},
        Run,
    },
};

/// What to evaluate.
#[derive(Debug)]
pub struct EvalWorkload {
    /// The trained run directory.
    pub run: PathBuf,
    /// Architecture list (one per line, or a CSV with an `arch` column).
    pub archs: PathBuf,
    /// Only the first this many architectures of the list.
    pub limit: Option<usize>,
    /// The images evaluated on.
    pub split: EvalSplit,
    /// CPU threads (none: all cores).
    pub threads: Option<usize>,
}

/// Runs the benchmark; returns a table and a `RESULT archs=… archs_per_s=…` line.
pub fn run(w: &EvalWorkload, registry: Arc<Registry>) -> Result<String> {
    if let Some(threads) = w.threads {
        fewshot_core::engine::backend::set_cpu_threads(threads).map_err(anyhow::Error::msg)?;
    }
    let run = Run::open(RunDir::new(&w.run), registry)?;
    let mut archs = listed_architectures(&w.archs, |text| run.parse(text))?;
    archs.truncate(w.limit.unwrap_or(usize::MAX));
    let mut pairs = Vec::with_capacity(archs.len());
    for arch in &archs {
        let info = run.plan.info(arch).map_err(|e| anyhow!("{}: {e}", run.text(arch).unwrap_or_default()))?;
        pairs.push((info.subspace, arch.as_slice().to_vec()));
    }
    let (seconds, images) = with_evaluator(&run, w.split, |eval| {
        let start = Instant::now();
        eval.accuracy_many(&pairs, false)?;
        Ok((start.elapsed().as_secs_f64(), eval.images()))
    })?;
    let rate = archs.len() as f64 / seconds.max(f64::MIN_POSITIVE);
    let c = &run.config;
    Ok(format!(
        "fewshot bench eval: run={} space={} divisor={} device={} threads={} split={} images={images} batch={} bn_recalibrate={}\n{}RESULT archs={} seconds={seconds:.3} archs_per_s={rate:.3}\n",
        w.run.display(),
        c.space_spec(),
        c.train.channel_divisor,
        c.device,
        fewshot_core::engine::backend::cpu_threads(),
        w.split,
        c.eval.batch_size,
        c.eval.bn_recalibrate,
        render(&["archs", "seconds", "archs/s"], &[vec![archs.len().to_string(), format!("{seconds:.2}"), format!("{rate:.2}")]]),
        archs.len(),
    ))
}
