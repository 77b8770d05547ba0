//! The `gradmatch` splitter, `--splitter gradmatch:k=3[,warmup=E,archs=A,batches=B]`: GM-NAS's
//! split by gradient matching (Hu et al., ICLR 2022), the strongest gradient-based baseline of
//! the EFS-NAS paper's Table 1.
//!
//! 1. **Warm-up.** One one-shot supernet of the run's space is trained for `warmup` epochs
//!    (default 1) with the `uniform` sampler and the run's training settings, data and channel
//!    divisor, in `gradmatch-warmup/` of the run directory (resumable like `train`).
//! 2. **Gradients.** For a subspace and one of its slots, `archs` architectures (default 8) are
//!    drawn uniformly inside the subspace; each is run with every allowed option of the slot in
//!    turn on `batches` fixed training batches (default 2). An option's gradient is the summed
//!    gradient of the supernet's weights outside that slot (the weights all its options share).
//! 3. **Min-cut.** The options are the nodes of a graph weighted by gradient agreement,
//!    `(1 + cos) / 2` (cosine similarity mapped to [0, 1]: Stoer–Wagner needs non-negative
//!    weights); the Stoer–Wagner minimum cut splits them in two.
//! 4. **Recursion.** Among every (subspace, slot) the cut of least weight (the options that
//!    disagree most) splits its subspace in two, until there are `k` subspaces. GM-NAS trains
//!    each child supernet further before splitting it again; here every cut is decided on the
//!    one warm-up supernet, which keeps the cost to one warm-up.
//!
//! Subspaces are products: per slot, the options they allow. The decision is kept in the run
//! directory (`split-gradmatch.json`, with its costs in seconds), so reopening a run neither
//! trains nor differentiates again; `fewshot split` without a run directory warms up in a
//! temporary one.

use std::{path::Path, sync::Arc, time::Instant};

use anyhow::{anyhow, bail, Context, Error, Result};
use fewshot_core::{
    data::{load_splits, make_batch, DataConfig, Dataset},
    engine::{
        backend::{run_on, BackendJob, EngineBackend},
        supernet::{tensor_to_vec, SupernetLayout},
    },
    plan::{Plan, PlanOptions},
    train::{self as engine, TrainRun, CHECKPOINT_FILE},
    util::{files::write_atomic, rng::Rng},
};
use fewshot_sdk::{
    ffi::{from_ffi, splitter_box},
    Arch, ArchMetrics, Graph, Params, PlanContext, Slot, SplitKey, Splitter, SubspaceLabel,
};
use serde::{Deserialize, Serialize};

use crate::{
    config::RunConfig,
    plugin_host::{conformance::checked_space, registry::{spec_name, Registry}},
    progress::Bars,
    stages::train::PlanSteps,
};

/// The splitter's name on the command line.
pub const NAME: &str = "gradmatch";
/// The stored decision inside a run directory.
pub const FILE: &str = "split-gradmatch.json";
/// The warm-up supernet's folder inside a run directory.
pub const WARMUP_DIR: &str = "gradmatch-warmup";

/// What a `gradmatch:…` spec asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradSplit {
    /// Number of subspaces.
    pub k: u32,
    /// Warm-up epochs of the one-shot supernet.
    pub warmup: usize,
    /// Architectures drawn per (subspace, slot).
    pub archs: usize,
    /// Fixed training batches per architecture.
    pub batches: usize,
}

impl GradSplit {
    /// Parses a splitter spec; `None` when it names another splitter.
    pub fn parse(spec: &str) -> Result<Option<GradSplit>> {
        if spec_name(spec) != NAME {
            return Ok(None);
        }
        let bad = |e: String| anyhow!("splitter `{NAME}` (provided by fewshot): {e}");
        let params = Params::parse(spec.split_once(':').map_or("", |(_, p)| p)).map_err(bad)?;
        let split = GradSplit {
            k: params.get("k", 3).map_err(bad)?,
            warmup: params.get("warmup", 1).map_err(bad)?,
            archs: params.get("archs", 8).map_err(bad)?,
            batches: params.get("batches", 2).map_err(bad)?,
        };
        params.finish().map_err(bad)?;
        if split.k == 0 || split.warmup == 0 || split.archs == 0 || split.batches == 0 {
            return Err(bad("k, warmup, archs and batches must be at least 1".into()));
        }
        Ok(Some(split))
    }
}

