//! The stages of the pipeline that the commands call: [`plan`] (the split), [`train`],
//! [`eval`] (accuracy estimates), [`rank`], [`score`] (zero-cost proxies), [`search`], [`report`], [`retrain`] (stand-alone
//! networks of found architectures), the whole [`pipeline`] (which
//! `run` and `compare` both go through) and the [`compare`]ison of activations, plus the exact
//! [`costs`] of architectures. Each stage works on a [`Run`]: a run directory opened with its
//! configuration, its plan and the plugins; the adapters between the plan and the engine live
//! in the stage that uses them.

pub mod compare;
pub mod costs;
pub mod eval;
pub mod pipeline;
pub mod plan;
pub mod rank;
pub mod report;
pub mod retrain;
pub mod score;
pub mod search;
pub mod train;

use std::sync::Arc;

use anyhow::{anyhow, Result};
use fewshot_core::{
    data::{load_splits, Splits},
    engine::supernet::SupernetLayout,
    plan::Plan,
};
use fewshot_sdk::{Arch, PluginKind};

use self::plan::SplitReport;
use crate::{
    config::RunConfig,
    io::csv::TruthTable,
    plugin_host::registry::{spec_name, Registry},
    run_dir::{RunDir, PLAN_FILE},
};

/// A run directory opened for the stages: its configuration, the split of its space and the
/// plugins it uses.
pub struct Run {
    /// The run directory.
    pub dir: RunDir,
    /// The resolved configuration.
    pub config: RunConfig,
    /// The split of the space.
    pub plan: Plan,
    registry: Arc<Registry>,
}

impl Run {
    /// Starts or continues a run in `dir` with `config`. A directory that already holds a run
    /// with a different configuration is refused (naming the first difference); nothing is
    /// written before the space is planned and the sampler constructed.
    pub fn create(dir: RunDir, config: RunConfig, registry: Arc<Registry>) -> Result<Run> {
        config.validate()?;
        dir.refuse_other_config(&config)?;
        let plan = plan::plan(&config, &registry, Some(dir.path()))?;
        registry.sampler(&config.train.sampler)?;
        dir.save_config(&config)?;
        Ok(Run { dir, config, plan, registry })
    }

    /// Opens an existing run directory with its stored configuration.
    pub fn open(dir: RunDir, registry: Arc<Registry>) -> Result<Run> {
        let config = dir.read_config()?;
        let plan = plan::plan(&config, &registry, Some(dir.path()))?;
        Ok(Run { dir, config, plan, registry })
    }

    /// Writes `plan.json` (the split, with ground-truth statistics when a truth table is set)
    /// and returns it.
    pub fn write_plan(&self) -> Result<SplitReport> {
        let c = &self.config;
        let truth = c.rank.truth.as_deref().map(|p| (p, c.rank.truth_column.as_str()));
        let report = plan::split_report(&self.plan, c, truth)?;
        self.dir.write_json(PLAN_FILE, &report)?;
        Ok(report)
    }

    /// Number of supernets (= subspaces).
    pub fn supernets(&self) -> usize {
        self.plan.subspaces().len()
    }

    /// The supernet layout at the run's channel divisor.
    pub fn layout(&self) -> Result<Arc<SupernetLayout>> {
        let divisor = self.config.train.channel_divisor;
        let layout = SupernetLayout::new(self.plan.supernet_graph(), self.plan.slots(), divisor, self.config.train.norm)
            .map_err(|e| anyhow!("cannot build the supernets at channel divisor {divisor}: {e}"))?;
        Ok(Arc::new(layout))
    }

    /// Loads the data and applies the NB201 protocol (train / valid halves, test).
    pub fn splits(&self, layout: &SupernetLayout) -> Result<Splits> {
        load_splits(&self.config.data_config(), layout.input_dims(), layout.classes()).map_err(anyhow::Error::msg)
    }

    /// The run's ground-truth table, if one is set.
    pub fn truth_table(&self) -> Result<Option<TruthTable>> {
        self.config.rank.truth.as_deref().map(TruthTable::read).transpose()
    }

    /// The architecture's text form; an error names the space plugin and the option indices.
    pub fn text(&self, arch: &Arch) -> Result<String> {
        self.plan.format(arch).map_err(|e| anyhow!("{}: format {:?}: {e}", self.space_label(), arch.as_slice()))
    }

    /// Parses an architecture of the space; an error is prefixed `space `name` (origin): `, as
    /// for every message from plugin code.
    pub fn parse(&self, text: &str) -> Result<Arch> {
        self.plan.parse(text).map_err(|e| anyhow!("{}: {e}", self.space_label()))
    }

    /// How messages name the run's space plugin: `space `name` (origin)`.
    fn space_label(&self) -> String {
        let spec = self.config.space_spec();
        let name = spec_name(&spec);
        self.registry.find(PluginKind::Space, name).map_or_else(|| format!("space `{name}`"), |p| p.label())
    }
}
