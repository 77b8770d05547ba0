//! Training samplers: which (subspace, architecture) pairs each step trains.
//!
//! Every random choice goes through the host's [`ArchDraw`] handle, so runs are reproducible and
//! resumable. Subspaces without trainable architectures are skipped.

use fewshot_sdk::{register_builtin, Arch, ArchDraw, Params, Pick, PluginEntry, Sampler};

/// SPOS: one architecture drawn uniformly over the whole space per step, trained in the
/// supernet of its own subspace (large subspaces get proportionally more steps).
pub struct UniformSampler;

impl Sampler for UniformSampler {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        Ok(vec![draw.draw_any()?])
    }
}

/// The subspaces that have trainable architectures.
fn trainable_subspaces(draw: &dyn ArchDraw) -> Vec<u32> {
    (0..draw.subspaces()).filter(|&k| draw.subspace_size(k) > 0.0).collect()
}

fn no_trainable() -> String {
    "no subspace has a trainable architecture".to_string()
}

/// Supernet-balanced sampling (EFS-NAS): one architecture uniform within each subspace per step,
/// so every supernet trains on every step.
pub struct SbsSampler;

impl Sampler for SbsSampler {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        let subspaces = trainable_subspaces(draw);
        if subspaces.is_empty() {
            return Err(no_trainable());
        }
        subspaces
            .into_iter()
            .map(|subspace| Ok(Pick { subspace, arch: draw.draw(subspace)? }))
            .collect()
    }
}

/// One subspace chosen uniformly, then one architecture uniform within it (the authors' NB201
/// code): supernets get equal steps in expectation, one per step.
pub struct GroupUniformSampler;

impl Sampler for GroupUniformSampler {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        let subspaces = trainable_subspaces(draw);
        if subspaces.is_empty() {
            return Err(no_trainable());
        }
        let subspace = subspaces[draw.below(subspaces.len() as u64) as usize];
        Ok(vec![Pick { subspace, arch: draw.draw(subspace)? }])
    }
}

/// How many uniform architectures of the subspace the fair sampler considers when its
/// least-used combination falls outside the subspace, and how many it draws to learn which
/// options a subspace uses.
const FALLBACK_CANDIDATES: usize = 64;

/// Per-option usage of one slot inside one subspace; `None` for an option not yet seen in the
/// subspace (e.g. the fixed option of an `edge-op` subspace's slot excludes all others).
type SlotUsage = Vec<Option<u64>>;

/// FairNAS strict fairness inside each subspace.
///
/// Per step and subspace it trains a block of `m` architectures (`m` = the largest option
/// count). Per subspace and slot it keeps usage counters of the options seen in that subspace
/// (learnt from 64 uniform draws of the subspace at its first step, and from every draw after);
/// each architecture takes, for every slot, a uniformly chosen least-used seen option. If that
/// combination is not in the subspace, it draws up to 64 uniform architectures of the subspace
/// and keeps the one whose options have the lowest total usage. On product subspaces (the whole
/// space, `edge-op` subspaces, ...) this is exactly FairNAS: every option of every slot is
/// trained equally often; elsewhere it is as fair as the subspace allows.
#[derive(Debug, Default)]
pub struct FairSampler {
    /// `usage[subspace][slot][option]`; empty until the first step.
    usage: Vec<Vec<SlotUsage>>,
}

impl FairSampler {
    fn ensure_shape(&mut self, draw: &dyn ArchDraw) -> Result<(), String> {
        let options = draw.option_counts();
        let subspaces = draw.subspaces() as usize;
        if self.usage.is_empty() {
            self.usage = vec![options.iter().map(|&n| vec![None; n as usize]).collect(); subspaces];
            return Ok(());
        }
        let fits = self.usage.len() == subspaces
            && self.usage.iter().all(|slots| {
                slots.len() == options.len() && slots.iter().zip(&options).all(|(c, &n)| c.len() == n as usize)
            });
        if fits {
            Ok(())
        } else {
            Err(format!(
                "the fair sampler's saved counters are for {} subspaces of another shape; this plan has {subspaces} subspaces with option counts {options:?}",
                self.usage.len()
            ))
        }
    }

    /// Marks the options of `arch` as seen in subspace `k`.
    fn see(&mut self, k: usize, arch: &Arch) {
        for (slot, &o) in self.usage[k].iter_mut().zip(arch.as_slice()) {
            slot[o as usize].get_or_insert(0);
        }
    }

    /// Learns the options of a subspace not seen yet from uniform draws.
    fn learn(&mut self, subspace: u32, draw: &mut dyn ArchDraw) -> Result<(), String> {
        let k = subspace as usize;
        if self.usage[k].iter().all(|slot| slot.iter().any(Option::is_some)) {
            return Ok(());
        }
        for _ in 0..FALLBACK_CANDIDATES {
            let arch = draw.draw(subspace)?;
            self.see(k, &arch);
        }
        Ok(())
    }

    fn usage_of(&self, k: usize, arch: &Arch) -> u64 {
        arch.as_slice()
            .iter()
            .zip(&self.usage[k])
            .map(|(&o, slot)| slot[o as usize].unwrap_or(0))
            .sum()
    }

