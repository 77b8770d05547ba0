//! The training-step benchmark (`fewshot bench step`) against
//! `../shared/bench/torch_sbs_step.py`.
//!
//! Same workload as the PyTorch yardstick: K supernets of the NB201 space (C=16 at channel
//! divisor 2, i.e. C=8; N=5), batch 64 of fixed random images, one line of the architecture file
//! per step (column k = the subnet trained in supernet k), the K losses summed, one backward
//! pass, one SGD update (lr 0.025, momentum 0.9, Nesterov, weight decay 5e-4). Another space
//! (e.g. `mobilenet:classes=10,resolution=32`) runs a seeded sequence of valid architectures,
//! which `--save-archs` writes for its yardstick (`bench/torch_mobilenet_step.py`).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Error, Result};
use fewshot_core::{
    engine::{
        backend::{run_on, BackendJob, Device, EngineBackend},
        supernet::{NormMode, SupernetLayout, Supernets},
    },
    train::{optim::SgdConfig, step::StepEngine},
    util::rng::Rng,
};
use fewshot_sdk::{
    ffi::{from_ffi, SpaceBox},
    Arch, Graph, Slot,
};

use crate::plugin_host::{conformance::checked_space, registry::Registry};

/// The workload of the benchmark.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Search space spec.
    pub space: String,
    /// Architecture sequence file: one line per step, one architecture per supernet (none: the
    /// default sequence).
    pub archs: Option<PathBuf>,
    /// Where to write the sequence run, in the format of `archs`.
    pub save_archs: Option<PathBuf>,
    /// Number of supernets K.
    pub supernets: usize,
    /// Channel divisor c.
    pub channel_divisor: f64,
    /// Batch size.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// Compute device.
    pub device: Device,
    /// CPU threads (none: all cores).
    pub threads: Option<usize>,
    /// Seed of the weights and the random batch.
    pub seed: u64,
}

/// Runs the benchmark; returns its report: the workload, then `RESULT ms_per_step=...`.
pub fn run(args: &Workload, registry: &Registry) -> Result<String> {
    if args.supernets == 0 || args.batch < 2 || args.steps == 0 {
        bail!("--supernets and --steps must be positive and --batch at least 2");
    }
    if let Some(threads) = args.threads {
        fewshot_core::engine::backend::set_cpu_threads(threads).map_err(anyhow::Error::msg)?;
    }
    let space = checked_space(registry, &args.space, args.channel_divisor)?;
    let slots = from_ffi(space.slots()).map_err(Error::msg)?;
    let graph = from_ffi(space.supernet_graph()).map_err(Error::msg)?;
    let plan = match (&args.archs, args.space.split(':').next()) {
        (None, Some(name)) if name != "nb201" => drawn_plan(&space, &slots, args)?,
        (given, _) => read_plan(&archs_path(given.as_deref())?, &space, args)?,
    };
    if let Some(path) = &args.save_archs {
        let mut text = String::new();
        for pairs in &plan {
            let line: Vec<String> = pairs
                .iter()
                .map(|(_, arch)| from_ffi(space.format(&Arch::new(arch.clone()))).map(|s| s.into_string()).map_err(Error::msg))
                .collect::<Result<_>>()?;
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        fewshot_core::util::files::write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let layout = SupernetLayout::new(&graph, &slots, args.channel_divisor, NormMode::Plain)
        .map_err(|e| anyhow!("cannot build the supernets at channel divisor {}: {e}", args.channel_divisor))?;
    let job = BenchJob { layout, plan, args };
    let (times, cpu_seconds) = run_on(args.device, job).map_err(|e| anyhow!(e))??;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let graph_nodes = graph_summary(&graph);
    let mut report = format!(
        "fewshot bench step: device={} threads={} K={} divisor={} batch={} steps={} warmup={} ({graph_nodes})\n",
        args.device,
        fewshot_core::engine::backend::cpu_threads(),
        args.supernets,
        args.channel_divisor,
        args.batch,
        args.steps,
        args.warmup
    );
    let cpu = cpu_seconds.map_or(String::new(), |s| format!(" cpu_ms_per_step={:.1}", s * 1000.0 / args.steps as f64));
    report.push_str(&format!(
        "RESULT ms_per_step={median:.1} images_per_s={:.1} min_ms={:.1} max_ms={:.1}{cpu}\n",
        args.batch as f64 / median * 1000.0,
        sorted[0],
        sorted[sorted.len() - 1]
    ));
    Ok(report)
}

/// The steps of an architecture file: one line per step, one architecture per supernet.
fn read_plan(path: &Path, space: &SpaceBox, args: &Workload) -> Result<Vec<Vec<(u32, Vec<u32>)>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut plan = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < args.supernets {
            bail!("{} line {}: {} architectures for {} supernets", path.display(), number + 1, fields.len(), args.supernets);
        }
        let mut pairs = Vec::with_capacity(args.supernets);
        for (k, field) in fields.iter().take(args.supernets).enumerate() {
            let arch = from_ffi(space.parse((*field).into()))
                .map_err(|e| anyhow!("{} line {}: {e}", path.display(), number + 1))?;
            pairs.push((k as u32, arch.as_slice().to_vec()));
        }
        plan.push(pairs);
    }
    if plan.is_empty() {
        bail!("{} holds no architectures", path.display());
    }
    Ok(plan)
}

