//! Sizing the subspaces: enumeration, dynamic programming over slots in series, estimation
//! from a uniform sample, and the measurements (count, cost, trash) behind them.

use std::collections::BTreeMap;

use fewshot_sdk::{Arch, PlanContext, SplitKey, ValueWeight};

use super::{ffi, Entry, Index, Method, Plan, PlanError, PlanOptions, SubspacePlan, ESTIMATE_SAMPLE, INVALID, MAX_SERIES_REJECTS,
    SERIES_VALIDATION_LIMIT, VERIFY_SAMPLE};
use crate::space::cost::Cost;
use crate::space::odometer::next_arch;
use crate::space::series::SeriesCounter;
use crate::util::rng::Rng;

/// Running totals of one subspace while planning: architectures (and trash ones among them), and
/// the ranges of count, FLOPs and parameters.
#[derive(Clone, Debug, Default)]
struct SubspaceTotals {
    size: u128,
    trash: u128,
    count: Option<(u32, u32)>,
    flops: Option<(u64, u64)>,
    params: Option<(u64, u64)>,
}

fn widen<T: Ord + Copy>(range: &mut Option<(T, T)>, lo: T, hi: T) {
    *range = Some(match *range {
        Some((a, b)) => (a.min(lo), b.max(hi)),
        None => (lo, hi),
    });
}

impl SubspaceTotals {
    fn add(&mut self, count: u32, cost: Cost, trash: bool, weight: u128) {
        self.size += weight;
        if trash {
            self.trash += weight;
        }
        widen(&mut self.count, count, count);
        widen(&mut self.flops, cost.flops, cost.flops);
        widen(&mut self.params, cost.params, cost.params);
    }
}

/// Count, cost and trash flag of an enumerated architecture; `None` when the space rejects it.
type Measurement = Option<(u32, Cost, bool)>;

/// Why dynamic programming does not apply to a space (the plan then estimates its sizes, unless
/// the method was asked for).
pub(super) struct Inapplicable(pub(super) String);

impl From<PlanError> for Inapplicable {
    fn from(e: PlanError) -> Self {
        Inapplicable(e.to_string())
    }
}

/// Measurements of a range of architectures and the space's first rejection message.
type Measurements = (Vec<Measurement>, Option<String>);

/// Enumeration gives each thread at least this many architectures.
const MIN_CHUNK: usize = 4096;

/// What planning computed before the splitter saw the space.
struct Measured {
    distribution: Vec<ValueWeight>,
    exact: bool,
}

impl Plan {
    /// Hands the distribution to the splitter and records its subspaces (sizes still empty).
    fn prepare(&mut self, measured: Measured, seed: u64) -> Result<(), PlanError> {
        let ctx = PlanContext {
            slots: self.slots.clone().into(),
            default_groups: ffi(self.space.default_groups())?,
            distribution: measured.distribution.into(),
            exact: measured.exact,
            seed,
        };
        let labels = ffi(self.splitter.prepare(&ctx))?;
        if labels.is_empty() {
            return Err(PlanError::NoSubspaces);
        }
        self.subspaces = labels
            .iter()
            .enumerate()
            .map(|(id, l)| SubspacePlan {
                id: id as u32,
                label: l.label.to_string(),
                size: 0,
                trainable: 0,
                count_range: (0, 0),
                flops_m_range: (0.0, 0.0),
                params_m_range: (0.0, 0.0),
            })
            .collect();
        Ok(())
    }

    /// Fills sizes and ranges from per-subspace totals.
    fn finish(&mut self, totals: &[SubspaceTotals]) {
        for (sub, t) in self.subspaces.iter_mut().zip(totals) {
            sub.size = t.size;
            sub.trainable = if self.include_trash { t.size } else { t.size - t.trash };
            sub.count_range = t.count.unwrap_or((0, 0));
            let m = |r: Option<(u64, u64)>| r.map_or((0.0, 0.0), |(a, b)| (a as f64 / 1e6, b as f64 / 1e6));
            sub.flops_m_range = m(t.flops);
            sub.params_m_range = m(t.params);
        }
        self.trash = totals.iter().map(|t| t.trash).sum();
    }

    /// The distribution of the splitter's key over weighted (count, cost) observations.
    fn distribution(&self, observed: impl Iterator<Item = (u32, Cost, f64)>) -> Vec<ValueWeight> {
        let mut by_value: BTreeMap<u64, f64> = BTreeMap::new();
        let key = self.key;
        for (count, cost, weight) in observed {
            let value = match key {
                SplitKey::Count => u64::from(count),
                SplitKey::Flops => cost.flops,
                SplitKey::Params => cost.params,
                _ => return Vec::new(),
            };
            *by_value.entry(value).or_default() += weight;
        }
        let scale = if key == SplitKey::Count { 1.0 } else { 1e6 };
        by_value.into_iter().map(|(v, weight)| ValueWeight { value: v as f64 / scale, weight }).collect()
    }

