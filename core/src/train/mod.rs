//! Training K supernets together.
//!
//! Every step asks a [`StepSource`] which (subspace, architecture) pairs to train, runs them
//! all on the same batch, sums their losses and takes one SGD step (paper Eq. 9). The learning
//! rate follows an [`LrSchedule`]. At the end of every epoch the run directory receives,
//! atomically, a checkpoint (`checkpoint.safetensors`: weights, momentum, step-source state,
//! counters) and one line of `metrics.jsonl`. A resumed run continues from the checkpoint;
//! data order and augmentation depend only on (seed, epoch, sample), so on the CPU a resumed run
//! ends with exactly the weights of an uninterrupted one.
//!
//! Run directory files written here:
//! - `train_config.json`: the resolved [`TrainConfig`] and the supernet layout summary;
//! - `checkpoint.safetensors`: see [`crate::train::checkpoint`];
//! - `metrics.jsonl`: one JSON object per epoch: `epoch`, `lr`, `steps`, `images`,
//!   `images_per_s`, `seconds`, `loss`, `accuracy` (percent, over all trained pairs) and
//!   `supernets`: per supernet `subspace`, `steps` (steps that trained it), `loss`, `accuracy`.

pub mod checkpoint;
pub mod optim;
pub mod step;

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{
    data::DataError,
    engine::{backend::EngineBackend, EngineError},
    train::checkpoint::{CheckpointError, CheckpointState, CHECKPOINT_VERSION},
    data::{batch_indices, epoch_order, Augment, Dataset, Prefetch},
    util::files::{save, SaveError},
    train::optim::{LrSchedule, SgdConfig},
    train::step::StepEngine,
    engine::supernet::{SupernetLayout, Supernets},
    progress::{Job, Progress},
};

/// File name of the checkpoint inside a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the per-epoch metrics inside a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the resolved training configuration inside a run directory.
pub const CONFIG_FILE: &str = "train_config.json";

