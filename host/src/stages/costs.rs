//! Exact FLOPs and parameters of architectures, from a space's graph IR at a channel divisor:
//! of one architecture, or of every one the space accepts.

use anyhow::{anyhow, bail, Error, Result};
use fewshot_core::space::{
    cost::CostModel,
    odometer::{product_size, Odometer},
};
use fewshot_sdk::{ffi::from_ffi, Arch};
use serde::Serialize;

use crate::plugin_host::{conformance::checked_space, registry::Registry};

/// [`costs`] of every architecture refuses spaces with more architectures than this.
pub const ALL_LIMIT: u128 = 10_000_000;

/// The costs of one architecture.
#[derive(Serialize, Clone, Debug)]
pub struct CostRow {
    /// Its text form.
    pub arch: String,
    /// FLOPs in millions.
    pub flops_m: f64,
    /// Parameters in millions.
    pub params_mb: f64,
}

/// The costs of architecture `arch` (text form) of space `spec`, or with `None` of every
/// architecture the space accepts, with every scalable width divided by `divisor`.
pub fn costs(registry: &Registry, spec: &str, arch: Option<&str>, divisor: f64) -> Result<Vec<CostRow>> {
    let space = checked_space(registry, spec, divisor)?;
    let slots = from_ffi(space.slots()).map_err(Error::msg)?.into_vec();
    let graph = from_ffi(space.supernet_graph()).map_err(Error::msg)?;
    graph.validate(&slots).map_err(|e| anyhow!("the space's supernet graph is invalid: {e}"))?;
    let model = CostModel::new(&graph, divisor).map_err(|e| anyhow!("{e}"))?;
    let mut rows = Vec::new();
    let mut row = |arch: &Arch| -> Result<()> {
        let cost = model.cost(arch.as_slice());
        let text = from_ffi(space.format(arch)).map_err(Error::msg)?.into_string();
        rows.push(CostRow { arch: text, flops_m: cost.flops_m(), params_mb: cost.params_m() });
        Ok(())
    };
    if let Some(text) = arch {
        let arch = from_ffi(space.parse(text.into())).map_err(Error::msg)?;
        arch.check_against(&slots).map_err(|e| anyhow!("{text}: {e}"))?;
        from_ffi(space.validate(&arch)).map_err(|e| anyhow!("{text} is not in the space: {e}"))?;
        row(&arch)?;
    } else {
        let radices: Vec<u32> = slots.iter().map(|s| s.options.len() as u32).collect();
        let total = product_size(&radices).unwrap_or(u128::MAX);
        if total > ALL_LIMIT {
            bail!("the space has {total} architectures; --all lists at most {ALL_LIMIT} (use --arch)");
        }
        let mut odometer = Odometer::new(&radices);
        let mut arch = Arch::new(vec![0; radices.len()]);
        while let Some(choices) = odometer.advance() {
            arch.choices.copy_from_slice(choices);
            if from_ffi(space.validate(&arch)).is_ok() {
                row(&arch)?;
            }
        }
    }
    Ok(rows)
}
