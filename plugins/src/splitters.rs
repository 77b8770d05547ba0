//! Splitting criteria: how the search space is partitioned into subspaces, one supernet each.
//!
//! - `nonlin` (EFS-NAS): by the counting rule's count, in groups such as `0-1,2,3` or
//!   `34,36,38,40,42,rest`;
//! - `none` (SPOS): one subspace;
//! - `edge-op` (FS-NAS): one subspace per option of one slot;
//! - `flops`, `params`: `k` quantile groups of the exact cost;
//! - `random`: `k` groups by a seeded hash of the architecture.

use fewshot_sdk::{
    register_builtin, Arch, ArchMetrics, Params, PlanContext, PluginEntry, SplitKey, Splitter,
    SubspaceLabel,
};

fn label(text: String) -> SubspaceLabel {
    SubspaceLabel { label: text.into() }
}

/// One group of counts in a `groups=` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountGroup {
    /// The counts `lo..=hi` (a single value when equal).
    Range(u32, u32),
    /// Every count no other group lists.
    Rest,
}

impl CountGroup {
    fn contains(&self, count: u32) -> bool {
        matches!(*self, CountGroup::Range(lo, hi) if (lo..=hi).contains(&count))
    }

    fn text(&self) -> String {
        match *self {
            CountGroup::Range(lo, hi) if lo == hi => lo.to_string(),
            CountGroup::Range(lo, hi) => format!("{lo}-{hi}"),
            CountGroup::Rest => "rest".into(),
        }
    }
}

/// Parses a `groups` list: comma-separated single counts `N`, ranges `A-B` and at most one
/// `rest`. Overlapping groups are an error.
pub fn parse_groups(text: &str) -> Result<Vec<CountGroup>, String> {
    let mut groups: Vec<CountGroup> = Vec::new();
    for token in text.split(',').map(str::trim) {
        let bad = || format!("group `{token}` in `{text}` is not a count `N`, a range `A-B` or `rest`");
        if token.is_empty() {
            return Err(format!("groups `{text}` have an empty entry"));
        }
        let group = if token.eq_ignore_ascii_case("rest") {
            if groups.contains(&CountGroup::Rest) {
                return Err(format!("groups `{text}` list `rest` twice"));
            }
            CountGroup::Rest
        } else {
            let (lo, hi) = match token.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>().map_err(|_| bad())?, b.trim().parse::<u32>().map_err(|_| bad())?),
                None => {
                    let n = token.parse::<u32>().map_err(|_| bad())?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err(format!("group `{token}` is an empty range (write `{hi}-{lo}`)"));
            }
            let new = CountGroup::Range(lo, hi);
            if let Some(other) = groups.iter().find(|g| match g {
                CountGroup::Range(a, b) => lo <= *b && *a <= hi,
                CountGroup::Rest => false,
            }) {
                let shared = match *other {
                    CountGroup::Range(a, _) => a.max(lo),
                    CountGroup::Rest => lo,
                };
                return Err(format!(
                    "groups `{}` and `{token}` overlap (count {shared} is in both)",
                    other.text()
                ));
            }
            new
        };
        groups.push(group);
    }
    Ok(groups)
}

/// Formats sorted counts as runs, e.g. `0-1,5`; `breaks` are counts of other groups that split
/// a run.
fn runs(values: &[u32], breaks: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut start: Option<(u32, u32)> = None;
    let flush = |parts: &mut Vec<String>, run: Option<(u32, u32)>| {
        if let Some((a, b)) = run {
            parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
        }
    };
    let mut all: Vec<(u32, bool)> = values.iter().map(|&v| (v, true)).chain(breaks.iter().map(|&v| (v, false))).collect();
    all.sort_unstable();
    for (v, mine) in all {
        if mine {
            start = Some(match start {
                Some((a, _)) => (a, v),
                None => (v, v),
            });
        } else {
            flush(&mut parts, start.take());
        }
    }
    flush(&mut parts, start);
    parts.join(",")
}

/// EFS-NAS: subspaces by the counting rule's count.
#[derive(Debug, Default)]
pub struct NonlinSplitter {
    requested: Option<String>,
    groups: Vec<CountGroup>,
}