/// Why a run could not be trained (or resumed), or a step not taken.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Zero epochs configured.
    #[error("the number of epochs must be positive")]
    NoEpochs,
    /// A batch too small for batch statistics.
    #[error("the batch size must be at least 2 (batch statistics)")]
    BatchTooSmall,
    /// A label smoothing outside `[0, 1)`.
    #[error("label smoothing must be in [0, 1), got {0}")]
    LabelSmoothing(f64),
    /// A momentum outside `[0, 1)`.
    #[error("momentum must be in [0, 1), got {0}")]
    Momentum(f64),
    /// A dampening outside `[0, 1]`.
    #[error("dampening must be in [0, 1], got {0}")]
    Dampening(f64),
    /// Nesterov momentum without momentum, or with dampening.
    #[error("Nesterov momentum needs a positive momentum and zero dampening")]
    Nesterov,
    /// RMSProp settings outside `0 <= alpha < 1`, `eps > 0`.
    #[error("RMSProp needs 0 <= alpha < 1 and a positive eps (got alpha {alpha}, eps {eps})")]
    RmsProp {
        /// The smoothing constant.
        alpha: f64,
        /// The added constant.
        eps: f64,
    },
    /// A BatchNorm running-statistics momentum outside `(0, 1]`.
    #[error("the BatchNorm momentum must be in (0, 1], got {0}")]
    BnMomentum(f64),
    /// A step-decay schedule with a factor outside `(0, 1]` or a non-positive period.
    #[error("step decay needs a factor in (0, 1] and a positive period (got factor {factor} every {every} epochs)")]
    StepDecay {
        /// The factor.
        factor: f64,
        /// The period in epochs.
        every: f64,
    },
    /// A negative (or non-finite) weight decay.
    #[error("weight decay must be non-negative, got {0}")]
    WeightDecay(f64),
    /// Learning rates outside `0 <= min <= base, base > 0`.
    #[error("learning rates must satisfy 0 <= min <= base, base > 0 (got base {base}, min {min})")]
    LearningRates {
        /// The base (or constant) rate.
        base: f64,
        /// The final rate.
        min: f64,
    },
    /// A run of zero supernets.
    #[error("at least one supernet is needed")]
    NoSupernets,
    /// Training images of another size than the network takes.
    #[error("the training images are {found:?}, the network expects {expected:?}")]
    ImageDims {
        /// `[C, H, W]` of the images.
        found: [usize; 3],
        /// `[C, H, W]` the network takes.
        expected: [usize; 3],
    },
    /// The run directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        /// The run directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A resume asked for where there is no checkpoint.
    #[error("cannot resume: {} has no checkpoint", .0.display())]
    NoCheckpoint(PathBuf),
    /// A fresh run asked for in a directory that holds one.
    #[error("{} already holds a run (resume it, or choose a new run directory)", .0.display())]
    Occupied(PathBuf),
    /// A resume with another seed than the run was trained with.
    #[error("{} was trained with seed {trained}; resume it with the same seed (got {given})", dir.display())]
    Seed {
        /// The run directory.
        dir: PathBuf,
        /// The run's seed.
        trained: u64,
        /// The seed given now.
        given: u64,
    },
    /// The checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run file (configuration, metrics) could not be written.
    #[error(transparent)]
    Save(#[from] SaveError),
    /// A run file could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The training images could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The step source (the sampler) failed; its message.
    #[error("{0}")]
    StepSource(String),
    /// The step source failed at a step.
    #[error("the sampler failed at epoch {epoch} step {step}: {reason}")]
    Sampler {
        /// The epoch, from 1.
        epoch: usize,
        /// The step of the epoch, from 0.
        step: usize,
        /// The source's message.
        reason: String,
    },
    /// A step failed; the checkpoint of the epoch before is intact.
    #[error("epoch {epoch} step {step}: {error}; the checkpoint of epoch {} is intact", .epoch - 1)]
    Step {
        /// The epoch, from 1.
        epoch: usize,
        /// The step of the epoch, from 0.
        step: usize,
        /// What went wrong.
        error: Box<TrainError>,
    },
    /// A step names a supernet that does not exist.
    #[error("step names supernet {supernet}, but there are only {count}")]
    NoSuchSupernet {
        /// The supernet named.
        supernet: u32,
        /// Supernets of the run.
        count: usize,
    },
    /// A step names an architecture the supernets cannot run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A label outside the classes.
    #[error("label {label} is out of range for {classes} classes")]
    Label {
        /// The label.
        label: u32,
        /// Classes of the network.
        classes: usize,
    },
    /// A loss that is no longer finite.
    #[error("the loss of supernet {supernet} became {loss} (learning rate {lr}); training diverged")]
    Diverged {
        /// The supernet.
        supernet: usize,
        /// Its loss.
        loss: f64,
        /// The learning rate of the step.
        lr: f64,
    },
}

/// Decides, step by step, which subnets to train: the host side of a sampler plugin.
pub trait StepSource {
    /// The (subspace, architecture) pairs of the next step. Subspace `k` is trained in
    /// supernet `k`; a pair may appear several times.
    fn next_step(&mut self) -> Result<Vec<(u32, Vec<u32>)>, String>;
    /// The source's state, saved in checkpoints.
    fn save_state(&self) -> String;
    /// Restores a state from [`StepSource::save_state`].
    fn load_state(&mut self, state: &str) -> Result<(), String>;
}

/// How to train. The default is the NB201 supernet recipe of the reference (efs-nas.md §3.1):
/// batch 64, SGD lr 0.025 → 0.001 cosine per epoch, momentum 0.9, Nesterov, weight decay
/// 5e-4, plain cross-entropy, crop + flip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs of the whole run.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Optimizer settings.
    pub sgd: SgdConfig,
    /// Label smoothing ε (0 = plain cross-entropy).
    pub label_smoothing: f64,
    /// Training augmentation.
    pub augment: Augment,
    /// Track running BatchNorm statistics with this momentum (stand-alone networks, PyTorch's
    /// 0.1); none for supernets, which normalise with batch statistics only.
    #[serde(default)]
    pub bn_momentum: Option<f64>,
    /// Seed of the weights, data order and augmentation.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 250,
            batch_size: 64,
            schedule: LrSchedule::default(),
            sgd: SgdConfig::default(),
            label_smoothing: 0.0,
            augment: Augment::default(),
            bn_momentum: None,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.epochs == 0 {
            return Err(TrainError::NoEpochs);
        }
        if self.batch_size < 2 {
            return Err(TrainError::BatchTooSmall);
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(TrainError::LabelSmoothing(self.label_smoothing));
        }
        if let Some(m) = self.bn_momentum.filter(|m| !(*m > 0.0 && *m <= 1.0)) {
            return Err(TrainError::BnMomentum(m));
        }
        self.schedule.validate()?;
        self.sgd.validate()
    }
}