    /// Validates, counts, costs and checks every architecture in `start..end` (odometer order).
    fn measure_range(&self, start: usize, end: usize) -> Result<Measurements, PlanError> {
        let mut arch = self.decode(start);
        let mut out = Vec::with_capacity(end - start);
        let mut first_rejection = None;
        for _ in start..end {
            let choices = arch.as_slice();
            out.push(match self.rejection(&arch) {
                None => Some((self.count(choices)?, self.costs.cost(choices), self.is_trash(choices))),
                Some(e) => {
                    first_rejection.get_or_insert(e);
                    None
                }
            });
            next_arch(&self.radices, &mut arch.choices);
        }
        Ok((out, first_rejection))
    }

    /// [`Plan::measure_range`] over the whole space, split across the machine's cores.
    fn measure_all(&self) -> Result<Measurements, PlanError> {
        let total = self.total as usize;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(total.div_ceil(MIN_CHUNK)).max(1);
        let chunk = total.div_ceil(threads);
        let parts: Vec<Result<Measurements, PlanError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || self.measure_range(t * chunk, ((t + 1) * chunk).min(total))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(PlanError::ThreadCrashed)))
                .collect()
        });
        let mut all = Vec::with_capacity(total);
        let mut first_rejection = None;
        for part in parts {
            let (measured, rejection) = part?;
            all.extend(measured);
            first_rejection = first_rejection.or(rejection);
        }
        Ok((all, first_rejection))
    }

    pub(super) fn enumerate(&mut self, opts: PlanOptions) -> Result<(), PlanError> {
        let (measured, first_rejection) = self.measure_all()?;
        let valid = measured.iter().flatten().count();
        if valid == 0 {
            return Err(PlanError::RejectsAll(first_rejection.unwrap_or_default()));
        }
        let distribution = self.distribution(measured.iter().flatten().map(|&(count, cost, _)| (count, cost, 1.0)));
        self.prepare(Measured { distribution, exact: true }, opts.seed)?;

        let mut totals = vec![SubspaceTotals::default(); self.subspaces.len()];
        let mut pools: Vec<Vec<u32>> = vec![Vec::new(); self.subspaces.len()];
        let mut entries: Vec<Entry> = Vec::with_capacity(measured.len());
        let mut arch = Arch::new(vec![0; self.radices.len()]);
        for (i, m) in measured.into_iter().enumerate() {
            let entry = match m {
                None => Entry { subspace: INVALID, trash: false },
                Some((count, cost, trash)) => {
                    let k = self.assign(&arch, count, cost)?;
                    totals[k as usize].add(count, cost, trash, 1);
                    if self.include_trash || !trash {
                        pools[k as usize].push(i as u32);
                    }
                    Entry { subspace: k, trash }
                }
            };
            entries.push(entry);
            next_arch(&self.radices, &mut arch.choices);
        }
        self.total = valid as u128;
        self.method = Method::Enumeration;
        self.finish(&totals);
        self.index = Index::Enumerated { entries, pools };
        Ok(())
    }

    /// Plans by dynamic programming. `Ok(Err(why))` when the method does not apply here (an
    /// option cuts the chain, or the space rejects some architectures); `Err` when the rule
    /// claims additivity but is not additive, or the splitter does not split by the count alone.
    pub(super) fn series(&mut self, opts: PlanOptions) -> Result<Result<(), Inapplicable>, PlanError> {
        let n = self.radices.len();
        let mut arch = Arch::new(vec![0; n]);
        let usable = |plan: &Plan, arch: &Arch| -> Result<(), Inapplicable> {
            if let Some(e) = plan.rejection(arch) {
                return Err(Inapplicable(format!("the space rejects {}: {e}", plan.format(arch).unwrap_or_default())));
            }
            if plan.is_trash(arch.as_slice()) {
                return Err(Inapplicable(format!("{} has no live path", plan.format(arch)?)));
            }
            Ok(())
        };
        if let Err(why) = usable(self, &arch) {
            return Ok(Err(why));
        }
        let reference = self.count(arch.as_slice())?;
        let mut deltas: Vec<Vec<i64>> = Vec::with_capacity(n);
        for s in 0..n {
            let mut row = vec![0i64; self.radices[s] as usize];
            for o in 1..self.radices[s] {
                arch.choices[s] = o;
                if let Err(why) = usable(self, &arch) {
                    return Ok(Err(why));
                }
                row[o as usize] = i64::from(self.count(arch.as_slice())?) - i64::from(reference);
            }
            arch.choices[s] = 0;
            deltas.push(row);
        }
        let counter = match SeriesCounter::new(reference, &deltas) {
            Ok(c) => c,
            Err(why) => return Ok(Err(Inapplicable(why.to_string()))),
        };

        let mut rng = Rng::stream(opts.seed, "plan-verify");
        let mut checks: Vec<(Arch, u32)> = Vec::with_capacity(VERIFY_SAMPLE);
        for _ in 0..VERIFY_SAMPLE {
            let a = Arch::new(self.radices.iter().map(|&r| rng.below(u64::from(r)) as u32).collect());
            if let Err(why) = usable(self, &a) {
                return Ok(Err(why));
            }
            let count = self.count(a.as_slice())?;
            let predicted = counter.count(a.as_slice());
            if count != predicted {
                return Err(PlanError::NotAdditive { arch: self.format(&a)?, count, predicted });
            }
            checks.push((a, count));
        }

        let valid = if self.total <= SERIES_VALIDATION_LIMIT {
            let rejected = match self.rejected()? {
                Ok(rejected) => rejected,
                Err(why) => return Ok(Err(why)),
            };
            valid_distribution(&counter, &rejected)
        } else {
            self.assumption = Some(format!(
                "every architecture is valid (validate accepted all {VERIFY_SAMPLE} sampled; the space's {} architectures are too many to validate each)",
                self.total
            ));
            counter.distribution()
        };
        self.total = valid.iter().map(|&(_, w)| w).sum();
        let distribution = valid.iter().map(|&(c, w)| ValueWeight { value: f64::from(c), weight: w as f64 }).collect();
        self.prepare(Measured { distribution, exact: true }, opts.seed)?;

        let mut subspace_of_count: BTreeMap<u32, u32> = BTreeMap::new();
        for &(count, _) in &valid {
            let first = Arch::new(counter.first(count));
            let k = self.assign(&first, count, self.costs.cost(first.as_slice()))?;
            subspace_of_count.insert(count, k);
        }
        for (a, count) in &checks {
            let k = self.assign(a, *count, self.costs.cost(a.as_slice()))?;
            if k != subspace_of_count[count] {
                return Err(PlanError::NotByCount {
                    arch: self.format(a)?,
                    count: *count,
                    subspace: k,
                    other: self.format(&Arch::new(counter.first(*count)))?,
                    other_subspace: subspace_of_count[count],
                });
            }
        }

        let mut totals = vec![SubspaceTotals::default(); self.subspaces.len()];
        let mut weights: Vec<Vec<(u32, u128)>> = vec![Vec::new(); self.subspaces.len()];
        let cost_ranges = self.costs.per_slot().map(|(fixed, _)| {
            let table = |f: fn(Cost) -> u64| -> Vec<Vec<u64>> {
                (0..n)
                    .map(|s| (0..self.radices[s]).map(|o| f(self.costs.option_cost(s, o))).collect())
                    .collect()
            };
            (fixed, counter.extremes(&table(|c| c.flops)), counter.extremes(&table(|c| c.params)))
        });
        for &(count, ways) in &valid {
            let k = subspace_of_count[&count] as usize;
            let t = &mut totals[k];
            t.size += ways;
            widen(&mut t.count, count, count);
            weights[k].push((count, ways));
            if let Some((fixed, flops, params)) = &cost_ranges {
                let r = (count - counter.base()) as usize;
                if let (Some((f0, f1)), Some((p0, p1))) = (flops[r], params[r]) {
                    widen(&mut t.flops, fixed.flops + f0, fixed.flops + f1);
                    widen(&mut t.params, fixed.params + p0, fixed.params + p1);
                }
            }
        }
        if cost_ranges.is_none() {
            // Costs that couple slots: ranges from the verification sample (approximate).
            for (a, count) in &checks {
                let k = subspace_of_count[count] as usize;
                let c = self.costs.cost(a.as_slice());
                widen(&mut totals[k].flops, c.flops, c.flops);
                widen(&mut totals[k].params, c.params, c.params);
            }
        }
        self.method = Method::DynamicProgramming;
        self.finish(&totals);
        self.index = Index::Series { counter, subspace_of_count, weights };
        Ok(Ok(()))
    }

    /// Every architecture of a series space that `validate` rejects, validated across the
    /// machine's cores. `Ok(Err(why))` when dynamic programming does not apply: a valid
    /// architecture has no live path, or more than [`MAX_SERIES_REJECTS`] are rejected.
    fn rejected(&self) -> Result<Result<Vec<Vec<u32>>, Inapplicable>, PlanError> {
        let total = self.total as usize;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(total.div_ceil(MIN_CHUNK)).max(1);
        let chunk = total.div_ceil(threads);
        let parts: Vec<Result<Vec<Vec<u32>>, Inapplicable>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| scope.spawn(move || self.rejected_in(t * chunk, ((t + 1) * chunk).min(total))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(PlanError::ThreadCrashed.into())))
                .collect()
        });
        let mut rejected = Vec::new();
        for part in parts {
            match part {
                Ok(part) => rejected.extend(part),
                Err(why) => return Ok(Err(why)),
            }
            if rejected.len() > MAX_SERIES_REJECTS {
                return Ok(Err(Inapplicable(format!("the space rejects more than {MAX_SERIES_REJECTS} architectures"))));
            }
        }
        Ok(Ok(rejected))
    }

    /// The architectures in `start..end` (odometer order) that `validate` rejects; `Err` for a
    /// valid one without a live path, or more than [`MAX_SERIES_REJECTS`] rejects.
    fn rejected_in(&self, start: usize, end: usize) -> Result<Vec<Vec<u32>>, Inapplicable> {
        let mut arch = self.decode(start);
        let mut rejected = Vec::new();
        for _ in start..end {
            if self.rejection(&arch).is_some() {
                rejected.push(arch.choices.to_vec());
                if rejected.len() > MAX_SERIES_REJECTS {
                    return Err(Inapplicable(format!("the space rejects more than {MAX_SERIES_REJECTS} architectures")));
                }
            } else if self.is_trash(arch.as_slice()) {
                return Err(Inapplicable(format!("{} has no live path", self.format(&arch)?)));
            }
            next_arch(&self.radices, &mut arch.choices);
        }
        Ok(rejected)
    }

    pub(super) fn estimate(&mut self, opts: PlanOptions) -> Result<(), PlanError> {
        let n = self.radices.len();
        let draws = opts.estimate_sample.unwrap_or(ESTIMATE_SAMPLE).max(1);
        let mut rng = Rng::stream(opts.seed, "plan-sample");
        let mut sample: Vec<(Arch, u32, Cost, bool)> = Vec::new();
        let mut first_rejection: Option<String> = None;
        for _ in 0..draws {
            let arch = Arch::new((0..n).map(|s| rng.below(u64::from(self.radices[s])) as u32).collect());
            if let Some(e) = self.rejection(&arch) {
                first_rejection.get_or_insert(e);
                continue;
            }
            let count = self.count(arch.as_slice())?;
            let cost = self.costs.cost(arch.as_slice());
            let trash = self.is_trash(arch.as_slice());
            sample.push((arch, count, cost, trash));
        }
        if sample.is_empty() {
            return Err(PlanError::RejectsSample(draws, first_rejection.unwrap_or_default()));
        }
        let scale = self.total as f64 / draws as f64;
        let distribution = self.distribution(sample.iter().map(|(_, count, cost, _)| (*count, *cost, scale)));
        self.prepare(Measured { distribution, exact: false }, opts.seed)?;
        let mut totals = vec![SubspaceTotals::default(); self.subspaces.len()];
        for (arch, count, cost, trash) in &sample {
            let k = self.assign(arch, *count, *cost)?;
            totals[k as usize].add(*count, *cost, *trash, 1);
        }
        let estimate = |n: u128| (n as f64 * scale).round() as u128;
        for t in &mut totals {
            t.size = estimate(t.size);
            t.trash = estimate(t.trash);
        }
        self.total = estimate(sample.len() as u128);
        self.method = Method::Estimate;
        self.finish(&totals);
        self.index = Index::Rejection;
        self.sample = sample.into_iter().map(|(arch, ..)| arch).collect();
        Ok(())
    }
}

/// The count distribution of a series space without the `rejected` architectures: `(count,
/// number of valid architectures)`, ascending, counts without any left out.
fn valid_distribution(counter: &SeriesCounter, rejected: &[Vec<u32>]) -> Vec<(u32, u128)> {
    let mut rejected_per_count: BTreeMap<u32, u128> = BTreeMap::new();
    for arch in rejected {
        *rejected_per_count.entry(counter.count(arch)).or_default() += 1;
    }
    counter
        .distribution()
        .into_iter()
        .map(|(count, ways)| (count, ways - rejected_per_count.get(&count).copied().unwrap_or(0)))
        .filter(|&(_, ways)| ways > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_distribution_leaves_out_the_rejected_architectures() {
        // Two slots adding {0, 1}: counts 0, 1, 2 with 1, 2, 1 architectures.
        let counter = SeriesCounter::new(0, &[vec![0, 1], vec![0, 1]]).unwrap();
        assert_eq!(valid_distribution(&counter, &[]), vec![(0, 1), (1, 2), (2, 1)]);
        assert_eq!(valid_distribution(&counter, &[vec![0, 1]]), vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(valid_distribution(&counter, &[vec![1, 1], vec![0, 0]]), vec![(1, 2)]);
    }
}