impl NonlinSplitter {
    /// Builds the splitter from `groups=0-1,2,3` (default: the space's grouping).
    pub fn from_params(p: &Params) -> Result<Self, String> {
        let requested = p.get_str("groups").map(str::to_string);
        if let Some(text) = &requested {
            parse_groups(text)?;
        }
        Ok(NonlinSplitter { requested, groups: Vec::new() })
    }
}

impl Splitter for NonlinSplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Count
    }

    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        let text = self.requested.clone().unwrap_or_else(|| ctx.default_groups.to_string());
        let groups = parse_groups(&text)?;
        let mut present: Vec<u32> = Vec::new();
        for vw in ctx.distribution.iter().filter(|vw| vw.weight > 0.0) {
            if vw.value < 0.0 || vw.value.fract() != 0.0 || vw.value > u32::MAX as f64 {
                return Err(format!("nonlin splits by a count, but the distribution holds {}", vw.value));
            }
            present.push(vw.value as u32);
        }
        present.sort_unstable();
        present.dedup();
        let sample = if ctx.exact { "" } else { " in the planning sample" };
        let shown = runs(&present, &[]);
        let in_range = |g: &CountGroup| present.iter().copied().filter(|&v| g.contains(v)).collect::<Vec<_>>();
        let rest: Vec<u32> = present
            .iter()
            .copied()
            .filter(|&v| !groups.iter().any(|g| g.contains(v)))
            .collect();
        let has_rest = groups.contains(&CountGroup::Rest);
        let covered: Vec<u32> = present.iter().copied().filter(|v| !rest.contains(v)).collect();
        if !has_rest && !rest.is_empty() {
            return Err(format!(
                "count{} {} {} in no group of `{text}`; list {} or add `rest`",
                if rest.len() > 1 { "s" } else { "" },
                runs(&rest, &covered),
                if rest.len() > 1 { "fall" } else { "falls" },
                if rest.len() > 1 { "them" } else { "it" },
            ));
        }
        let mut labels = Vec::with_capacity(groups.len());
        for g in &groups {
            let members = match g {
                CountGroup::Rest => rest.clone(),
                _ => in_range(g),
            };
            if members.is_empty() {
                return Err(match g {
                    CountGroup::Rest => format!(
                        "group `rest` of `{text}` matches no architecture{sample}: every count ({shown}) is already in a group"
                    ),
                    _ => format!(
                        "group `{}` of `{text}` matches no architecture{sample} (counts present: {shown})",
                        g.text()
                    ),
                });
            }
            labels.push(label(match g {
                CountGroup::Rest => format!("count rest ({})", runs(&rest, &covered)),
                _ => format!("count {}", g.text()),
            }));
        }
        self.groups = groups;
        Ok(labels)
    }

    fn assign(&self, _arch: &Arch, metrics: &ArchMetrics) -> Result<u32, String> {
        let count = metrics.count;
        self.groups
            .iter()
            .position(|g| g.contains(count))
            .or_else(|| self.groups.iter().position(|g| *g == CountGroup::Rest))
            .map(|i| i as u32)
            .ok_or_else(|| format!("count {count} is in no group and there is no `rest` group"))
    }
}

/// SPOS: the whole space in one subspace.
#[derive(Debug, Default)]
pub struct NoneSplitter;

impl Splitter for NoneSplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, _ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        Ok(vec![label("all".into())])
    }

    fn assign(&self, _arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        Ok(0)
    }
}

/// FS-NAS: one subspace per option of one slot.
#[derive(Debug, Default)]
pub struct EdgeOpSplitter {
    requested: Option<String>,
    slot: usize,
}

impl EdgeOpSplitter {
    /// Builds the splitter from `slot=INDEX|NAME` (default: the first slot).
    pub fn from_params(p: &Params) -> Result<Self, String> {
        Ok(EdgeOpSplitter { requested: p.get_str("slot").map(str::to_string), slot: 0 })
    }
}

