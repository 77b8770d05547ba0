//! Checkpoints: all supernet weights, the optimizer's momentum buffers and the training state,
//! in one [safetensors](https://huggingface.co/docs/safetensors) file written atomically through
//! the format's reference implementation (the `safetensors` crate), so any safetensors reader
//! (e.g. Python's `safetensors.numpy.load_file`) opens it.
//!
//! Tensors are full-precision `F32`: `net<k>/<param>` for every parameter of supernet `k`,
//! `momentum<k>/<param>` for every momentum buffer that exists, `square<k>/<param>` for every
//! RMSProp square average, and `bn<k>/node<i>/running_mean|running_var` for the running
//! BatchNorm statistics of node `i` when they are tracked (stand-alone networks). The one
//! metadata entry, `fewshot`, is a JSON object (one entry, because safetensors keeps metadata in a hash map whose order
//! would otherwise change the file's bytes from run to run):
//! - `state`: the [`CheckpointState`]: completed epochs and steps, the step source's state (which
//!   carries the sampler's random state; data order and augmentation need none, they depend only
//!   on seed, epoch and sample), and a fingerprint of the layout (graph, channel divisor, BN mode)
//!   plus the number of supernets, so that a checkpoint of another network is refused;
//! - `checksum`: FNV-1a over every tensor's bytes in name order, which catches corruption.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::{
    engine::supernet::{tensor_to_vec, RunningStats, SupernetLayout, Supernets},
    train::step::StepEngine,
    util::{
        files::{save as save_file, SaveError},
        hash::Fnv1a,
    },
};

/// Format version written into every checkpoint.
pub const CHECKPOINT_VERSION: u32 = 2;

/// The training state saved with the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// Layout fingerprint ([`SupernetLayout::fingerprint`]).
    pub fingerprint: String,
    /// Number of supernets.
    pub supernets: usize,
    /// The run seed (weights, data order, augmentation).
    pub seed: u64,
    /// Completed epochs.
    pub epochs_done: usize,
    /// Completed training steps.
    pub steps_done: u64,
    /// The step source's saved state (its random generator included).
    pub step_source: String,
    /// Anything else the caller wants to keep (e.g. the training configuration).
    pub extra: serde_json::Value,
}

/// The `fewshot` metadata entry: a checkpoint's [`CheckpointState`], or what a model file is.
#[derive(Serialize, Deserialize)]
struct Stored<S> {
    checksum: String,
    state: S,
}

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    #[error("cannot read checkpoint {}: {source}", path.display())]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(#[from] SaveError),
    /// The file is not a readable fewshot checkpoint (truncated, modified or something else).
    #[error("checkpoint {} is corrupt or not a fewshot checkpoint: {reason}", path.display())]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint of another format version.
    #[error("checkpoint {} has format version {found}, this fewshot reads version {CHECKPOINT_VERSION}", path.display())]
    Version {
        /// The checkpoint file.
        path: PathBuf,
        /// The version it was written with.
        found: u32,
    },
    /// A checkpoint of another network.
    #[error(
        "checkpoint {} belongs to a different supernet (another space, space parameters, channel divisor or BN mode)",
        path.display()
    )]
    OtherNetwork {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// A checkpoint with another number of supernets.
    #[error("checkpoint {} holds {found} supernets, this run has {expected}", path.display())]
    SupernetCount {
        /// The checkpoint file.
        path: PathBuf,
        /// Supernets in the file.
        found: usize,
        /// Supernets of this run.
        expected: usize,
    },
    /// A tensor of the wrong shape.
    #[error("checkpoint {}: `{name}` has shape {found:?}, expected {expected:?}", path.display())]
    Shape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The layout's shape.
        expected: Vec<usize>,
    },
    /// A parameter the layout has and the file lacks.
    #[error("checkpoint {} lacks `{name}`", path.display())]
    Missing {
        /// The checkpoint file.
        path: PathBuf,
        /// The missing tensor.
        name: String,
    },
}

