//! The training stage: the supernets of a run, one per subspace, trained by the engine with
//! steps drawn by a sampler plugin through the plan ([`PlanSteps`], whose state goes into the
//! checkpoints), and the summary of what they received.

use anyhow::{anyhow, Result};
use fewshot_core::{
    engine::backend::{run_on, BackendJob, EngineBackend},
    progress::{NoProgress, Progress},
    plan::{Plan, PlanDrawer},
    train::{self as engine, StepSource, TrainRun},
    util::rng::Rng,
};
use fewshot_sdk::{
    abi_stable::std_types::RStr,
    ffi::{from_ffi, SamplerBox},
};
use serde::{Deserialize, Serialize};

use super::Run;
use crate::{io::table::render, progress::Bars};

/// Trains the run's supernets (or resumes from the checkpoint); `stop_after` ends after that
/// many epochs as if interrupted.
pub fn train(run: &Run, resume: bool, stop_after: Option<usize>, progress: bool) -> Result<()> {
    let layout = run.layout()?;
    let splits = run.splits(&layout)?;
    let sampler = run.registry.sampler(&run.config.train.sampler)?;
    let train_run = TrainRun {
        layout,
        supernets: run.supernets(),
        config: run.config.train_config(),
        run_dir: run.dir.path().to_path_buf(),
        data: splits.train.clone(),
        resume,
        stop_after,
        extra: serde_json::json!({ "sampler": run.config.train.sampler }),
    };
    let job = TrainJob { run: train_run, source: PlanSteps::new(&run.plan, sampler, run.config.seed)?, progress };
    run_on(run.config.device, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))
}

/// Per supernet: steps received over the whole run, and last-epoch loss and accuracy.
pub fn summary(run: &Run) -> Result<String> {
    let records = run.dir.training_records()?;
    let Some(last) = records.last() else {
        return Ok("no epoch trained yet".into());
    };
    let headers = ["supernet", "subspace", "trainable archs", "steps", "loss", "train acc (%)"];
    let rows: Vec<Vec<String>> = run
        .plan
        .subspaces()
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let steps: u64 = records.iter().filter_map(|r| r.supernets.get(k)).map(|e| e.steps).sum();
            let (loss, acc) = match last.supernets.get(k) {
                Some(e) if e.steps > 0 => (format!("{:.4}", e.loss), format!("{:.2}", e.accuracy)),
                _ => ("-".to_string(), "-".to_string()),
            };
            vec![k.to_string(), s.label.clone(), s.trainable.to_string(), steps.to_string(), loss, acc]
        })
        .collect();
    Ok(format!("trained {} epoch(s) in {}; last epoch:\n{}", last.epoch, run.dir.path().display(), render(&headers, &rows)))
}

/// Mean last-epoch training loss over all supernets, once an epoch is trained.
pub fn final_loss(run: &Run) -> Result<Option<f64>> {
    Ok(run
        .dir
        .training_records()?
        .last()
        .map(|r| r.supernets.iter().map(|s| s.loss).sum::<f64>() / r.supernets.len().max(1) as f64))
}

/// The training step source over a plan: a sampler plugin drawing through the plan's drawer.
/// Its state (the drawer's generator and the sampler's own state) goes into checkpoints.
pub struct PlanSteps<'a> {
    plan: &'a Plan,
    drawer: PlanDrawer<'a>,
    sampler: SamplerBox,
    /// The sampler's state after the last step (saved eagerly, so saving cannot fail later).
    sampler_state: String,
}

#[derive(Serialize, Deserialize)]
struct StepsState {
    rng: Rng,
    sampler: String,
}

impl<'a> PlanSteps<'a> {
    /// Steps drawn by `sampler` through `plan`, seeded with `seed`.
    pub fn new(plan: &'a Plan, sampler: SamplerBox, seed: u64) -> Result<PlanSteps<'a>> {
        let sampler_state = from_ffi(sampler.save_state()).map_err(anyhow::Error::msg)?.into_string();
        Ok(PlanSteps { plan, drawer: plan.drawer(Rng::stream(seed, "sampler")), sampler, sampler_state })
    }
}

impl StepSource for PlanSteps<'_> {
    fn next_step(&mut self) -> Result<Vec<(u32, Vec<u32>)>, String> {
        let picks = self.drawer.draw_step(&mut self.sampler).map_err(|e| e.to_string())?;
        self.sampler_state = from_ffi(self.sampler.save_state())?.into_string();
        Ok(picks.into_iter().map(|p| (p.subspace, p.arch.choices.into_vec())).collect())
    }

    fn save_state(&self) -> String {
        let state = StepsState { rng: self.drawer.rng().clone(), sampler: self.sampler_state.clone() };
        serde_json::to_string(&state).expect("plain data serialises")
    }

    fn load_state(&mut self, state: &str) -> Result<(), String> {
        let state: StepsState =
            serde_json::from_str(state).map_err(|e| format!("the checkpoint's sampler state is unreadable: {e}"))?;
        from_ffi(self.sampler.load_state(RStr::from_str(&state.sampler)))?;
        self.sampler_state = state.sampler;
        self.drawer = self.plan.drawer(state.rng);
        Ok(())
    }
}

struct TrainJob<'a> {
    run: TrainRun,
    source: PlanSteps<'a>,
    /// Draw a bar per epoch.
    progress: bool,
}

impl BackendJob for TrainJob<'_> {
    type Output = Result<(), String>;

    fn run<B: EngineBackend>(mut self, device: B::Device) -> Result<(), String> {
        let bars = Bars::new();
        let progress: &dyn Progress = if self.progress { &bars } else { &NoProgress };
        engine::train::<B>(self.run, &mut self.source, &device, progress).map(|_| ()).map_err(|e| e.to_string())
    }
}
