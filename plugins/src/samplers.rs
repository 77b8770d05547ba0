//! Training samplers: which (subspace, architecture) pairs each step trains.

use fewshot_sdk::{register_builtin, ArchDraw, Params, Pick, PluginEntry, Sampler};

/// SPOS: one architecture drawn uniformly over the whole space per step, trained in the
/// supernet of its own subspace (large subspaces get proportionally more steps).
pub struct UniformSampler;

impl Sampler for UniformSampler {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        Ok(vec![draw.draw_any()?])
    }
}

fn uniform_entry() -> PluginEntry {
    PluginEntry::sampler(
        "uniform",
        "SPOS: one architecture uniform over the whole space per step, in its own supernet",
        "",
        |_: &Params| Ok(UniformSampler),
    )
}
register_builtin!(uniform_entry);