/// FNV-1a over every tensor's little-endian bytes, in name order.
fn checksum<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_unstable_by_key(|&(name, _)| name);
    let mut h = Fnv1a::new();
    for (name, bytes) in sorted {
        h.write(name.as_bytes());
        h.write_words(bytes);
    }
    format!("{:016x}", h.finish())
}

fn le_bytes(values: Vec<f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// The name of a running-statistics tensor of BatchNorm node `node` of supernet `k` (`mean` or
/// `var`).
fn bn_name(k: usize, node: usize, which: &str) -> String {
    format!("bn{k}/node{node}/running_{which}")
}

/// The tensors of supernet `k` of `engine`: weights, then (with `with_state`) momentum buffers and
/// square averages, then the tracked running statistics.
fn tensors_of<B: Backend>(engine: &StepEngine<B>, k: usize, with_state: bool) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let layout = engine.nets.layout();
    let mut tensors = Vec::new();
    for (id, p) in layout.params().iter().enumerate() {
        tensors.push((format!("net{k}/{}", p.name), p.shape.clone(), le_bytes(tensor_to_vec(engine.nets.param(k, id).clone()))));
        if with_state {
            if let Some(m) = engine.optim.momentum(k, id) {
                tensors.push((format!("momentum{k}/{}", p.name), p.shape.clone(), le_bytes(tensor_to_vec(m.clone()))));
            }
            if let Some(v) = engine.optim.square(k, id) {
                tensors.push((format!("square{k}/{}", p.name), p.shape.clone(), le_bytes(tensor_to_vec(v.clone()))));
            }
        }
    }
    if let Some(tracking) = &engine.bn_tracking {
        for (node, mean, var) in tracking.stats[k].entries() {
            let c = mean.dims()[0];
            tensors.push((bn_name(k, node, "mean"), vec![c], le_bytes(tensor_to_vec(mean))));
            tensors.push((bn_name(k, node, "var"), vec![c], le_bytes(tensor_to_vec(var))));
        }
    }
    tensors
}

/// Serialises named tensors with the `fewshot` metadata entry (`state` and the checksum).
fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], state: serde_json::Value) -> Vec<u8> {
    let stored = Stored { checksum: checksum(tensors.iter().map(|(n, _, b)| (n.as_str(), b.as_slice()))), state };
    let metadata = HashMap::from([("fewshot".to_string(), serde_json::to_string(&stored).expect("plain data serialises"))]);
    let views = tensors.iter().map(|(name, shape, bytes)| {
        (name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("a tensor's bytes match its shape"))
    });
    safetensors::serialize(views, Some(metadata)).expect("checkpoint tensors serialise")
}

/// Saves the supernets of `engine`, its optimizer state, its running BatchNorm statistics and
/// `state` to `path` (atomically).
pub fn save<B: Backend>(path: &Path, engine: &StepEngine<B>, state: &CheckpointState) -> Result<(), CheckpointError> {
    let tensors: Vec<_> = (0..engine.nets.count()).flat_map(|k| tensors_of(engine, k, true)).collect();
    let state = serde_json::to_value(state).expect("the training state serialises");
    Ok(save_file(path, &serialize(&tensors, state))?)
}

/// Saves network `k` of `engine` alone, as a model file: its weights (`net<k>/<param>`, as in
/// the checkpoint) and running BatchNorm statistics, with `about` (what the network is) as the
/// metadata's `state` (atomically; no optimizer state).
pub fn save_model<B: Backend>(path: &Path, engine: &StepEngine<B>, k: usize, about: serde_json::Value) -> Result<(), CheckpointError> {
    Ok(save_file(path, &serialize(&tensors_of(engine, k, false), about))?)
}