/// Steps drawn for a space without a shared sequence: [`DRAWN_STEPS`] steps of one uniformly
/// random valid architecture per supernet, seeded by `--seed`.
fn drawn_plan(space: &SpaceBox, slots: &[Slot], args: &Workload) -> Result<Vec<Vec<(u32, Vec<u32>)>>> {
    let mut rng = Rng::stream(args.seed, "bench archs");
    let mut draw = || -> Result<Vec<u32>> {
        for _ in 0..1000 {
            let arch: Vec<u32> = slots.iter().map(|s| rng.below(s.options.len() as u64) as u32).collect();
            if from_ffi(space.validate(&Arch::new(arch.clone()))).is_ok() {
                return Ok(arch);
            }
        }
        bail!("space `{}` rejected 1000 uniformly drawn architectures in a row; give the steps with --archs", args.space)
    };
    (0..DRAWN_STEPS).map(|_| (0..args.supernets as u32).map(|k| Ok((k, draw()?))).collect()).collect()
}

/// Steps in a drawn sequence (the timed steps cycle through it).
const DRAWN_STEPS: usize = 64;

struct BenchJob<'a> {
    layout: SupernetLayout,
    plan: Vec<Vec<(u32, Vec<u32>)>>,
    args: &'a Workload,
}

impl BackendJob for BenchJob<'_> {
    /// Wall-clock ms of every timed step, and the process CPU seconds they took (Linux).
    type Output = Result<(Vec<f64>, Option<f64>)>;

    fn run<B: EngineBackend>(self, device: B::Device) -> Self::Output {
        let args = self.args;
        let layout = std::sync::Arc::new(self.layout);
        let nets = Supernets::<B>::new(layout.clone(), args.supernets, args.seed, &device);
        let mut engine = StepEngine::new(nets, SgdConfig::default(), 0.0);
        let [c, h, w] = layout.input_dims();
        let mut rng = Rng::stream(args.seed, "bench batch");
        let pixels: Vec<f32> = (0..args.batch * c * h * w).map(|_| rng.normal() as f32).collect();
        let labels: Vec<u32> = (0..args.batch).map(|_| rng.below(layout.classes() as u64) as u32).collect();
        let images = burn::tensor::Tensor::<B, 4>::from_data(
            burn::tensor::TensorData::new(pixels, [c, args.batch, h, w]),
            &device,
        );
        let mut times = Vec::with_capacity(args.steps);
        let mut cpu_start = None;
        for step in 0..args.warmup + args.steps {
            if step == args.warmup {
                cpu_start = process_cpu_seconds();
            }
            let pairs = &self.plan[step % self.plan.len()];
            let start = Instant::now();
            engine.step(images.clone(), &labels, pairs, 0.025).map_err(|e| anyhow!(e))?;
            engine.sync();
            if step >= args.warmup {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let cpu = cpu_start.zip(process_cpu_seconds()).map(|(a, b)| b - a);
        Ok((times, cpu))
    }
}

/// CPU time of all threads of this process so far (Linux `/proc/self/task/*/schedstat`).
fn process_cpu_seconds() -> Option<f64> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total_ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e9)
}

/// The architecture file: the given path, or `../shared/bench/sbs_archs.txt` from the current
/// folder, or from the source checkout this binary was built in.
fn archs_path(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let relative = Path::new("../shared/bench/sbs_archs.txt");
    let candidates = [relative.to_path_buf(), Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join("shared/bench/sbs_archs.txt")];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| anyhow!("cannot find {} (give the architecture file with --archs)", relative.display()))
}

fn graph_summary(graph: &Graph) -> String {
    format!("{} graph nodes", graph.nodes.len())
}