impl Splitter for EdgeOpSplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        let slots = &ctx.slots;
        if slots.is_empty() {
            return Err("edge-op needs a space with at least one slot".into());
        }
        self.slot = match &self.requested {
            None => 0,
            Some(text) => match text.parse::<usize>() {
                Ok(i) if i < slots.len() => i,
                Ok(i) => return Err(format!("slot={i}: the space has slots 0..{}", slots.len() - 1)),
                Err(_) => slots.iter().position(|s| s.name.as_str() == text).ok_or_else(|| {
                    let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
                    format!("slot={text}: no such slot (slots: {})", names.join(", "))
                })?,
            },
        };
        let slot = &slots[self.slot];
        Ok(slot.options.iter().map(|o| label(format!("{}={o}", slot.name))).collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        arch.as_slice()
            .get(self.slot)
            .copied()
            .ok_or_else(|| format!("architecture has no slot {}", self.slot))
    }
}

/// Which cost a quantile splitter reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostKind {
    /// FLOPs (multiply-adds) at full width.
    Flops,
    /// Parameters at full width.
    Params,
}

impl CostKind {
    fn name(self) -> &'static str {
        match self {
            CostKind::Flops => "flops",
            CostKind::Params => "params",
        }
    }
}

/// `k` groups of (nearly) equal size by quantiles of the exact cost.
#[derive(Debug)]
pub struct QuantileSplitter {
    cost: CostKind,
    k: u32,
    upper: Vec<f64>,
}

impl QuantileSplitter {
    /// Builds the splitter from `k=3`.
    pub fn from_params(cost: CostKind, p: &Params) -> Result<Self, String> {
        let k: u32 = p.get("k", 3)?;
        if k == 0 {
            return Err("k must be at least 1".into());
        }
        Ok(QuantileSplitter { cost, k, upper: Vec::new() })
    }
}

/// The fewest decimals (1 to 6) that keep neighbouring group bounds apart.
pub fn bound_digits(bounds: &[(f64, f64)]) -> usize {
    (1..=6)
        .find(|&d| bounds.windows(2).all(|w| format!("{:.*}", d, w[0].1) != format!("{:.*}", d, w[1].0)))
        .unwrap_or(6)
}

/// Formats group bounds as `lo-hi` with [`bound_digits`] decimals, each followed by `unit`.
fn bounds_text(bounds: &[(f64, f64)], unit: &str) -> Vec<String> {
    let digits = bound_digits(bounds);
    bounds.iter().map(|(lo, hi)| format!("{lo:.digits$}-{hi:.digits$}{unit}")).collect()
}

/// Cuts a distribution (`(value, weight)` sorted by value, weights positive) into `k` groups of
/// nearly equal weight: each value goes to the group its cumulative midpoint falls in, so equal
/// values stay together. Returns each group's smallest and largest value, or `None` when some
/// group would be empty (too few distinct values for `k`).
pub fn quantile_bounds(dist: &[(f64, f64)], k: usize) -> Option<Vec<(f64, f64)>> {
    let total: f64 = dist.iter().map(|d| d.1).sum();
    if dist.is_empty() || total <= 0.0 || k == 0 {
        return None;
    }
    let mut bounds: Vec<Option<(f64, f64)>> = vec![None; k];
    let mut before = 0.0;
    for &(value, weight) in dist {
        let mid = (before + weight / 2.0) / total;
        let g = ((mid * k as f64) as usize).min(k - 1);
        bounds[g] = Some(match bounds[g] {
            Some((lo, _)) => (lo, value),
            None => (value, value),
        });
        before += weight;
    }
    bounds.into_iter().collect()
}

/// The quantile group of `value` given each group's largest value ([`quantile_bounds`]): the
/// first group whose largest value it does not exceed, else the last.
pub fn quantile_group(upper: &[f64], value: f64) -> usize {
    upper.iter().position(|&u| value <= u).unwrap_or(upper.len().saturating_sub(1))
}