    fn least_used(&self, k: usize, draw: &mut dyn ArchDraw) -> Arch {
        let choices = self.usage[k]
            .iter()
            .map(|slot| {
                let min = slot.iter().flatten().copied().min().unwrap_or(0);
                let least: Vec<u32> = (0..slot.len() as u32).filter(|&o| slot[o as usize] == Some(min)).collect();
                least[draw.below(least.len() as u64) as usize]
            })
            .collect();
        Arch::new(choices)
    }

    fn next_arch(&mut self, subspace: u32, draw: &mut dyn ArchDraw) -> Result<Arch, String> {
        let k = subspace as usize;
        let candidate = self.least_used(k, draw);
        let arch = if draw.subspace_of(&candidate)? == Some(subspace) {
            candidate
        } else {
            let mut best = draw.draw(subspace)?;
            self.see(k, &best);
            let mut best_usage = self.usage_of(k, &best);
            for _ in 1..FALLBACK_CANDIDATES {
                let other = draw.draw(subspace)?;
                self.see(k, &other);
                let usage = self.usage_of(k, &other);
                if usage < best_usage {
                    best = other;
                    best_usage = usage;
                }
            }
            best
        };
        for (slot, &o) in self.usage[k].iter_mut().zip(arch.as_slice()) {
            *slot[o as usize].get_or_insert(0) += 1;
        }
        Ok(arch)
    }
}

/// Header of the fair sampler's saved state.
const FAIR_STATE_HEADER: &str = "fair-v1";

impl Sampler for FairSampler {
    fn step(&mut self, draw: &mut dyn ArchDraw) -> Result<Vec<Pick>, String> {
        self.ensure_shape(draw)?;
        let subspaces = trainable_subspaces(draw);
        if subspaces.is_empty() {
            return Err(no_trainable());
        }
        let block = draw.option_counts().into_iter().max().unwrap_or(1) as usize;
        let mut picks = Vec::with_capacity(block * subspaces.len());
        for &subspace in &subspaces {
            self.learn(subspace, draw)?;
            for _ in 0..block {
                picks.push(Pick { subspace, arch: self.next_arch(subspace, draw)? });
            }
        }
        Ok(picks)
    }