/// Loss and accuracy of one supernet over an epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SupernetEpoch {
    /// Subspace (supernet index).
    pub subspace: u32,
    /// Steps that trained this supernet (a step training it twice counts once).
    pub steps: u64,
    /// Mean training loss over its trained (pair, batch) instances.
    pub loss: f64,
    /// Training accuracy in percent over the same instances.
    pub accuracy: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate at the epoch's first step.
    pub lr: f64,
    /// Steps in the epoch.
    pub steps: u64,
    /// Images seen in the epoch.
    pub images: u64,
    /// Images per second (batch images per wall-clock second of training).
    pub images_per_s: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
    /// Mean loss over all trained pairs.
    pub loss: f64,
    /// Accuracy over all trained pairs, percent.
    pub accuracy: f64,
    /// Per supernet.
    pub supernets: Vec<SupernetEpoch>,
}

/// What to train and where.
pub struct TrainRun {
    /// The supernet layout (space graph at the channel divisor).
    pub layout: Arc<SupernetLayout>,
    /// Number of supernets K.
    pub supernets: usize,
    /// Settings.
    pub config: TrainConfig,
    /// Run directory (created if needed).
    pub run_dir: PathBuf,
    /// The supernet-training images.
    pub data: Arc<Dataset>,
    /// Continue from the run directory's checkpoint (an error when there is none). Without
    /// it, a run directory that already holds a checkpoint is refused.
    pub resume: bool,
    /// Stop once this many epochs are done, as if interrupted (the run can be resumed).
    pub stop_after: Option<usize>,
    /// Anything the caller wants stored in checkpoints (e.g. its own resolved configuration).
    pub extra: serde_json::Value,
}

/// The result of [`train`].
pub struct Trained<B: EngineBackend> {
    /// The supernets after the last completed epoch, with their optimizer and running
    /// statistics.
    pub engine: StepEngine<B>,
    /// Completed epochs.
    pub epochs_done: usize,
    /// This call's epochs.
    pub history: Vec<EpochMetrics>,
}