/// A subspace: the options every slot allows.
pub type Allowed = Vec<Vec<u32>>;

/// One cut the recursion made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    /// The subspace cut (index at the time of the cut).
    pub subspace: usize,
    /// The slot whose options were divided.
    pub slot: usize,
    /// The options on each side.
    pub sides: [Vec<u32>; 2],
    /// The cut's weight (sum of `(1 + cos) / 2` across it).
    pub weight: f64,
    /// Cosine similarity of every pair of the slot's allowed options, row by row.
    pub cosines: Vec<Vec<f64>>,
}

/// The decision (`split-gradmatch.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// The settings it was made with.
    pub settings: GradSplit,
    /// The subspaces.
    pub subspaces: Vec<Allowed>,
    /// The cuts, in order.
    pub cuts: Vec<Cut>,
    /// Wall-clock seconds of the warm-up training.
    pub warmup_seconds: f64,
    /// Wall-clock seconds of the gradients and cuts.
    pub split_seconds: f64,
}

/// Plans `config`'s space split by gradient matching (see the module docs), reading the decision
/// from `run_dir` when it holds one made with the same settings.
pub fn plan(split: &GradSplit, config: &RunConfig, registry: &Registry, options: PlanOptions, run_dir: Option<&Path>) -> Result<Plan> {
    let stored = run_dir.map(|d| d.join(FILE));
    let partition = match stored.as_deref().filter(|p| p.exists()) {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let partition: Partition = serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
            if partition.settings != *split {
                bail!("{} was made with other settings ({:?}); use a new run directory", path.display(), partition.settings);
            }
            partition
        }
        None => {
            let partition = decide(split, config, registry, options.clone(), run_dir)?;
            if let Some(path) = &stored {
                write_atomic(path, serde_json::to_string_pretty(&partition)?.as_bytes())?;
            }
            partition
        }
    };
    let space = checked_space(registry, &config.space_spec(), config.train.channel_divisor)?;
    let slots = from_ffi(space.slots()).map_err(Error::msg)?.into_vec();
    let splitter = GradMatchSplitter { labels: labels(&partition.subspaces, &slots), subspaces: partition.subspaces };
    let rule = registry.rule(&config.split.rule)?;
    Plan::build(space, rule, splitter_box(splitter), options).map_err(|e| anyhow!("cannot plan the split: {e}"))
}

