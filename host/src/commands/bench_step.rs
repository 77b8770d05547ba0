//! `fewshot bench step`: the training-step benchmark against `../shared/bench/torch_sbs_step.py`.
//!
//! Same workload as the PyTorch yardstick: K supernets of the NB201 space (C=16 at channel
//! divisor 2, i.e. C=8; N=5), batch 64 of fixed random images, one line of the architecture file
//! per step (column k = the subnet trained in supernet k), the K losses summed, one backward
//! pass, one SGD update (lr 0.025, momentum 0.9, Nesterov, weight decay 5e-4).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use fewshot_core::{
    engine::backend::{run_on, BackendJob, Device, EngineBackend},
    train::optim::SgdConfig,
    util::rng::Rng,
    train::step::StepEngine,
    engine::supernet::{NormMode, SupernetLayout, Supernets},
};
use fewshot_sdk::{ffi::SpaceBox, Arch, Graph, Slot};

use crate::{conformance::checked_space, output::print, registry::Registry};

/// Arguments of `fewshot bench step`.
#[derive(Args, Debug)]
pub struct StepArgs {
    /// Search space spec.
    #[arg(long, default_value = "nb201")]
    space: String,
    /// Architecture sequence: one line per step, one architecture per supernet (default: for
    /// NB201 `../shared/bench/sbs_archs.txt`, the sequence the PyTorch reference runs, from the
    /// current folder or the source checkout; for any other space a seeded sequence of uniformly
    /// drawn valid architectures).
    #[arg(long, value_name = "FILE")]
    archs: Option<PathBuf>,
    /// Number of supernets K.
    #[arg(long, default_value_t = 3)]
    supernets: usize,
    /// Channel divisor c.
    #[arg(long, default_value_t = 2.0)]
    channel_divisor: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Compute device: cpu, reference (the GPU code path on the CPU, for checks), cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the weights and the random batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Runs `fewshot bench step`.
pub fn run(args: &StepArgs, registry: &Registry) -> Result<()> {
    if args.supernets == 0 || args.batch < 2 || args.steps == 0 {
        bail!("--supernets and --steps must be positive and --batch at least 2");
    }
    if let Some(threads) = args.threads {
        fewshot_core::engine::backend::set_cpu_threads(threads).map_err(anyhow::Error::msg)?;
    }
    let space = checked_space(registry, &args.space, args.channel_divisor)?;
    let slots = space.slots().into_result().map_err(|e| anyhow!("{e}"))?;
    let graph = space.supernet_graph().into_result().map_err(|e| anyhow!("{e}"))?;
    let plan = match (&args.archs, args.space.split(':').next()) {
        (None, Some(name)) if name != "nb201" => drawn_plan(&space, &slots, args)?,
        (given, _) => read_plan(&archs_path(given.as_deref())?, &space, args)?,
    };
    let layout = SupernetLayout::new(&graph, &slots, args.channel_divisor, NormMode::Plain)
        .map_err(|e| anyhow!("cannot build the supernets at channel divisor {}: {e}", args.channel_divisor))?;
    let job = BenchJob { layout, plan, args };
    let (times, cpu_seconds) = run_on(args.device, job).map_err(|e| anyhow!(e))??;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let graph_nodes = graph_summary(&graph);
    print(&format!(
        "fewshot bench step: device={} threads={} K={} divisor={} batch={} steps={} warmup={} ({graph_nodes})\n",
        args.device,
        fewshot_core::engine::backend::cpu_threads(),
        args.supernets,
        args.channel_divisor,
        args.batch,
        args.steps,
        args.warmup
    ))?;
    let cpu = cpu_seconds.map_or(String::new(), |s| format!(" cpu_ms_per_step={:.1}", s * 1000.0 / args.steps as f64));
    print(&format!(
        "RESULT ms_per_step={median:.1} images_per_s={:.1} min_ms={:.1} max_ms={:.1}{cpu}\n",
        args.batch as f64 / median * 1000.0,
        sorted[0],
        sorted[sorted.len() - 1]
    ))?;
    Ok(())
}

/// The steps of an architecture file: one line per step, one architecture per supernet.
fn read_plan(path: &Path, space: &SpaceBox, args: &StepArgs) -> Result<Vec<Vec<(u32, Vec<u32>)>>> {
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
            let arch = space
                .parse((*field).into())
                .into_result()
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
fn drawn_plan(space: &SpaceBox, slots: &[Slot], args: &StepArgs) -> Result<Vec<Vec<(u32, Vec<u32>)>>> {
    let mut rng = Rng::stream(args.seed, "bench archs");
    let mut draw = || -> Result<Vec<u32>> {
        for _ in 0..1000 {
            let arch: Vec<u32> = slots.iter().map(|s| rng.below(s.options.len() as u64) as u32).collect();
            if space.validate(&Arch::new(arch.clone())).into_result().is_ok() {
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
    args: &'a StepArgs,
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