/// A loaded checkpoint.
pub struct Loaded<B: Backend> {
    /// The supernets.
    pub nets: Supernets<B>,
    /// Momentum buffers, `[supernet][param]`.
    pub momentum: Vec<Vec<Option<Tensor<B, 1>>>>,
    /// RMSProp square averages, `[supernet][param]`.
    pub square: Vec<Vec<Option<Tensor<B, 1>>>>,
    /// Running BatchNorm statistics per supernet, when the checkpoint has any.
    pub running: Option<Vec<RunningStats<B>>>,
    /// The training state.
    pub state: CheckpointState,
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })
}

/// Reads only the training state of a checkpoint (cheap; no tensors are built).
pub fn read_state(path: &Path) -> Result<CheckpointState, CheckpointError> {
    let bytes = read(path)?;
    let (_, state) = parse(path, &bytes)?;
    Ok(state)
}

/// The checked tensors and the training state of a checkpoint file's bytes.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<(SafeTensors<'a>, CheckpointState), CheckpointError> {
    let bad = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("unreadable header ({e})")))?;
    let meta = header.metadata().as_ref().ok_or_else(|| bad("no metadata".into()))?;
    let entry: serde_json::Value = meta
        .get("fewshot")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("no fewshot training state".into()))?;
    // Version 1 kept the state itself in the entry; later versions keep it under `state`.
    let version = entry.pointer("/state/version").or_else(|| entry.get("version")).and_then(serde_json::Value::as_u64);
    match version {
        None => return Err(bad("no fewshot training state".into())),
        Some(v) if v != u64::from(CHECKPOINT_VERSION) => {
            return Err(CheckpointError::Version { path: path.to_path_buf(), found: v as u32 })
        }
        Some(_) => {}
    }
    let stored: Stored<CheckpointState> = serde_json::from_value(entry).map_err(|e| bad(format!("unreadable training state ({e})")))?;
    for (name, view) in tensors.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("tensor `{name}` is {:?}, not F32", view.dtype())));
        }
    }
    if checksum(tensors.iter().map(|(name, view)| (name, view.data()))) != stored.checksum {
        return Err(bad("checksum mismatch (truncated or modified)".into()));
    }
    Ok((tensors, stored.state))
}