impl Splitter for QuantileSplitter {
    fn key(&self) -> SplitKey {
        match self.cost {
            CostKind::Flops => SplitKey::Flops,
            CostKind::Params => SplitKey::Params,
        }
    }

    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        let dist: Vec<(f64, f64)> = ctx
            .distribution
            .iter()
            .filter(|vw| vw.weight > 0.0)
            .map(|vw| (vw.value, vw.weight))
            .collect();
        if dist.is_empty() {
            return Err(format!("{}: the cost distribution is empty", self.cost.name()));
        }
        let k = self.k as usize;
        let bounds = quantile_bounds(&dist, k).ok_or_else(|| {
            format!(
                "{}: the cost distribution ({} distinct values) cannot be cut into k={} groups of similar size; use a smaller k",
                self.cost.name(),
                dist.len(),
                k
            )
        })?;
        self.upper = bounds.iter().map(|b| b.1).collect();
        Ok(bounds_text(&bounds, "M")
            .into_iter()
            .map(|text| label(format!("{} {text}", self.cost.name())))
            .collect())
    }

    fn assign(&self, _arch: &Arch, metrics: &ArchMetrics) -> Result<u32, String> {
        if self.upper.is_empty() {
            return Err("the splitter was not prepared".into());
        }
        let value = match self.cost {
            CostKind::Flops => metrics.flops_m,
            CostKind::Params => metrics.params_m,
        };
        Ok(quantile_group(&self.upper, value) as u32)
    }
}

/// `k` groups by a seeded hash of the architecture.
#[derive(Debug)]
pub struct RandomSplitter {
    k: u32,
    seed: Option<u64>,
    effective_seed: u64,
}

impl RandomSplitter {
    /// Builds the splitter from `k=3,seed=S` (default seed: the run's).
    pub fn from_params(p: &Params) -> Result<Self, String> {
        let k: u32 = p.get("k", 3)?;
        if k == 0 {
            return Err("k must be at least 1".into());
        }
        let seed = match p.get_str("seed") {
            None => None,
            Some(s) => Some(s.parse::<u64>().map_err(|e| format!("parameter `seed={s}`: {e}"))?),
        };
        Ok(RandomSplitter { k, seed, effective_seed: 0 })
    }
}

/// Separates the random splitter's hash stream from other uses of the same seed.
const RANDOM_SPLIT_SALT: u64 = 0x5EED_0F5B_1175_0000;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Splitter for RandomSplitter {
    fn key(&self) -> SplitKey {
        SplitKey::Arch
    }

    fn prepare(&mut self, ctx: &PlanContext) -> Result<Vec<SubspaceLabel>, String> {
        self.effective_seed = self.seed.unwrap_or(ctx.seed);
        Ok((0..self.k).map(|g| label(format!("random {} of {}", g + 1, self.k))).collect())
    }

    fn assign(&self, arch: &Arch, _metrics: &ArchMetrics) -> Result<u32, String> {
        let mut h = mix(self.effective_seed ^ RANDOM_SPLIT_SALT);
        for &c in arch.as_slice() {
            h = mix(h ^ u64::from(c));
        }
        Ok(((u128::from(h) * u128::from(self.k)) >> 64) as u32)
    }
}

fn nonlin_entry() -> PluginEntry {
    PluginEntry::splitter(
        "nonlin",
        "EFS-NAS: by the counting rule's count, in groups like 0-1,2,3 or 34,36,38,40,42,rest",
        "groups=A-B,C,...,rest (default: the space's grouping)",
        NonlinSplitter::from_params,
    )
}
register_builtin!(nonlin_entry);

fn none_entry() -> PluginEntry {
    PluginEntry::splitter("none", "SPOS: the whole space in one supernet", "", |_| Ok(NoneSplitter))
}
register_builtin!(none_entry);

fn edge_op_entry() -> PluginEntry {
    PluginEntry::splitter(
        "edge-op",
        "FS-NAS: one subspace per option of one slot",
        "slot=INDEX|NAME (default: the first slot)",
        EdgeOpSplitter::from_params,
    )
}
register_builtin!(edge_op_entry);

fn flops_entry() -> PluginEntry {
    PluginEntry::splitter(
        "flops",
        "k quantile groups of the exact FLOPs at full width",
        "k=3",
        |p| QuantileSplitter::from_params(CostKind::Flops, p),
    )
}
register_builtin!(flops_entry);