    /// `fair-v1` then one line per subspace: slots separated by `|`, the counters of a slot's
    /// options by `,` (`-` for an option not seen in the subspace).
    fn save_state(&self) -> String {
        let mut out = String::from(FAIR_STATE_HEADER);
        for slots in &self.usage {
            out.push('\n');
            let line: Vec<String> = slots
                .iter()
                .map(|slot| {
                    slot.iter()
                        .map(|c| c.map_or_else(|| "-".to_string(), |n| n.to_string()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            out.push_str(&line.join("|"));
        }
        out
    }

    fn load_state(&mut self, state: &str) -> Result<(), String> {
        if state.is_empty() {
            self.usage.clear();
            return Ok(());
        }
        let mut lines = state.lines();
        if lines.next() != Some(FAIR_STATE_HEADER) {
            return Err(format!("fair sampler state must start with `{FAIR_STATE_HEADER}`"));
        }
        let mut usage = Vec::new();
        for (i, line) in lines.enumerate() {
            let slots = line
                .split('|')
                .map(|slot| {
                    slot.split(',')
                        .map(|n| match n.trim() {
                            "-" => Ok(None),
                            n => n.parse::<u64>().map(Some),
                        })
                        .collect::<Result<SlotUsage, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("fair sampler state, subspace {i}: {e}"))?;
            usage.push(slots);
        }
        self.usage = usage;
        Ok(())
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

fn sbs_entry() -> PluginEntry {
    PluginEntry::sampler(
        "sbs",
        "EFS-NAS supernet-balanced sampling: one architecture uniform within each subspace per step",
        "",
        |_: &Params| Ok(SbsSampler),
    )
}
register_builtin!(sbs_entry);

fn group_uniform_entry() -> PluginEntry {
    PluginEntry::sampler(
        "group-uniform",
        "one subspace uniformly, then one architecture uniform within it (authors' NB201 code)",
        "",
        |_: &Params| Ok(GroupUniformSampler),
    )
}
register_builtin!(group_uniform_entry);

fn fair_entry() -> PluginEntry {
    PluginEntry::sampler(
        "fair",
        "FairNAS strict fairness inside each subspace: blocks where every option is used equally",
        "",
        |_: &Params| Ok(FairSampler::default()),
    )
}
register_builtin!(fair_entry);

#[cfg(test)]
mod tests {
    use super::*;

    /// A product space split by the first slot's option, with a seeded generator (test-only
    /// stand-in for the host's drawer; the real one lives in fewshot-core).
    struct ProductDraw {
        options: Vec<u32>,
        state: u64,
        /// Subspace 0 = first slot option 0, subspace 1 = the rest.
        split: bool,
    }

    impl ProductDraw {
        fn uniform(&mut self) -> Arch {
            let options = self.options.clone();
            Arch::new(options.iter().map(|&n| (self.next_u64() % n as u64) as u32).collect())
        }
        fn of(&self, arch: &Arch) -> u32 {
            if self.split && arch.as_slice()[0] != 0 { 1 } else { 0 }
        }
    }

    impl ArchDraw for ProductDraw {
        fn subspaces(&self) -> u32 {
            if self.split { 2 } else { 1 }
        }
        fn subspace_size(&self, subspace: u32) -> f64 {
            let rest: f64 = self.options[1..].iter().map(|&n| n as f64).product();
            match (self.split, subspace) {
                (false, _) => rest * self.options[0] as f64,
                (true, 0) => rest,
                (true, _) => rest * (self.options[0] - 1) as f64,
            }
        }
        fn option_counts(&self) -> Vec<u32> {
            self.options.clone()
        }
        fn draw(&mut self, subspace: u32) -> Result<Arch, String> {
            loop {
                let a = self.uniform();
                if self.of(&a) == subspace {
                    return Ok(a);
                }
            }
        }
        fn draw_any(&mut self) -> Result<Pick, String> {
            let arch = self.uniform();
            Ok(Pick { subspace: self.of(&arch), arch })
        }
        fn subspace_of(&self, arch: &Arch) -> Result<Option<u32>, String> {
            Ok(Some(self.of(arch)))
        }
        fn next_u64(&mut self) -> u64 {
            self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn fair_is_strictly_fair_on_a_product_subspace() {
        let mut draw = ProductDraw { options: vec![3, 5, 4, 5], state: 1, split: false };
        let mut fair = FairSampler::default();
        for _ in 0..4 {
            let picks = fair.step(&mut draw).unwrap();
            assert_eq!(picks.len(), 5);
            // Slots with the largest option count use every option exactly once per block.
            for slot in [1, 3] {
                let mut seen: Vec<u32> = picks.iter().map(|p| p.arch.as_slice()[slot]).collect();
                seen.sort_unstable();
                assert_eq!(seen, vec![0, 1, 2, 3, 4]);
            }
        }
        // After 20 architectures every slot's counters differ by at most one.
        for counts in &fair.usage[0] {
            let counts: Vec<u64> = counts.iter().map(|c| c.unwrap()).collect();
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{counts:?}");
        }
    }

    #[test]
    fn fair_is_strictly_fair_on_a_restricted_product_subspace() {
        // Subspace 1 = first slot in {1, 2}, the other slots free: still a product set.
        let mut draw = ProductDraw { options: vec![3, 4, 4], state: 2, split: true };
        let mut fair = FairSampler::default();
        for _ in 0..5 {
            let picks: Vec<Pick> = fair.step(&mut draw).unwrap().into_iter().filter(|p| p.subspace == 1).collect();
            assert_eq!(picks.len(), 4);
            for slot in [1, 2] {
                let mut seen: Vec<u32> = picks.iter().map(|p| p.arch.as_slice()[slot]).collect();
                seen.sort_unstable();
                assert_eq!(seen, vec![0, 1, 2, 3]);
            }
        }
        assert_eq!(fair.usage[1][0], vec![None, Some(10), Some(10)]);
    }

    #[test]
    fn fair_state_round_trips_and_stays_inside_subspaces() {
        let mut draw = ProductDraw { options: vec![3, 4, 4], state: 9, split: true };
        let mut fair = FairSampler::default();
        for _ in 0..3 {
            for pick in fair.step(&mut draw).unwrap() {
                assert_eq!(draw.of(&pick.arch), pick.subspace);
            }
        }
        let saved = fair.save_state();
        let mut restored = FairSampler::default();
        restored.load_state(&saved).unwrap();
        assert_eq!(restored.usage, fair.usage);
        let mut a = ProductDraw { options: vec![3, 4, 4], state: 5, split: true };
        let mut b = ProductDraw { options: vec![3, 4, 4], state: 5, split: true };
        assert_eq!(fair.step(&mut a).unwrap(), restored.step(&mut b).unwrap());

        let mut other = ProductDraw { options: vec![2, 2], state: 1, split: false };
        assert!(restored.step(&mut other).unwrap_err().contains("another shape"));
        assert!(FairSampler::default().load_state("nonsense").is_err());
        assert!(FairSampler::default().load_state("fair-v1\n1,x").is_err());
    }

    #[test]
    fn sbs_and_group_uniform_cover_subspaces() {
        let mut draw = ProductDraw { options: vec![3, 4], state: 3, split: true };
        let picks = SbsSampler.step(&mut draw).unwrap();
        assert_eq!(picks.iter().map(|p| p.subspace).collect::<Vec<_>>(), vec![0, 1]);
        let mut hits = [0u32; 2];
        for _ in 0..2000 {
            let p = GroupUniformSampler.step(&mut draw).unwrap();
            assert_eq!(p.len(), 1);
            assert_eq!(draw.of(&p[0].arch), p[0].subspace);
            hits[p[0].subspace as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (900..1100).contains(&h)), "{hits:?}");
    }
}
