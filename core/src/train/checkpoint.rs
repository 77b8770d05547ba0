//! Checkpoints: all supernet weights, the optimizer's momentum buffers and the training state,
//! in one safetensors file written atomically.
//!
//! Tensors are full-precision `F32`: `net<k>/<param>` for every parameter of supernet `k`, and
//! `momentum<k>/<param>` for every momentum buffer that exists. The safetensors metadata entry
//! `fewshot` holds a JSON [`CheckpointState`]: completed epochs and steps, the step source's
//! state, RNG states, and a fingerprint of the layout (graph, channel divisor, BN mode) plus the
//! number of supernets, so that a checkpoint of another network is refused. A checksum over
//! the tensor bytes catches corruption.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::Path,
    sync::Arc,
};

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{
    train::optim::Sgd,
    engine::supernet::{tensor_to_vec, SupernetLayout, Supernets},
    util::hash::Fnv1a,
};

/// Format version written into every checkpoint.
pub const CHECKPOINT_VERSION: u32 = 1;

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
    /// The step source's saved state.
    pub step_source: String,
    /// Named RNG states.
    pub rngs: BTreeMap<String, [u64; 4]>,
    /// Anything else the caller wants to keep (e.g. the training configuration).
    pub extra: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

fn checksum(bytes: &[u8]) -> String {
    let mut h = Fnv1a::new();
    h.write_words(bytes);
    format!("{:016x}", h.finish())
}

/// Saves `nets`, the momentum buffers of `optim` and `state` to `path` (atomically).
pub fn save<B: Backend>(path: &Path, nets: &Supernets<B>, optim: &Sgd<B>, state: &CheckpointState) -> Result<(), String> {
    let layout = nets.layout();
    let mut header: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut data: Vec<u8> = Vec::with_capacity(layout.num_scalars() * nets.count() * 8);
    let mut push = |name: String, shape: &[usize], values: Vec<f32>, header: &mut BTreeMap<String, serde_json::Value>| {
        let begin = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let entry = TensorEntry { dtype: "F32".into(), shape: shape.to_vec(), data_offsets: [begin, data.len()] };
        header.insert(name, serde_json::to_value(entry).expect("tensor entry serialises"));
    };
    for k in 0..nets.count() {
        for (id, p) in layout.params().iter().enumerate() {
            push(format!("net{k}/{}", p.name), &p.shape, tensor_to_vec(nets.param(k, id).clone()), &mut header);
            if let Some(m) = optim.momentum(k, id) {
                push(format!("momentum{k}/{}", p.name), &p.shape, tensor_to_vec(m.clone()), &mut header);
            }
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert("fewshot".to_string(), serde_json::to_string(state).map_err(|e| e.to_string())?);
    meta.insert("checksum".to_string(), checksum(&data));
    header.insert("__metadata__".into(), serde_json::to_value(meta).expect("metadata serialises"));
    let mut json = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut file = Vec::with_capacity(8 + json.len() + data.len());
    file.extend_from_slice(&(json.len() as u64).to_le_bytes());
    file.extend_from_slice(&json);
    file.extend_from_slice(&data);
    crate::util::files::save(path, &file)
}

/// A loaded checkpoint.
pub struct Loaded<B: Backend> {
    /// The supernets.
    pub nets: Supernets<B>,
    /// Momentum buffers, `[supernet][param]`.
    pub momentum: Vec<Vec<Option<Tensor<B, 1>>>>,
    /// The training state.
    pub state: CheckpointState,
}

/// Reads only the training state of a checkpoint (cheap; no tensors are built).
pub fn read_state(path: &Path) -> Result<CheckpointState, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    let (_, state, _) = parse(path, &bytes)?;
    Ok(state)
}

type Parsed<'a> = (HashMap<String, TensorEntry>, CheckpointState, &'a [u8]);

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>, String> {
    let bad = |why: &str| format!("checkpoint {} is corrupt or not a fewshot checkpoint: {why}", path.display());
    let len = u64::from_le_bytes(bytes.get(..8).ok_or_else(|| bad("file too short"))?.try_into().unwrap()) as usize;
    let json = bytes.get(8..8usize.saturating_add(len)).ok_or_else(|| bad("truncated header"))?;
    let data = &bytes[8 + len..];
    let mut header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|e| bad(&format!("unreadable header ({e})")))?;
    let meta: HashMap<String, String> = header
        .remove("__metadata__")
        .and_then(|m| serde_json::from_value(m).ok())
        .ok_or_else(|| bad("no metadata"))?;
    let state: CheckpointState = meta
        .get("fewshot")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("no fewshot training state"))?;
    if state.version != CHECKPOINT_VERSION {
        return Err(format!(
            "checkpoint {} has format version {}, this fewshot reads version {CHECKPOINT_VERSION}",
            path.display(),
            state.version
        ));
    }
    let mut entries = HashMap::new();
    for (name, value) in header {
        let entry: TensorEntry = serde_json::from_value(value).map_err(|_| bad(&format!("bad entry `{name}`")))?;
        let [begin, end] = entry.data_offsets;
        if entry.dtype != "F32" || begin > end || end > data.len() || end - begin != 4 * entry.shape.iter().product::<usize>() {
            return Err(bad(&format!("tensor `{name}` does not fit the file (truncated?)")));
        }
        entries.insert(name, entry);
    }
    if meta.get("checksum").map(String::as_str) != Some(checksum(data).as_str()) {
        return Err(bad("checksum mismatch (truncated or modified)"));
    }
    Ok((entries, state, data))
}