/// Trains (or resumes) a run on `device`, reporting each epoch's steps to `progress` (pass
/// [`NoProgress`](crate::progress::NoProgress) to show nothing); returns the trained supernets.
pub fn train<B: EngineBackend>(
    run: TrainRun,
    source: &mut dyn StepSource,
    device: &B::Device,
    progress: &dyn Progress,
) -> Result<Trained<B>, TrainError> {
    let config = &run.config;
    config.validate()?;
    if run.supernets == 0 {
        return Err(TrainError::NoSupernets);
    }
    if run.data.dims != run.layout.input_dims() {
        return Err(TrainError::ImageDims { found: run.data.dims, expected: run.layout.input_dims() });
    }
    fs::create_dir_all(&run.run_dir).map_err(|source| TrainError::CreateDir { path: run.run_dir.clone(), source })?;
    let checkpoint_path = run.run_dir.join(CHECKPOINT_FILE);
    let metrics_path = run.run_dir.join(METRICS_FILE);
    let (mut engine, mut epochs_done, mut steps_done) = if run.resume {
        if !checkpoint_path.exists() {
            return Err(TrainError::NoCheckpoint(run.run_dir.clone()));
        }
        let loaded = checkpoint::load::<B>(&checkpoint_path, run.layout.clone(), run.supernets, device)?;
        if loaded.state.seed != config.seed {
            return Err(TrainError::Seed { dir: run.run_dir.clone(), trained: loaded.state.seed, given: config.seed });
        }
        source.load_state(&loaded.state.step_source).map_err(TrainError::StepSource)?;
        let mut engine = StepEngine::new(loaded.nets, config.sgd.clone(), config.label_smoothing);
        for (k, (buffers, squares)) in loaded.momentum.into_iter().zip(loaded.square).enumerate() {
            for (id, (buffer, square)) in buffers.into_iter().zip(squares).enumerate() {
                engine.optim.set_momentum(k, id, buffer);
                engine.optim.set_square(k, id, square);
            }
        }
        if let Some(momentum) = config.bn_momentum {
            engine = engine.with_bn_tracking(momentum, loaded.running);
        }
        truncate_metrics(&metrics_path, loaded.state.epochs_done)?;
        (engine, loaded.state.epochs_done, loaded.state.steps_done)
    } else {
        if checkpoint_path.exists() {
            return Err(TrainError::Occupied(run.run_dir.clone()));
        }
        let nets = Supernets::<B>::new(run.layout.clone(), run.supernets, config.seed, device);
        let _ = fs::remove_file(&metrics_path);
        let mut engine = StepEngine::new(nets, config.sgd.clone(), config.label_smoothing);
        if let Some(momentum) = config.bn_momentum {
            engine = engine.with_bn_tracking(momentum, None);
        }
        (engine, 0, 0)
    };
    write_config(&run)?;

    let mut history = Vec::new();
    let last = run.stop_after.map_or(config.epochs, |s| s.min(config.epochs));
    while epochs_done < last {
        let epoch = epochs_done;
        let metrics = train_epoch(&run, &mut engine, source, epoch, &mut steps_done, device, progress)?;
        let state = CheckpointState {
            version: CHECKPOINT_VERSION,
            fingerprint: run.layout.fingerprint(),
            supernets: run.supernets,
            seed: config.seed,
            epochs_done: epoch + 1,
            steps_done,
            step_source: source.save_state(),
            extra: run.extra.clone(),
        };
        checkpoint::save(&checkpoint_path, &engine, &state)?;
        append_metrics(&metrics_path, &metrics)?;
        history.push(metrics);
        epochs_done += 1;
    }
    Ok(Trained { engine, epochs_done, history })
}

fn train_epoch<B: EngineBackend>(
    run: &TrainRun,
    engine: &mut StepEngine<B>,
    source: &mut dyn StepSource,
    epoch: usize,
    steps_done: &mut u64,
    device: &B::Device,
    progress: &dyn Progress,
) -> Result<EpochMetrics, TrainError> {
    let config = &run.config;
    let order = epoch_order(run.data.len(), config.seed, epoch);
    let batches = batch_indices(&order, config.batch_size);
    let steps = batches.len();
    let images: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let augment = config.augment.is_active().then_some((config.augment, config.seed, epoch));
    let stream = Prefetch::start(run.data.clone(), batches, augment)?;
    progress.start(Job::Epoch { epoch: epoch + 1, epochs: config.epochs }, steps as u64);
    let start = Instant::now();
    let mut per_net = vec![SupernetEpochSums::default(); run.supernets];
    let mut last_step = vec![u64::MAX; run.supernets];
    let (mut loss_sum, mut pairs, mut correct, mut seen) = (0f64, 0u64, 0u64, 0u64);
    let first_lr = config.schedule.lr(epoch, config.epochs, 0, steps);
    for (step, batch) in stream.enumerate() {
        let lr = config.schedule.lr(epoch, config.epochs, step, steps);
        let picks =
            source.next_step().map_err(|reason| TrainError::Sampler { epoch: epoch + 1, step, reason })?;
        let n = batch.labels.len() as u64;
        let images_tensor = Tensor::<B, 4>::from_data(TensorData::new(batch.pixels, batch.dims), device);
        let results = engine
            .step(images_tensor, &batch.labels, &picks, lr)
            .map_err(|error| TrainError::Step { epoch: epoch + 1, step, error: Box::new(error) })?;
        for r in &results {
            let k = r.subspace as usize;
            let sums = &mut per_net[k];
            if last_step[k] != *steps_done {
                sums.steps += 1;
                last_step[k] = *steps_done;
            }
            sums.add(r.loss, r.correct as u64, n);
            loss_sum += r.loss;
            pairs += 1;
            correct += r.correct as u64;
            seen += n;
        }
        *steps_done += 1;
        let elapsed = start.elapsed().as_secs_f64();
        progress.advance(1);
        progress.message(&format!(
            "loss {:.3} acc {:.1}% {:.0} img/s",
            loss_sum / pairs.max(1) as f64,
            100.0 * correct as f64 / seen.max(1) as f64,
            ((step + 1) as f64 * n as f64) / elapsed.max(1e-9)
        ));
    }
    progress.finish();
    let seconds = start.elapsed().as_secs_f64();
    Ok(EpochMetrics {
        epoch: epoch + 1,
        lr: first_lr,
        steps: steps as u64,
        images,
        images_per_s: images as f64 / seconds.max(1e-9),
        seconds,
        loss: loss_sum / pairs.max(1) as f64,
        accuracy: 100.0 * correct as f64 / seen.max(1) as f64,
        supernets: per_net
            .into_iter()
            .enumerate()
            .map(|(k, t)| SupernetEpoch {
                subspace: k as u32,
                steps: t.steps,
                loss: t.loss_sum / t.pairs.max(1) as f64,
                accuracy: 100.0 * t.correct as f64 / t.seen.max(1) as f64,
            })
            .collect(),
    })
}