/// Warms up the supernet and makes the cuts.
fn decide(split: &GradSplit, config: &RunConfig, registry: &Registry, options: PlanOptions, run_dir: Option<&Path>) -> Result<Partition> {
    let space = checked_space(registry, &config.space_spec(), config.train.channel_divisor)?;
    let slots = from_ffi(space.slots()).map_err(Error::msg)?.into_vec();
    let graph = from_ffi(space.supernet_graph()).map_err(Error::msg)?;
    let rule = registry.rule(&config.split.rule)?;
    let whole = Plan::build(space, rule, registry.splitter("none")?, options).map_err(|e| anyhow!("cannot plan the split: {e}"))?;
    let layout = Arc::new(
        SupernetLayout::new(&graph, &slots, config.train.channel_divisor, config.train.norm).map_err(|e| anyhow!("{e}"))?,
    );
    // Only the supernet-training half is used: no subsets of the other parts to check.
    let data = DataConfig { valid_images: None, test_images: None, ..config.data_config() };
    let splits = load_splits(&data, layout.input_dims(), layout.classes()).map_err(Error::msg)?;
    let (dir, temporary) = match run_dir {
        Some(d) => (d.join(WARMUP_DIR), false),
        None => (std::env::temp_dir().join(format!("fewshot-gradmatch-{}", std::process::id())), true),
    };
    let resume = dir.join(CHECKPOINT_FILE).exists();
    let train_config = engine::TrainConfig { epochs: split.warmup, ..config.train_config() };
    eprintln!(
        "splitter {NAME}: warming up a one-shot supernet for {} epoch(s) in {}",
        split.warmup,
        if temporary { "a temporary folder".to_string() } else { dir.display().to_string() }
    );
    let run = TrainRun {
        layout: layout.clone(),
        supernets: 1,
        config: train_config,
        run_dir: dir.clone(),
        data: splits.train.clone(),
        resume,
        stop_after: None,
        extra: serde_json::json!({ "sampler": "uniform", "purpose": "gradmatch warm-up" }),
    };
    let source = PlanSteps::new(&whole, registry.sampler("uniform")?, config.seed)?;
    let job = SplitJob { run, source, split: split.clone(), slots: slots.clone(), graph, data: splits.train.clone(), seed: config.seed };
    let result = run_on(config.device, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

struct SplitJob<'a> {
    run: TrainRun,
    source: PlanSteps<'a>,
    split: GradSplit,
    slots: Vec<Slot>,
    graph: Graph,
    data: Arc<Dataset>,
    seed: u64,
}

impl BackendJob for SplitJob<'_> {
    type Output = Result<Partition, String>;

    fn run<B: EngineBackend>(mut self, device: B::Device) -> Self::Output {
        let start = Instant::now();
        let batch_size = self.run.config.batch_size;
        let trained = engine::train::<B>(self.run, &mut self.source, &device, &Bars::new()).map_err(|e| e.to_string())?;
        let warmup_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let nets = &trained.engine;
        let layout = nets.nets.layout().clone();
        // Fixed batches: the first of a seeded order, without augmentation.
        let order = fewshot_core::data::epoch_order(self.data.len(), self.seed, usize::MAX);
        let batches: Vec<_> = order
            .chunks(batch_size)
            .filter(|c| c.len() >= 2)
            .take(self.split.batches)
            .map(|indices| {
                let b = make_batch(&self.data, indices, None);
                (burn::tensor::Tensor::<B, 4>::from_data(burn::tensor::TensorData::new(b.pixels, b.dims), &device), b.labels)
            })
            .collect();
        // Parameters owned by a node that a slot's guard selects.
        let slot_of_param: Vec<Option<usize>> = layout
            .params()
            .iter()
            .map(|p| self.graph.nodes.get(p.node).and_then(|n| n.guard.first()).map(|g| g.slot as usize))
            .collect();
        let mut rng = Rng::stream(self.seed, "gradmatch");
        let mut gradient = |allowed: &Allowed, slot: usize| -> Result<Vec<Vec<f32>>, String> {
            let contexts: Vec<Vec<u32>> = (0..self.split.archs)
                .map(|_| allowed.iter().map(|opts| opts[rng.below(opts.len() as u64) as usize]).collect())
                .collect();
            let mut out = Vec::new();
            for &option in &allowed[slot] {
                let mut sum: Vec<f32> = Vec::new();
                for context in &contexts {
                    let mut arch = context.clone();
                    arch[slot] = option;
                    for (x, labels) in &batches {
                        let grads = nets.gradients(x.clone(), labels, &[(0, arch.clone())]).map_err(|e| e.to_string())?;
                        let flat: Vec<f32> = grads[0]
                            .iter()
                            .enumerate()
                            .filter(|(id, _)| slot_of_param[*id] != Some(slot))
                            .flat_map(|(id, g)| match g {
                                Some(g) => tensor_to_vec(g.clone()),
                                None => vec![0.0; layout.params()[id].numel()],
                            })
                            .collect();
                        if sum.is_empty() {
                            sum = flat;
                        } else {
                            sum.iter_mut().zip(flat).for_each(|(s, v)| *s += v);
                        }
                    }
                }
                out.push(sum);
            }
            Ok(out)
        };
        let mut subspaces: Vec<Allowed> = vec![self.slots.iter().map(|s| (0..s.options.len() as u32).collect()).collect()];
        let mut cuts = Vec::new();
        // Best cut of every subspace, computed once per subspace.
        let mut best: Vec<Option<Cut>> = vec![None];
        let mut fresh = vec![true];
        while subspaces.len() < self.split.k as usize {
            for (i, allowed) in subspaces.iter().enumerate() {
                if !fresh[i] {
                    continue;
                }
                fresh[i] = false;
                let mut candidate: Option<Cut> = None;
                for slot in (0..allowed.len()).filter(|&s| allowed[s].len() >= 2) {
                    let grads = gradient(allowed, slot)?;
                    let cosines = cosine_matrix(&grads);
                    let weights: Vec<Vec<f64>> = cosines.iter().map(|r| r.iter().map(|c| (1.0 + c) / 2.0).collect()).collect();
                    let (weight, side) = stoer_wagner(&weights);
                    if candidate.as_ref().is_none_or(|c| weight < c.weight) {
                        let (a, b): (Vec<usize>, Vec<usize>) = (0..allowed[slot].len()).partition(|j| side.contains(j));
                        let pick = |v: Vec<usize>| v.into_iter().map(|j| allowed[slot][j]).collect();
                        candidate = Some(Cut { subspace: i, slot, sides: [pick(a), pick(b)], weight, cosines });
                    }
                }
                best[i] = candidate;
            }
            let Some(i) = (0..subspaces.len())
                .filter(|&i| best[i].is_some())
                .min_by(|&a, &b| best[a].as_ref().unwrap().weight.total_cmp(&best[b].as_ref().unwrap().weight))
            else {
                break;
            };
            let cut = best[i].take().expect("chosen");
            let mut other = subspaces[i].clone();
            subspaces[i][cut.slot] = cut.sides[0].clone();
            other[cut.slot] = cut.sides[1].clone();
            subspaces.push(other);
            best.push(None);
            fresh[i] = true;
            fresh.push(true);
            cuts.push(cut);
        }
        Ok(Partition { settings: self.split, subspaces, cuts, warmup_seconds, split_seconds: start.elapsed().as_secs_f64() })
    }
}