fn params_entry() -> PluginEntry {
    PluginEntry::splitter(
        "params",
        "k quantile groups of the exact parameter count at full width",
        "k=3",
        |p| QuantileSplitter::from_params(CostKind::Params, p),
    )
}
register_builtin!(params_entry);

fn random_entry() -> PluginEntry {
    PluginEntry::splitter(
        "random",
        "k groups by a seeded hash of the architecture",
        "k=3, seed=S (default: the run's seed)",
        RandomSplitter::from_params,
    )
}
register_builtin!(random_entry);

#[cfg(test)]
mod tests {
    use super::*;
    use fewshot_sdk::{Slot, ValueWeight};

    fn ctx(dist: &[(f64, f64)], default_groups: &str) -> PlanContext {
        PlanContext {
            slots: vec![Slot::new("edge1<-0", &["none", "skip"]), Slot::new("edge2<-0", &["a", "b", "c"])].into(),
            default_groups: default_groups.into(),
            distribution: dist.iter().map(|&(value, weight)| ValueWeight { value, weight }).collect(),
            exact: true,
            seed: 7,
        }
    }

    fn metrics(count: u32, flops_m: f64) -> ArchMetrics {
        ArchMetrics { count, flops_m, params_m: 0.0 }
    }

    fn labels(l: &[SubspaceLabel]) -> Vec<&str> {
        l.iter().map(|l| l.label.as_str()).collect()
    }

    fn nonlin(groups: &str) -> NonlinSplitter {
        NonlinSplitter::from_params(&Params::parse(&format!("groups={groups}")).unwrap()).unwrap()
    }

    const NB201: [(f64, f64); 4] = [(0.0, 1983.0), (1.0, 7122.0), (2.0, 5520.0), (3.0, 1000.0)];