/// Running sums of one supernet over an epoch: steps that trained it, trained pairs, their loss,
/// correct and seen images.
#[derive(Clone, Default)]
struct SupernetEpochSums {
    steps: u64,
    pairs: u64,
    loss_sum: f64,
    correct: u64,
    seen: u64,
}

impl SupernetEpochSums {
    fn add(&mut self, loss: f64, correct: u64, images: u64) {
        self.pairs += 1;
        self.loss_sum += loss;
        self.correct += correct;
        self.seen += images;
    }
}

fn write_config(run: &TrainRun) -> Result<(), TrainError> {
    let summary = serde_json::json!({
        "train": run.config,
        "supernets": run.supernets,
        "channel_divisor": run.layout.divisor(),
        "batch_norm": run.layout.norm(),
        "parameters_per_supernet": run.layout.num_scalars(),
        "layout_fingerprint": run.layout.fingerprint(),
        "training_images": run.data.len(),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    Ok(save(&run.run_dir.join(CONFIG_FILE), text.as_bytes())?)
}

/// Appends one line; the file is rewritten atomically so a crash never leaves half a line.
fn append_metrics(path: &Path, metrics: &EpochMetrics) -> Result<(), TrainError> {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let mut line = serde_json::to_vec(metrics)?;
    line.push(b'\n');
    let mut bytes = text.into_bytes();
    bytes.write_all(&line).expect("writing to a vector");
    Ok(save(path, &bytes)?)
}

/// Drops metric lines of epochs after `epochs_done` (written before an interruption).
fn truncate_metrics(path: &Path, epochs_done: usize) -> Result<(), SaveError> {
    let Ok(text) = fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<EpochMetrics>(line).map(|m| m.epoch <= epochs_done).unwrap_or(false)
        })
        .collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    save(path, out.as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        engine::backend::{CpuBackend, ReferenceBackend},
        data::builtin,
        progress::NoProgress,
        util::rng::Rng,
        engine::supernet::{
            tests::{depthwise_space, small_space},
            NormMode,
        },
    };

    /// One uniformly random architecture per supernet per step (the `sbs` sampler over an
    /// unsplit space), with its generator as the saved state.
    pub(crate) struct UniformSteps {
        pub rng: Rng,
        pub options: Vec<u32>,
        pub supernets: u32,
    }

    impl StepSource for UniformSteps {
        fn next_step(&mut self) -> Result<Vec<(u32, Vec<u32>)>, String> {
            Ok((0..self.supernets)
                .map(|k| (k, self.options.iter().map(|&n| self.rng.below(n as u64) as u32).collect()))
                .collect())
        }
        fn save_state(&self) -> String {
            serde_json::to_string(&self.rng).unwrap()
        }
        fn load_state(&mut self, state: &str) -> Result<(), String> {
            self.rng = serde_json::from_str(state).map_err(|e| e.to_string())?;
            Ok(())
        }
    }

    pub(crate) fn source(seed: u64) -> UniformSteps {
        UniformSteps { rng: Rng::new(seed), options: vec![4, 2], supernets: 2 }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fewshot-train-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    pub(crate) fn tiny_run(dir: &Path, epochs: usize, data: Arc<Dataset>) -> TrainRun {
        let (graph, slots) = small_space();
        TrainRun {
            layout: Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap()),
            supernets: 2,
            config: TrainConfig { epochs, batch_size: 16, seed: 4, ..Default::default() },
            run_dir: dir.to_path_buf(),
            data,
            resume: false,
            stop_after: None,
            extra: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
        let data = Arc::new(builtin(40, 2, [3, 8, 8]).unwrap().0);
        let device = Default::default();
        let straight_dir = temp_dir("straight");
        let straight = train::<CpuBackend>(tiny_run(&straight_dir, 2, data.clone()), &mut source(1), &device, &NoProgress).unwrap();
        assert_eq!(straight.epochs_done, 2);

        let dir = temp_dir("resumed");
        let first = TrainRun { stop_after: Some(1), ..tiny_run(&dir, 2, data.clone()) };
        let mut src = source(1);
        let part = train::<CpuBackend>(first, &mut src, &device, &NoProgress).unwrap();
        assert_eq!(part.epochs_done, 1);
        assert_eq!(fs::read_to_string(dir.join(METRICS_FILE)).unwrap().lines().count(), 1);
        let second = TrainRun { resume: true, ..tiny_run(&dir, 2, data.clone()) };
        let resumed = train::<CpuBackend>(second, &mut source(999), &device, &NoProgress).unwrap();
        assert_eq!(resumed.epochs_done, 2);
        assert_eq!(resumed.engine.nets.to_host(), straight.engine.nets.to_host(), "bit-identical weights");

        let metrics = fs::read_to_string(dir.join(METRICS_FILE)).unwrap();
        let lines: Vec<EpochMetrics> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lines[1].steps, 3, "40 images / batch 16 → 16, 16, 8");
        assert_eq!(lines[1].supernets.len(), 2);
        assert_eq!(lines[1].supernets[0].steps, 3, "SBS trains every supernet every step");
        assert!(lines[1].lr < lines[0].lr, "cosine per epoch");
        assert!(dir.join(CONFIG_FILE).exists());

        let mut other_seed = TrainRun { resume: true, ..tiny_run(&dir, 3, data.clone()) };
        other_seed.config.seed = 5;
        let err = train::<CpuBackend>(other_seed, &mut source(1), &device, &NoProgress).err().unwrap().to_string();
        assert!(err.contains("seed 4"), "{err}");
        let again = TrainRun { ..tiny_run(&dir, 2, data.clone()) };
        let err = train::<CpuBackend>(again, &mut source(1), &device, &NoProgress).err().unwrap().to_string();
        assert!(err.contains("already holds a run"), "{err}");
        let fresh = TrainRun { resume: true, ..tiny_run(&temp_dir("nothing"), 2, data) };
        assert!(train::<CpuBackend>(fresh, &mut source(1), &device, &NoProgress).err().unwrap().to_string().contains("no checkpoint"));
        let _ = fs::remove_dir_all(&straight_dir);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stand_alone_run_tracks_running_statistics_and_resumes_bit_identical() {
        // Affine BN, RMSProp with weights-only decay, running statistics: everything a retrain
        // keeps survives an interruption.
        let data = Arc::new(builtin(40, 2, [3, 8, 8]).unwrap().0);
        let device = Default::default();
        let standalone = |dir: &Path| {
            let (graph, slots) = small_space();
            let mut run = tiny_run(dir, 2, data.clone());
            run.layout = Arc::new(SupernetLayout::new(&graph, &slots, 1.0, NormMode::Affine).unwrap());
            run.supernets = 1;
            run.config.bn_momentum = Some(0.1);
            run.config.sgd.rmsprop = Some(optim::RmsPropConfig::default());
            run.config.sgd.decay_weights_only = true;
            run.config.augment = Augment { resized_crop: Some(0.08), jitter: 0.4, ..Augment::default() };
            run
        };
        let one = || UniformSteps { rng: Rng::new(1), options: vec![4, 2], supernets: 1 };
        let straight_dir = temp_dir("standalone-straight");
        let straight = train::<CpuBackend>(standalone(&straight_dir), &mut one(), &device, &NoProgress).unwrap();
        let dir = temp_dir("standalone-resumed");
        train::<CpuBackend>(TrainRun { stop_after: Some(1), ..standalone(&dir) }, &mut one(), &device, &NoProgress).unwrap();
        let resumed = train::<CpuBackend>(TrainRun { resume: true, ..standalone(&dir) }, &mut one(), &device, &NoProgress).unwrap();
        assert_eq!(resumed.engine.nets.to_host(), straight.engine.nets.to_host(), "bit-identical weights");
        let stats = |t: &Trained<CpuBackend>| -> Vec<(usize, Vec<f32>, Vec<f32>)> {
            t.engine.bn_tracking.as_ref().unwrap().stats[0]
                .entries()
                .into_iter()
                .map(|(node, m, v)| (node, crate::engine::supernet::tensor_to_vec(m), crate::engine::supernet::tensor_to_vec(v)))
                .collect()
        };
        let (a, b) = (stats(&straight), stats(&resumed));
        assert!(!a.is_empty(), "BatchNorm nodes that ran have running statistics");
        assert_eq!(a, b, "bit-identical running statistics");
        assert!(a.iter().all(|(_, m, v)| m.iter().any(|x| *x != 0.0) && v.iter().all(|x| *x > 0.0)));
        let _ = fs::remove_dir_all(&straight_dir);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The largest difference between two sets of supernet weights, relative to the largest
    /// weight.
    fn weight_distance(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
        let flat = |w: &[Vec<Vec<f32>>]| w.iter().flatten().flatten().copied().collect::<Vec<f32>>();
        let (a, b) = (flat(a), flat(b));
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn the_generic_kernels_train_like_the_direct_kernels_on_every_op_family() {
        // The generic kernels are what the GPU backends run; the reference backend runs them on
        // the CPU. Same init, same batches: after a few SGD steps the weights agree.
        let (graph, slots) = depthwise_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let data = Arc::new(builtin(48, 2, [3, 8, 8]).unwrap().0);
        let steps = || UniformSteps { rng: Rng::new(3), options: vec![4, 3], supernets: 2 };
        let run = |name: &str| TrainRun { layout: layout.clone(), ..tiny_run(&temp_dir(name), 2, data.clone()) };
        let direct = train::<CpuBackend>(run("direct"), &mut steps(), &Default::default(), &NoProgress).unwrap();
        let generic = train::<ReferenceBackend>(run("generic"), &mut steps(), &Default::default(), &NoProgress).unwrap();
        let moved = weight_distance(&direct.engine.nets.to_host(), &fresh_weights(&layout));
        let apart = weight_distance(&direct.engine.nets.to_host(), &generic.engine.nets.to_host());
        assert!(moved > 1e-2, "training moved the weights ({moved})");
        assert!(apart < 1e-4, "direct and generic kernels disagree: {apart} (moved {moved})");
        for name in ["direct", "generic"] {
            let _ = fs::remove_dir_all(temp_dir(name));
        }
    }

    /// The weights a run starts from (its seeded initialisation).
    fn fresh_weights(layout: &Arc<SupernetLayout>) -> Vec<Vec<Vec<f32>>> {
        crate::engine::supernet::Supernets::<CpuBackend>::new(layout.clone(), 2, 4, &Default::default()).to_host()
    }

    #[test]
    fn a_diverging_loss_is_an_error_and_the_last_checkpoint_survives() {
        let data = Arc::new(builtin(40, 2, [3, 8, 8]).unwrap().0);
        let device = Default::default();
        let dir = temp_dir("nan");
        train::<CpuBackend>(TrainRun { stop_after: Some(1), ..tiny_run(&dir, 3, data.clone()) }, &mut source(2), &device, &NoProgress).unwrap();
        let mut run = TrainRun { resume: true, ..tiny_run(&dir, 3, data) };
        run.config.schedule = LrSchedule::Constant { lr: 1e35 };
        let err = train::<CpuBackend>(run, &mut source(2), &device, &NoProgress).err().unwrap().to_string();
        assert!(err.contains("diverged") && err.contains("epoch 2") && err.contains("intact"), "{err}");
        let state = checkpoint::read_state(&dir.join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(state.epochs_done, 1);
        assert_eq!(fs::read_to_string(dir.join(METRICS_FILE)).unwrap().lines().count(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