/// Cosine similarity of every pair of vectors (0 when one is all zeros).
fn cosine_matrix(vectors: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
    let norms: Vec<f64> = vectors.iter().map(|v| dot(v, v).sqrt()).collect();
    (0..vectors.len())
        .map(|i| {
            (0..vectors.len())
                .map(|j| {
                    let n = norms[i] * norms[j];
                    if n > 0.0 { dot(&vectors[i], &vectors[j]) / n } else { 0.0 }
                })
                .collect()
        })
        .collect()
}

/// The Stoer–Wagner global minimum cut of an undirected graph given by its symmetric weight
/// matrix (at least two nodes): its weight and the nodes on one side.
pub fn stoer_wagner(weights: &[Vec<f64>]) -> (f64, Vec<usize>) {
    let n = weights.len();
    assert!(n >= 2, "a cut needs two nodes");
    let mut w: Vec<Vec<f64>> = weights.to_vec();
    // The original nodes merged into each remaining node.
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut alive: Vec<usize> = (0..n).collect();
    let mut best = (f64::INFINITY, Vec::new());
    while alive.len() > 1 {
        // Maximum adjacency order from the first alive node.
        let mut added = vec![alive[0]];
        let mut links: Vec<f64> = alive.iter().map(|&v| w[alive[0]][v]).collect();
        let mut in_a = vec![false; alive.len()];
        in_a[0] = true;
        let mut last = 0;
        for _ in 1..alive.len() {
            let next = (0..alive.len())
                .filter(|&j| !in_a[j])
                .max_by(|&a, &b| links[a].total_cmp(&links[b]).then(b.cmp(&a)))
                .expect("a node left");
            in_a[next] = true;
            added.push(alive[next]);
            last = next;
            for j in 0..alive.len() {
                if !in_a[j] {
                    links[j] += w[alive[next]][alive[j]];
                }
            }
        }
        let t = alive[last];
        let s = added[added.len() - 2];
        // The cut of the phase: `t` alone against the rest.
        let phase: f64 = alive.iter().filter(|&&v| v != t).map(|&v| w[t][v]).sum();
        if phase < best.0 {
            best = (phase, members[t].clone());
        }
        // Merge t into s.
        let moved = std::mem::take(&mut members[t]);
        members[s].extend(moved);
        for &v in &alive {
            if v != s && v != t {
                w[s][v] += w[t][v];
                w[v][s] = w[s][v];
            }
        }
        alive.retain(|&v| v != t);
    }
    best.1.sort_unstable();
    best
}