/// Loads a checkpoint for `layout` with `supernets` supernets onto `device`. Fails clearly on a
/// missing, corrupt or truncated file, and on a checkpoint of a different network.
pub fn load<B: Backend>(
    path: &Path,
    layout: Arc<SupernetLayout>,
    supernets: usize,
    device: &B::Device,
) -> Result<Loaded<B>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    let (entries, state, data) = parse(path, &bytes)?;
    if state.fingerprint != layout.fingerprint() {
        return Err(format!(
            "checkpoint {} belongs to a different supernet (another space, space parameters, channel divisor or BN mode)",
            path.display()
        ));
    }
    if state.supernets != supernets {
        return Err(format!(
            "checkpoint {} holds {} supernets, this run has {supernets}",
            path.display(),
            state.supernets
        ));
    }
    let read = |name: &str, shape: &[usize]| -> Result<Option<Vec<f32>>, String> {
        let Some(entry) = entries.get(name) else { return Ok(None) };
        if entry.shape != shape {
            return Err(format!("checkpoint {}: `{name}` has shape {:?}, expected {shape:?}", path.display(), entry.shape));
        }
        let [begin, end] = entry.data_offsets;
        Ok(Some(data[begin..end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()))
    };
    let mut host = Vec::with_capacity(supernets);
    let mut momentum = Vec::with_capacity(supernets);
    for k in 0..supernets {
        let mut net = Vec::new();
        let mut buffers = Vec::new();
        for p in layout.params() {
            let weights = read(&format!("net{k}/{}", p.name), &p.shape)?
                .ok_or_else(|| format!("checkpoint {} lacks `net{k}/{}`", path.display(), p.name))?;
            net.push(weights);
            buffers.push(read(&format!("momentum{k}/{}", p.name), &p.shape)?.map(|m| {
                let n = m.len();
                Tensor::<B, 1>::from_data(TensorData::new(m, [n]), device)
            }));
        }
        host.push(net);
        momentum.push(buffers);
    }
    Ok(Loaded { nets: Supernets::from_host(layout, host, device), momentum, state })
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
            rngs: BTreeMap::from([("data".to_string(), [1, 2, 3, 4])]),
            extra: serde_json::json!({"note": 1}),
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("fewshot-ckpt-{}", std::process::id()));
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let nets = Supernets::<CpuBackend>::new(layout.clone(), 2, 9, &Default::default());
        let mut engine = StepEngine::new(nets, SgdConfig::default(), 0.0);
        engine.step(images(4, 3, 8, 1), &[0, 1, 2, 3], &[(1, vec![0, 0])], 0.1).unwrap();
        let path = dir.join("checkpoint.safetensors");
        save(&path, &engine.nets, &engine.optim, &state(&layout, 2)).unwrap();
        let loaded = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).unwrap();
        assert_eq!(loaded.nets.to_host(), engine.nets.to_host());
        assert_eq!(loaded.state, state(&layout, 2));
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
        assert!(err.contains("2 supernets"), "{err}");
        let other = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Plain).unwrap());
        let err = load::<CpuBackend>(&path, other, 2, &Default::default()).err().unwrap();
        assert!(err.contains("different supernet"), "{err}");

        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).err().unwrap();
        assert!(err.contains("corrupt"), "{err}");
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        fs::write(&path, &flipped).unwrap();
        let err = load::<CpuBackend>(&path, layout.clone(), 2, &Default::default()).err().unwrap();
        assert!(err.contains("checksum"), "{err}");
        fs::write(&path, b"garbage").unwrap();
        assert!(read_state(&path).unwrap_err().contains("corrupt"));
        let _ = fs::remove_dir_all(&dir);
    }
}
