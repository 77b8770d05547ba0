//! Options shared by every command that plans a split (split, and later train, search, run):
//! which search space, counting rule and splitter, with `--groups`, `--activation` and `--seed`.

use anyhow::{anyhow, Result};
use clap::Args;
use fewshot_core::plan::{Plan, PlanOptions};
use fewshot_sdk::ffi::SpaceBox;

use crate::{conformance::checked_space, registry::Registry};

/// Adds `key=value` to a plugin spec `name` or `name:params`.
pub fn with_param(spec: &str, key: &str, value: &str) -> String {
    if spec.contains(':') {
        format!("{spec},{key}={value}")
    } else {
        format!("{spec}:{key}={value}")
    }
}

/// The search space to use.
#[derive(Args, Debug, Clone)]
pub struct SpaceArgs {
    /// Search space: `name` or `name:key=value,...` (e.g. `nb201:C=8`, `mobilenet`).
    #[arg(long, default_value = "nb201")]
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

    /// Constructs the space and runs the checks that protect a run on it, with its supernet
    /// at channel divisor `divisor` (and 1 and 2).
    pub fn build(&self, registry: &Registry, divisor: f64) -> Result<SpaceBox> {
        checked_space(registry, &self.spec(), divisor)
    }
}

/// Space, counting rule and splitter: everything that decides the partition.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    #[command(flatten)]
    pub space: SpaceArgs,
    /// Counting rule: `enn` (EFS-NAS), `total`, `live`, or `name:key=value,...`
    /// (e.g. `enn:kinds=relu,relu6`).
    #[arg(long, default_value = "enn")]
    pub rule: String,
    /// Splitter: `nonlin` (EFS-NAS), `none` (SPOS), `edge-op` (FS-NAS), `flops`, `params`,
    /// `random`, or `name:key=value,...` (e.g. `flops:k=4`, `edge-op:slot=2`).
    #[arg(long, default_value = "nonlin")]
    pub splitter: String,
    /// Count groups of the `nonlin` splitter, e.g. `0-1,2,3` or `34,36,38,40,42,rest`
    /// (default: the space's own grouping), passed to the splitter as `groups=...`.
    #[arg(long, value_name = "LIST")]
    pub groups: Option<String>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also draw trash architectures (no live input-to-output path) for training.
    #[arg(long)]
    pub include_trash: bool,
}

impl PipelineArgs {
    /// The splitter's plugin spec with `--groups` folded in.
    pub fn splitter_spec(&self) -> String {
        match &self.groups {
            Some(g) => with_param(&self.splitter, "groups", g),
            None => self.splitter.clone(),
        }
    }

    /// Constructs the plugins and plans the split.
    pub fn plan(&self, registry: &Registry) -> Result<Plan> {
        let space = self.space.build(registry, 1.0)?;
        let rule = registry.rule(&self.rule)?;
        let splitter = registry.splitter(&self.splitter_spec()).map_err(|e| match &self.groups {
            Some(_) => anyhow!("{e:#} (--groups is passed to the splitter as `groups=...`; `nonlin` takes it)"),
            None => e,
        })?;
        let opts = PlanOptions { seed: self.seed, include_trash: self.include_trash, method: None };
        Plan::build(space, rule, splitter, opts).map_err(|e| anyhow!("cannot plan the split: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_appended_to_specs() {
        assert_eq!(with_param("nb201", "activation", "tanh"), "nb201:activation=tanh");
        assert_eq!(with_param("nb201:C=8", "activation", "tanh"), "nb201:C=8,activation=tanh");
    }
}
