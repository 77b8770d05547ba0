//! Options of the commands that plan a split without a configuration file (`split`, and the
//! space alone for `costs`): which search space, counting rule and splitter, with `--groups`,
//! `--activation` and `--seed`. Their defaults are the configuration's.

use clap::Args;

use crate::{
    config::{defaults, RunConfig},
    plugin_host::registry::with_param,
};

/// The search space to use.
#[derive(Args, Debug, Clone)]
pub struct SpaceArgs {
    /// Search space: `name` or `name:key=value,...` (e.g. `nb201:C=8`, `mobilenet`).
    #[arg(long, default_value = defaults::SPACE)]
    pub space: String,
    /// Activation of the space's nonlinear functions (relu, relu6, tanh, gelu, sigmoid, silu),
    /// passed to the space as `activation=...`.
    #[arg(long, value_name = "KIND")]
    pub activation: Option<String>,
}

impl SpaceArgs {
    /// The space's plugin spec with `--activation` folded in.
    pub fn spec(&self) -> String {
        match &self.activation {
            Some(a) => with_param(&self.space, "activation", a),
            None => self.space.clone(),
        }
    }
}

/// Space, counting rule and splitter: everything that decides the partition.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Counting rule: `enn` (EFS-NAS), `total`, `live`, or `name:key=value,...`
    /// (e.g. `enn:kinds=relu,relu6`).
    #[arg(long, default_value = defaults::RULE)]
    pub rule: String,
    /// Splitter: `nonlin` (EFS-NAS), `none` (SPOS), `edge-op` (FS-NAS), `flops`, `params`,
    /// `random`, `proxy` (quantiles of a zero-cost score), or `name:key=value,...` (e.g.
    /// `flops:k=4`, `edge-op:slot=2`, `proxy:score=naswot,k=3`).
    #[arg(long, default_value = defaults::SPLITTER)]
    pub splitter: String,
    /// Count groups of the `nonlin` splitter, e.g. `0-1,2,3` or `34,36,38,40,42,rest`
    /// (default: the space's own grouping), passed to the splitter as `groups=...`.
    #[arg(long, value_name = "LIST")]
    pub groups: Option<String>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,
    /// Also draw trash architectures (no live input-to-output path) for training.
    #[arg(long)]
    pub include_trash: bool,
}

impl PlanArgs {
    /// The configuration these options describe (every other key at its default), which plans
    /// the split as a run with the same settings would.
    pub fn config(&self) -> RunConfig {
        let mut c = RunConfig::for_space(&self.space.space);
        c.space.activation.clone_from(&self.space.activation);
        c.split.rule.clone_from(&self.rule);
        c.split.splitter.clone_from(&self.splitter);
        c.split.groups.clone_from(&self.groups);
        c.split.include_trash = self.include_trash;
        c.seed = self.seed;
        c
    }
}
