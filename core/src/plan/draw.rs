//! Uniform draws of architectures within the plan's subspaces, for sampler plugins.

use fewshot_sdk::abi_stable::sabi_trait::TD_Opaque;
use fewshot_sdk::ffi::{DrawForPlugin, FfiArchDraw_TO, SamplerBox};
use fewshot_sdk::{Arch, ArchDraw, Pick};

use super::{ffi, Index, Plan, PlanError, INVALID, MAX_REJECTION_TRIES};
use crate::space::series::{below_u128, SeriesCounter};
use crate::util::rng::Rng;

/// Draws architectures of a [`Plan`] for samplers: implements [`ArchDraw`] with a seeded,
/// checkpointable generator.
pub struct PlanDrawer<'a> {
    plan: &'a Plan,
    rng: Rng,
}

impl<'a> PlanDrawer<'a> {
    /// A drawer over `plan` with generator `rng`.
    pub(super) fn new(plan: &'a Plan, rng: Rng) -> Self {
        PlanDrawer { plan, rng }
    }
}

impl PlanDrawer<'_> {
    /// The generator, for checkpoints.
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Draws the picks of one training step: runs a sampler plugin's step through this drawer and
    /// checks that every pick names a subspace of the plan and an architecture that belongs to it.
    pub fn draw_step(&mut self, sampler: &mut SamplerBox) -> Result<Vec<Pick>, PlanError> {
        let picks = {
            let mut host = DrawForPlugin(self);
            ffi(sampler.step(FfiArchDraw_TO::from_ptr(&mut host, TD_Opaque)))?.into_vec()
        };
        for pick in &picks {
            let actual = self.drawable_subspace_of(&pick.arch)?;
            if actual != Some(pick.subspace) {
                let arch = self.plan.format(&pick.arch)?;
                return Err(match actual {
                    Some(actual) => PlanError::WrongSubspace { arch, picked: pick.subspace, actual },
                    None => PlanError::PickedTrash(arch),
                });
            }
        }
        Ok(picks)
    }

    fn rejection(&mut self, subspace: Option<u32>) -> Result<Pick, PlanError> {
        let plan = self.plan;
        for _ in 0..MAX_REJECTION_TRIES {
            let arch = Arch::new(plan.radices.iter().map(|&r| self.rng.below(u64::from(r)) as u32).collect());
            if plan.rejection(&arch).is_some() || !plan.drawable(plan.is_trash(arch.as_slice())) {
                continue;
            }
            let count = plan.count(arch.as_slice())?;
            let k = plan.assign(&arch, count, plan.costs.cost(arch.as_slice()))?;
            if subspace.is_none_or(|want| want == k) {
                return Ok(Pick { subspace: k, arch });
            }
        }
        Err(match subspace {
            Some(k) => PlanError::NoneDrawnIn { subspace: k, label: plan.subspaces[k as usize].label.clone() },
            None => PlanError::NoneDrawn,
        })
    }

    /// A uniformly drawn valid architecture with `count`: drawn among all with that count, again
    /// while the space rejects it (the plan's weights leave rejected ones out, so one exists).
    fn valid_with_count(&mut self, counter: &SeriesCounter, count: u32) -> Result<Arch, PlanError> {
        for _ in 0..MAX_REJECTION_TRIES {
            let arch = Arch::new(counter.sample(count, &mut self.rng));
            if self.plan.rejection(&arch).is_none() {
                return Ok(arch);
            }
        }
        Err(PlanError::NoneWithCount(count))
    }

    /// Picks an index with probability proportional to its weight.
    fn weighted<T: Copy>(&mut self, items: impl Iterator<Item = (T, u128)> + Clone) -> Option<T> {
        let total: u128 = items.clone().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut at = below_u128(&mut self.rng, total);
        for (item, w) in items {
            if at < w {
                return Some(item);
            }
            at -= w;
        }
        None
    }

    fn empty(&self, subspace: u32) -> PlanError {
        PlanError::EmptySubspace { subspace, label: self.plan.subspaces[subspace as usize].label.clone() }
    }

    /// [`ArchDraw::draw`] with a typed error.
    fn draw_from(&mut self, subspace: u32) -> Result<Arch, PlanError> {
        let plan = self.plan;
        if subspace as usize >= plan.subspaces.len() {
            return Err(PlanError::NoSuchSubspace { subspace, planned: plan.subspaces.len() });
        }
        match &plan.index {
            Index::Enumerated { pools, .. } => {
                let pool = &pools[subspace as usize];
                if pool.is_empty() {
                    return Err(self.empty(subspace));
                }
                let i = pool[self.rng.below(pool.len() as u64) as usize];
                Ok(plan.decode(i as usize))
            }
            Index::Series { counter, weights, .. } => {
                let count = self
                    .weighted(weights[subspace as usize].iter().copied())
                    .ok_or_else(|| self.empty(subspace))?;
                self.valid_with_count(counter, count)
            }
            Index::Rejection => self.rejection(Some(subspace)).map(|p| p.arch),
        }
    }

    /// [`ArchDraw::draw_any`] with a typed error.
    fn draw_from_any(&mut self) -> Result<Pick, PlanError> {
        let plan = self.plan;
        match &plan.index {
            Index::Enumerated { pools, .. } => {
                let subspace = self
                    .weighted(pools.iter().enumerate().map(|(k, p)| (k as u32, p.len() as u128)))
                    .ok_or(PlanError::NothingTrainable)?;
                Ok(Pick { subspace, arch: self.draw_from(subspace)? })
            }
            Index::Series { counter, subspace_of_count, weights } => {
                let count = self
                    .weighted(weights.iter().flatten().copied())
                    .ok_or(PlanError::NothingTrainable)?;
                Ok(Pick { subspace: subspace_of_count[&count], arch: self.valid_with_count(counter, count)? })
            }
            Index::Rejection => self.rejection(None),
        }
    }

    /// [`ArchDraw::subspace_of`] with a typed error.
    fn drawable_subspace_of(&self, arch: &Arch) -> Result<Option<u32>, PlanError> {
        let plan = self.plan;
        arch.check_against(&plan.slots).map_err(PlanError::InvalidArch)?;
        match &plan.index {
            Index::Enumerated { entries, .. } => {
                let e = entries[plan.encode(arch.as_slice())];
                if e.subspace == INVALID {
                    return Err(plan.rejection(arch).map_or(PlanError::NotInSpace, PlanError::Plugin));
                }
                Ok(plan.drawable(e.trash).then_some(e.subspace))
            }
            Index::Series { counter, subspace_of_count, .. } => {
                ffi(plan.space.validate(arch))?;
                Ok(subspace_of_count.get(&counter.count(arch.as_slice())).copied())
            }
            Index::Rejection => {
                let info = plan.info(arch)?;
                Ok(plan.drawable(info.trash).then_some(info.subspace))
            }
        }
    }
}

impl ArchDraw for PlanDrawer<'_> {
    fn subspaces(&self) -> u32 {
        self.plan.subspaces.len() as u32
    }

    fn subspace_size(&self, subspace: u32) -> f64 {
        self.plan.subspaces.get(subspace as usize).map_or(0.0, |s| s.trainable as f64)
    }

    fn option_counts(&self) -> Vec<u32> {
        self.plan.radices.clone()
    }

    fn draw(&mut self, subspace: u32) -> Result<Arch, String> {
        self.draw_from(subspace).map_err(|e| e.to_string())
    }

    fn draw_any(&mut self) -> Result<Pick, String> {
        self.draw_from_any().map_err(|e| e.to_string())
    }

    fn subspace_of(&self, arch: &Arch) -> Result<Option<u32>, String> {
        self.drawable_subspace_of(arch).map_err(|e| e.to_string())
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