    #[test]
    fn group_lists_parse() {
        assert_eq!(
            parse_groups("0-1, 2,3,rest").unwrap(),
            vec![CountGroup::Range(0, 1), CountGroup::Range(2, 2), CountGroup::Range(3, 3), CountGroup::Rest]
        );
        for (bad, needle) in [
            ("0-2,2", "overlap"),
            ("1,rest,rest", "twice"),
            ("3-1", "empty range"),
            ("x", "not a count"),
            ("1,,2", "empty entry"),
            ("1-", "not a count"),
        ] {
            let e = parse_groups(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn nonlin_uses_the_default_and_assigns_rest() {
        let mut s = NonlinSplitter::from_params(&Params::parse("").unwrap()).unwrap();
        let l = s.prepare(&ctx(&NB201, "0-1,2,3")).unwrap();
        assert_eq!(labels(&l), ["count 0-1", "count 2", "count 3"]);
        assert_eq!(s.assign(&Arch::default(), &metrics(1, 0.0)).unwrap(), 0);
        assert_eq!(s.assign(&Arch::default(), &metrics(3, 0.0)).unwrap(), 2);
        assert!(s.assign(&Arch::default(), &metrics(4, 0.0)).is_err());

        let dist: Vec<(f64, f64)> = (6..=21).map(|m| (2.0 * m as f64, 1.0)).collect();
        let mut s = nonlin("34,36,38,40,42,rest");
        let l = s.prepare(&ctx(&dist, "")).unwrap();
        assert_eq!(labels(&l), ["count 34", "count 36", "count 38", "count 40", "count 42", "count rest (12-32)"]);
        assert_eq!(s.assign(&Arch::default(), &metrics(12, 0.0)).unwrap(), 5);
        assert_eq!(s.assign(&Arch::default(), &metrics(40, 0.0)).unwrap(), 3);

        let mut s = nonlin("rest,1-2");
        let l = s.prepare(&ctx(&NB201, "")).unwrap();
        assert_eq!(labels(&l), ["count rest (0,3)", "count 1-2"]);
    }

    #[test]
    fn nonlin_rejects_uncovered_and_empty_groups() {
        let e = nonlin("0-1,2").prepare(&ctx(&NB201, "")).unwrap_err();
        assert!(e.contains("count 3 falls in no group") && e.contains("rest"), "{e}");
        let e = nonlin("0,1").prepare(&ctx(&NB201, "")).unwrap_err();
        assert!(e.contains("counts 2-3 fall in no group"), "{e}");
        let e = nonlin("1-2").prepare(&ctx(&NB201, "")).unwrap_err();
        assert!(e.contains("counts 0,3 fall in no group"), "{e}");
        let e = nonlin("0-1,2,3,7").prepare(&ctx(&NB201, "")).unwrap_err();
        assert!(e.contains("group `7`") && e.contains("0-3"), "{e}");
        let e = nonlin("0-1,2,3,rest").prepare(&ctx(&NB201, "")).unwrap_err();
        assert!(e.contains("`rest`") && e.contains("already"), "{e}");
        assert!(NonlinSplitter::from_params(&Params::parse("groups=1-0").unwrap()).is_err());
    }

    #[test]
    fn edge_op_by_index_and_name() {
        let mut s = EdgeOpSplitter::from_params(&Params::parse("").unwrap()).unwrap();
        assert_eq!(labels(&s.prepare(&ctx(&[], "")).unwrap()), ["edge1<-0=none", "edge1<-0=skip"]);
        let mut s = EdgeOpSplitter::from_params(&Params::parse("slot=edge2<-0").unwrap()).unwrap();
        assert_eq!(s.prepare(&ctx(&[], "")).unwrap().len(), 3);
        assert_eq!(s.assign(&Arch::new(vec![1, 2]), &metrics(0, 0.0)).unwrap(), 2);
        let mut s = EdgeOpSplitter::from_params(&Params::parse("slot=1").unwrap()).unwrap();
        assert_eq!(s.prepare(&ctx(&[], "")).unwrap().len(), 3);
        for bad in ["slot=2", "slot=edge9"] {
            let mut s = EdgeOpSplitter::from_params(&Params::parse(bad).unwrap()).unwrap();
            assert!(s.prepare(&ctx(&[], "")).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantiles_cut_the_weighted_distribution() {
        let dist: Vec<(f64, f64)> = (1..=9).map(|v| (v as f64 * 10.0, 1.0)).collect();
        let mut s = QuantileSplitter::from_params(CostKind::Flops, &Params::parse("k=3").unwrap()).unwrap();
        let l = s.prepare(&ctx(&dist, "")).unwrap();
        assert_eq!(labels(&l), ["flops 10.0-30.0M", "flops 40.0-60.0M", "flops 70.0-90.0M"]);
        assert_eq!(s.assign(&Arch::default(), &metrics(0, 30.0)).unwrap(), 0);
        assert_eq!(s.assign(&Arch::default(), &metrics(0, 30.5)).unwrap(), 1);
        assert_eq!(s.assign(&Arch::default(), &metrics(0, 99.0)).unwrap(), 2);
        // A value holding most of the weight cannot be split.
        let mut s = QuantileSplitter::from_params(CostKind::Params, &Params::parse("k=3").unwrap()).unwrap();
        let e = s.prepare(&ctx(&[(1.0, 100.0), (2.0, 1.0)], "")).unwrap_err();
        assert!(e.contains("smaller k"), "{e}");
        assert!(QuantileSplitter::from_params(CostKind::Flops, &Params::parse("k=0").unwrap()).is_err());
    }

    #[test]
    fn random_is_seeded_and_deterministic() {
        let assign_all = |seed: &str| {
            let mut s = RandomSplitter::from_params(&Params::parse(seed).unwrap()).unwrap();
            assert_eq!(s.prepare(&ctx(&[], "")).unwrap().len(), 3);
            (0..300u32)
                .map(|i| s.assign(&Arch::new(vec![i % 17, i / 17]), &metrics(0, 0.0)).unwrap())
                .collect::<Vec<_>>()
        };
        let a = assign_all("k=3");
        assert_eq!(a, assign_all("k=3,seed=7"));
        assert_ne!(a, assign_all("k=3,seed=8"));
        for g in 0..3 {
            let n = a.iter().filter(|&&x| x == g).count();
            assert!((70..130).contains(&n), "group {g}: {n}");
        }
    }
}