/// Loads a checkpoint for `layout` with `supernets` supernets onto `device`. Fails clearly on a
/// missing, corrupt or truncated file, and on a checkpoint of a different network.
pub fn load<B: Backend>(
    path: &Path,
    layout: Arc<SupernetLayout>,
    supernets: usize,
    device: &B::Device,
) -> Result<Loaded<B>, CheckpointError> {
    let bytes = read(path)?;
    let (tensors, state) = parse(path, &bytes)?;
    if state.fingerprint != layout.fingerprint() {
        return Err(CheckpointError::OtherNetwork { path: path.to_path_buf() });
    }
    if state.supernets != supernets {
        return Err(CheckpointError::SupernetCount { path: path.to_path_buf(), found: state.supernets, expected: supernets });
    }
    let values = |name: &str, shape: &[usize]| -> Result<Option<Vec<f32>>, CheckpointError> {
        let Ok(view) = tensors.tensor(name) else { return Ok(None) };
        if view.shape() != shape {
            return Err(CheckpointError::Shape {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: view.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        Ok(Some(view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()))
    };
    let to_tensor = |m: Vec<f32>| {
        let n = m.len();
        Tensor::<B, 1>::from_data(TensorData::new(m, [n]), device)
    };
    let mut host = Vec::with_capacity(supernets);
    let (mut momentum, mut square) = (Vec::with_capacity(supernets), Vec::with_capacity(supernets));
    for k in 0..supernets {
        let mut net = Vec::new();
        let (mut buffers, mut squares) = (Vec::new(), Vec::new());
        for p in layout.params() {
            let name = format!("net{k}/{}", p.name);
            let weights =
                values(&name, &p.shape)?.ok_or_else(|| CheckpointError::Missing { path: path.to_path_buf(), name })?;
            net.push(weights);
            buffers.push(values(&format!("momentum{k}/{}", p.name), &p.shape)?.map(to_tensor));
            squares.push(values(&format!("square{k}/{}", p.name), &p.shape)?.map(to_tensor));
        }
        host.push(net);
        momentum.push(buffers);
        square.push(squares);
    }
    let mut running: Vec<Vec<(usize, Tensor<B, 1>, Tensor<B, 1>)>> = vec![Vec::new(); supernets];
    for (name, view) in tensors.iter() {
        let Some(rest) = name.strip_prefix("bn") else { continue };
        let parsed = rest.split_once("/node").and_then(|(k, rest)| {
            let (node, which) = rest.split_once("/running_")?;
            Some((k.parse::<usize>().ok()?, node.parse::<usize>().ok()?, which))
        });
        let bad = |reason: String| CheckpointError::Corrupt { path: path.to_path_buf(), reason };
        let Some((k, node, "mean")) = parsed else { continue };
        if k >= supernets || view.shape().len() != 1 {
            return Err(bad(format!("unexpected tensor `{name}`")));
        }
        let mean = values(&name, view.shape())?.expect("listed");
        let var_name = bn_name(k, node, "var");
        let var = values(&var_name, view.shape())?.ok_or_else(|| bad(format!("`{name}` has no `{var_name}`")))?;
        running[k].push((node, to_tensor(mean), to_tensor(var)));
    }
    let running = running.iter().any(|r| !r.is_empty()).then(|| running.into_iter().map(RunningStats::from_entries).collect());
    Ok(Loaded { nets: Supernets::from_host(layout, host, device), momentum, square, running, state })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::backend::CpuBackend,
        train::optim::SgdConfig,
        train::step::StepEngine,
        engine::supernet::{tests::{images, small_space}, NormMode},
    };

    fn state(layout: &SupernetLayout, k: usize) -> CheckpointState {
        CheckpointState {
            version: CHECKPOINT_VERSION,
            fingerprint: layout.fingerprint(),
            supernets: k,
            seed: 7,
            epochs_done: 3,
            steps_done: 42,
            step_source: "sampler state".into(),
            extra: serde_json::json!({"note": 1}),
        }
    }

    /// A checkpoint of two small supernets, one of them trained one step (so it has momentum).
    fn trained_checkpoint(dir: &Path) -> (PathBuf, Arc<SupernetLayout>, StepEngine<CpuBackend>) {
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let nets = Supernets::<CpuBackend>::new(layout.clone(), 2, 9, &Default::default());
        let mut engine = StepEngine::new(nets, SgdConfig::default(), 0.0);
        engine.step(images(4, 3, 8, 1), &[0, 1, 2, 3], &[(1, vec![0, 0])], 0.1).unwrap();
        let path = dir.join("checkpoint.safetensors");
        save(&path, &engine, &state(&layout, 2)).unwrap();
        (path, layout, engine)
    }

    #[test]
    fn the_file_follows_the_safetensors_specification() {
        let dir = std::env::temp_dir().join(format!("fewshot-ckpt-spec-{}", std::process::id()));
        let (path, layout, engine) = trained_checkpoint(&dir);
        let bytes = fs::read(&path).unwrap();
        // 8-byte little-endian header length, a JSON header padded to 8 bytes, then the data.
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!((8 + n) % 8, 0);
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let data_len = bytes.len() - 8 - n;
        let mut spans = Vec::new();
        for (name, entry) in &header {
            if name == "__metadata__" {
                let meta = entry.as_object().unwrap();
                assert!(meta.values().all(serde_json::Value::is_string), "metadata maps strings to strings");
                let entry: serde_json::Value = serde_json::from_str(meta["fewshot"].as_str().unwrap()).unwrap();
                assert!(entry["checksum"].is_string() && entry["state"]["version"] == CHECKPOINT_VERSION);
                continue;
            }
            assert_eq!(entry["dtype"], "F32", "{name}");
            let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
            let [begin, end]: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone()).unwrap();
            assert_eq!(end - begin, 4 * shape.iter().product::<usize>(), "{name}");
            spans.push((begin, end));
        }
        // The tensors tile the data section exactly, without gaps or overlaps.
        spans.sort_unstable();
        assert_eq!(spans.first().unwrap().0, 0);
        assert!(spans.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(spans.last().unwrap().1, data_len);
        let momentum = (0..layout.params().len()).filter(|&id| engine.optim.momentum(1, id).is_some()).count();
        assert_eq!(spans.len(), 2 * layout.params().len() + momentum);

        // Python's safetensors package, where installed, reads it as numpy arrays.
        let probe = std::process::Command::new("python3").args(["-c", "import safetensors.numpy"]).output();
        if !probe.is_ok_and(|o| o.status.success()) {
            eprintln!("SKIP: python3 with the safetensors package is not installed; checked the header only");
        } else {
            let script = "import sys, json\nfrom safetensors.numpy import load_file\nfrom safetensors import safe_open\n\
                          t = load_file(sys.argv[1])\nwith safe_open(sys.argv[1], 'np') as f: meta = f.metadata()\n\
                          print(json.dumps({'names': sorted(t), 'sum': float(t['net1/' + sys.argv[2]].sum()), \
                          'epochs': json.loads(meta['fewshot'])['state']['epochs_done']}))";
            let first = &layout.params()[0].name;
            let out = std::process::Command::new("python3").args(["-c", script, path.to_str().unwrap(), first]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
            names.sort();
            assert_eq!(serde_json::to_value(&names).unwrap(), read["names"]);
            let sum: f64 = tensor_to_vec(engine.nets.param(1, 0).clone()).iter().map(|&v| v as f64).sum();
            assert!((read["sum"].as_f64().unwrap() - sum).abs() <= 1e-4 * (1.0 + sum.abs()), "{read} vs {sum}");
            assert_eq!(read["epochs"], 3);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("fewshot-ckpt-{}", std::process::id()));
        let (path, layout, engine) = trained_checkpoint(&dir);
        let (graph, slots) = small_space();
        let loaded = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).unwrap();
        assert_eq!(loaded.nets.to_host(), engine.nets.to_host());
        assert_eq!(loaded.state, state(&layout, 2));
        // The same state gives the same bytes (a resumed run's checkpoint equals a straight one's).
        let again = dir.join("again.safetensors");
        save(&again, &engine, &state(&layout, 2)).unwrap();
        assert!(fs::read(&again).unwrap() == fs::read(&path).unwrap(), "checkpoint bytes differ between saves");
        assert_eq!(read_state(&path).unwrap().steps_done, 42);
        for k in 0..2 {
            for id in 0..layout.params().len() {
                let want = engine.optim.momentum(k, id).map(|m| tensor_to_vec(m.clone()));
                let got = loaded.momentum[k][id].clone().map(tensor_to_vec);
                assert_eq!(got, want);
            }
        }
        assert!(loaded.momentum[0].iter().all(Option::is_none), "supernet 0 was never trained");

        let err = load::<CpuBackend>(&path, layout.clone(), 3, &Default::default()).err().unwrap();
        assert!(err.to_string().contains("2 supernets"), "{err}");
        let other = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap());
        let err = load::<CpuBackend>(&path, other, 2, &Default::default()).err().unwrap();
        assert!(err.to_string().contains("different supernet"), "{err}");

        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).err().unwrap();
        assert!(err.to_string().contains("corrupt"), "{err}");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let err = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).err().unwrap();
        assert!(err.to_string().contains("checksum"), "{err}");
        fs::write(&path, b"garbage").unwrap();
        assert!(read_state(&path).unwrap_err().to_string().contains("corrupt"));
        let _ = fs::remove_dir_all(&dir);
    }
}