/// One label per subspace: the slots it restricts and the options it keeps.
fn labels(subspaces: &[Allowed], slots: &[Slot]) -> Vec<String> {
    subspaces
        .iter()
        .map(|allowed| {
            let parts: Vec<String> = allowed
                .iter()
                .enumerate()
                .filter(|(s, opts)| opts.len() < slots[*s].options.len())
                .map(|(s, opts)| {
                    let names: Vec<&str> = opts.iter().map(|&o| slots[s].options[o as usize].as_str()).collect();
                    format!("{}∈{{{}}}", slots[s].name, names.join(","))
                })
                .collect();
            if parts.is_empty() { "all".to_string() } else { parts.join(" ") }
        })
        .collect()
}

/// The splitter over a decided partition.
struct GradMatchSplitter {
    subspaces: Vec<Allowed>,
    labels: Vec<String>,
}

impl Splitter for GradMatchSplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, _ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        Ok(self.labels.iter().map(|l| SubspaceLabel { label: l.as_str().into() }).collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        self.subspaces
            .iter()
            .position(|allowed| allowed.iter().zip(arch.as_slice()).all(|(opts, o)| opts.contains(o)))
            .map(|i| i as u32)
            .ok_or_else(|| format!("{:?} is in no subspace of the gradient-matching split", arch.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stoer_wagner_finds_the_weakest_cut() {
        // Two triangles of strong links joined by one weak link: the cut is the weak link.
        let mut w = vec![vec![0.0; 6]; 6];
        let mut link = |a: usize, b: usize, v: f64| {
            w[a][b] = v;
            w[b][a] = v;
        };
        for (a, b) in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)] {
            link(a, b, 1.0);
        }
        link(2, 3, 0.1);
        let (weight, side) = stoer_wagner(&w);
        assert!((weight - 0.1).abs() < 1e-12);
        assert!(side == vec![0, 1, 2] || side == vec![3, 4, 5], "{side:?}");
        // The classic example of Stoer and Wagner's paper: minimum cut 4.
        let mut w = vec![vec![0.0; 8]; 8];
        for (a, b, v) in [(0, 1, 2.0), (0, 4, 3.0), (1, 2, 3.0), (1, 4, 2.0), (1, 5, 2.0), (2, 3, 4.0), (2, 6, 2.0), (3, 6, 2.0), (3, 7, 2.0), (4, 5, 3.0), (5, 6, 1.0), (6, 7, 3.0)] {
            w[a][b] = v;
            w[b][a] = v;
        }
        let (weight, side) = stoer_wagner(&w);
        assert_eq!(weight, 4.0);
        assert!(side == vec![2, 3, 6, 7] || side == vec![0, 1, 4, 5], "{side:?}");
    }

    #[test]
    fn specs_parse_and_subspaces_assign_every_architecture_once() {
        assert_eq!(GradSplit::parse("nonlin").unwrap(), None);
        let s = GradSplit::parse("gradmatch:k=4,warmup=2").unwrap().unwrap();
        assert_eq!((s.k, s.warmup, s.archs, s.batches), (4, 2, 8, 2));
        assert!(GradSplit::parse("gradmatch:k=0").unwrap_err().to_string().contains("at least 1"));
        assert!(GradSplit::parse("gradmatch:groups=1").unwrap_err().to_string().contains("groups"));
        let splitter = GradMatchSplitter { subspaces: vec![vec![vec![0, 2], vec![0, 1]], vec![vec![1], vec![0, 1]]], labels: vec![] };
        let m = ArchMetrics { count: 0, flops_m: 0.0, params_m: 0.0 };
        assert_eq!(splitter.assign(&Arch::new(vec![2, 1]), &m).unwrap(), 0);
        assert_eq!(splitter.assign(&Arch::new(vec![1, 0]), &m).unwrap(), 1);
        assert!(splitter.assign(&Arch::new(vec![3, 0]), &m).is_err());
        let slots = vec![
            Slot { name: "e0".into(), options: vec!["a".into(), "b".into(), "c".into()].into() },
            Slot { name: "e1".into(), options: vec!["x".into(), "y".into()].into() },
        ];
        assert_eq!(labels(&splitter.subspaces, &slots), ["e0∈{a,c}", "e0∈{b}"]);
        let cos = cosine_matrix(&[vec![1.0, 0.0], vec![2.0, 0.0], vec![0.0, 0.0]]);
        assert!((cos[0][1] - 1.0).abs() < 1e-12 && cos[0][2] == 0.0);
    }
}
