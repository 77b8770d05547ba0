//! Split planning against the reference numbers (NB201 by enumeration, MobileNet by dynamic
//! programming), exact uniform draws, and the built-in samplers through the plan's drawer.

use std::collections::BTreeMap;

use fewshot_core::plan::{Method, Plan, PlanError, PlanOptions, ENUMERATION_LIMIT, ESTIMATE_SAMPLE};
use fewshot_core::util::rng::Rng;
use fewshot_sdk::ffi::{builtin_entries, AnyPlugin, RuleBox, SamplerBox, SpaceBox, SplitterBox};
use fewshot_sdk::{
    Activation, Arch, ArchDraw, Graph, GraphBuilder, PluginEntry, PluginKind, SearchSpace, Slot, Width,
};

// The built-ins register themselves with inventory; keep the crate linked.
use fewshot_plugins as _;

fn made(entry: &PluginEntry, params: &str) -> AnyPlugin {
    entry.maker.make(params.into()).into_result().unwrap_or_else(|e| panic!("{}: {e}", entry.name)).into_enum().ok().unwrap()
}

fn builtin(kind: PluginKind, spec: &str) -> AnyPlugin {
    let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
    let entry = builtin_entries()
        .into_iter()
        .find(|e| e.kind() == Some(kind) && e.name.as_str() == name)
        .unwrap_or_else(|| panic!("no built-in {kind:?} {name}"));
    made(&entry, params)
}

fn space(spec: &str) -> SpaceBox {
    match builtin(PluginKind::Space, spec) {
        AnyPlugin::Space(s) => s,
        _ => unreachable!(),
    }
}

fn rule(spec: &str) -> RuleBox {
    match builtin(PluginKind::Rule, spec) {
        AnyPlugin::Rule(r) => r,
        _ => unreachable!(),
    }
}

fn splitter(spec: &str) -> SplitterBox {
    match builtin(PluginKind::Splitter, spec) {
        AnyPlugin::Splitter(s) => s,
        _ => unreachable!(),
    }
}

fn sampler(spec: &str) -> SamplerBox {
    match builtin(PluginKind::Sampler, spec) {
        AnyPlugin::Sampler(s) => s,
        _ => unreachable!(),
    }
}

fn opts() -> PlanOptions {
    PlanOptions::default()
}

fn plan(space_spec: &str, rule_spec: &str, splitter_spec: &str, o: PlanOptions) -> Result<Plan, PlanError> {
    Plan::build(space(space_spec), rule(rule_spec), splitter(splitter_spec), o)
}

fn sizes(p: &Plan) -> Vec<u128> {
    p.subspaces().iter().map(|s| s.size).collect()
}

fn shared(path: &str) -> std::path::PathBuf {
    match std::env::var_os("FEWSHOT_SHARED") {
        Some(dir) => std::path::PathBuf::from(dir).join(path),
        None => std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")).join(path),
    }
}

/// Four standard deviations of the number of successes in `n` independent trials of probability
/// `p`. Every sampled quantity below is seeded, so a check against this bound is repeatable; a
/// correct sampler leaves it with probability about 6·10^-5 per check.
fn four_sigma(n: f64, p: f64) -> f64 {
    4.0 * (n * p * (1.0 - p)).sqrt()
}

/// Chi-square statistic of observed counts against equal expectations.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
}

/// An upper critical value of chi-square with `dof` degrees of freedom at about 0.1% (Wilson–
/// Hilferty approximation, z = 3.09).
fn chi_square_critical(dof: usize) -> f64 {
    let k = dof as f64;
    let t = 1.0 - 2.0 / (9.0 * k) + 3.09 * (2.0 / (9.0 * k)).sqrt();
    k * t.powi(3)
}

#[test]
fn nb201_enn_groups_and_default_split_match_the_reference() {
    let p = plan("nb201", "enn", "nonlin:groups=0,1,2,3", opts()).unwrap();
    assert_eq!(p.method(), Method::Enumeration);
    assert!(p.exact());
    assert_eq!(sizes(&p), vec![1983, 7122, 5520, 1000]);
    assert_eq!(p.trash(), 341);
    assert_eq!(p.subspaces()[0].trainable, 1983 - 341);

    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    assert_eq!(sizes(&p), vec![9105, 5520, 1000]);
    let labels: Vec<&str> = p.subspaces().iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["count 0-1", "count 2", "count 3"]);
    let trainable: Vec<u128> = p.subspaces().iter().map(|s| s.trainable).collect();
    assert_eq!(trainable, vec![8764, 5520, 1000]);
    assert_eq!(p.subspaces()[0].count_range, (0, 1));
    assert_eq!(p.total(), 15_625);

    let with_trash = plan("nb201", "enn", "nonlin", PlanOptions { include_trash: true, ..opts() }).unwrap();
    assert_eq!(with_trash.subspaces()[0].trainable, 9105);
}

#[test]
fn nb201_total_and_live_distributions_match_the_reference() {
    let groups = "nonlin:groups=0,1,2,3,4,5,6";
    assert_eq!(sizes(&plan("nb201", "total", groups, opts()).unwrap()), vec![729, 2916, 4860, 4320, 2160, 576, 64]);
    assert_eq!(sizes(&plan("nb201", "live", groups, opts()).unwrap()), vec![1983, 3842, 4272, 3288, 1664, 512, 64]);
}

#[test]
fn nb201_activation_does_not_change_enn_groups() {
    let tanh = plan("nb201:activation=tanh", "enn", "nonlin", opts()).unwrap();
    assert_eq!(sizes(&tanh), vec![9105, 5520, 1000]);
    let relu_only = plan("nb201:activation=tanh", "enn:kinds=relu,relu6", "nonlin:groups=0", opts()).unwrap();
    assert_eq!(sizes(&relu_only), vec![15_625]);
    assert_eq!(relu_only.subspaces()[0].count_range, (0, 0));
}

#[test]
fn nb201_trash_and_costs_agree_with_the_benchmark() {
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    let csv = std::fs::read_to_string(shared("data/nb201/nb201.csv")).expect("nb201.csv in ../shared");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (arch_col, acc_col, flops_col) = (col("arch"), col("c10_test_acc"), col("c10_flops_m"));
    let mut trash = 0;
    let mut ranges: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let arch = p.parse(cells[arch_col]).unwrap();
        let info = p.info(&arch).unwrap();
        // Every trash cell (no live path) has exactly chance accuracy, and only they do.
        assert_eq!(info.trash, cells[acc_col] == "10.0000", "{}", cells[arch_col]);
        trash += info.trash as u32;
        assert!(!info.trash || info.count == 0);
        let flops: f64 = cells[flops_col].parse().unwrap();
        assert!((info.flops_m - flops).abs() < 1e-9);
        let r = ranges.entry(info.subspace).or_insert((f64::MAX, f64::MIN));
        *r = (r.0.min(flops), r.1.max(flops));
    }
    assert_eq!(trash, 341);
    for s in p.subspaces() {
        let (lo, hi) = ranges[&s.id];
        assert!((s.flops_m_range.0 - lo).abs() < 1e-9 && (s.flops_m_range.1 - hi).abs() < 1e-9, "{s:?}");
    }
}

#[test]
fn mobilenet_sizes_are_exact_by_dynamic_programming() {
    let p = plan("mobilenet", "enn", "nonlin:groups=42,40,38,36,34,32,rest", opts()).unwrap();
    assert_eq!(p.method(), Method::DynamicProgramming);
    assert!(p.exact());
    let total: u128 = 6u128.pow(6) * 7u128.pow(15);
    assert_eq!(sizes(&p).iter().sum::<u128>(), total);
    assert_eq!(p.total(), total);
    assert_eq!(p.trash(), 0);
    // Count 42 − 2m: m of the 15 identity-able layers are identity, C(15, m) · 6^(21−m).
    let binom = |n: u128, k: u128| (0..k).fold(1u128, |acc, i| acc * (n - i) / (i + 1));
    for (i, s) in p.subspaces().iter().take(6).enumerate() {
        assert_eq!(s.size, binom(15, i as u128) * 6u128.pow(21 - i as u32), "{s:?}");
        assert_eq!(s.count_range, (42 - 2 * i as u32, 42 - 2 * i as u32));
    }
    // Reference §6.2 shares: 42: 9.9%, 40: 24.8%, 38: 28.9%, 36: 20.9%, 34: 10.4%, 32: 3.8%, ≤30: 1.3%.
    let shares: Vec<String> = p.subspaces().iter().map(|s| format!("{:.1}", 100.0 * s.size as f64 / total as f64)).collect();
    assert_eq!(shares, ["9.9", "24.8", "28.9", "20.9", "10.4", "3.8", "1.3"]);
    let rest = &p.subspaces()[6];
    assert_eq!(rest.label, "count rest (12-30)");
    assert_eq!(rest.count_range, (12, 30));
    // FLOPs ranges span the reference's 109M..693M.
    let lo = p.subspaces().iter().map(|s| s.flops_m_range.0).fold(f64::MAX, f64::min);
    let hi = p.subspaces().iter().map(|s| s.flops_m_range.1).fold(f64::MIN, f64::max);
    assert_eq!((lo.round(), hi.round()), (109.0, 693.0));

    let default = plan("mobilenet", "enn", "nonlin", opts()).unwrap();
    assert_eq!(default.subspaces().len(), 6);
    assert_eq!(default.subspaces()[5].label, "count rest (12-32)");
}

#[test]
fn mobilenet_draws_fall_in_the_requested_subspace() {
    let p = plan("mobilenet", "enn", "nonlin", opts()).unwrap();
    let mut drawer = p.drawer(Rng::stream(1, "test"));
    let groups: [&[u32]; 6] = [&[34], &[36], &[38], &[40], &[42], &[12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32]];
    for (k, counts) in groups.iter().enumerate() {
        for _ in 0..100 {
            let arch = drawer.draw(k as u32).unwrap();
            let info = p.info(&arch).unwrap();
            assert_eq!(info.subspace, k as u32);
            assert!(counts.contains(&info.count), "{k}: {}", info.count);
            assert_eq!(drawer.subspace_of(&arch).unwrap(), Some(k as u32));
        }
    }
    let mut sbs = sampler("sbs");
    for _ in 0..50 {
        let picks = drawer.draw_step(&mut sbs).unwrap();
        assert_eq!(picks.iter().map(|p| p.subspace).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
        for pick in picks {
            let info = p.info(&pick.arch).unwrap();
            assert_eq!(info.subspace, pick.subspace);
        }
    }
    // The rest group is drawn by its exact weights: count 32 is 3.8/5.1 of it.
    let n = 20_000;
    let at_32 = (0..n).filter(|_| p.info(&drawer.draw(5).unwrap()).unwrap().count == 32).count() as f64 / n as f64;
    let expected = p.series_counter().unwrap().ways(32) as f64 / p.subspaces()[5].size as f64;
    assert!((at_32 - expected).abs() < four_sigma(n as f64, expected) / n as f64, "{at_32} vs {expected}");
}

/// A chain of `layers` slots; each option is a small block with 0, 1 or 2 activations.
struct Chain {
    layers: u32,
    /// Claim the slots lie in series even when they do not (parallel branches).
    parallel: bool,
}

const CHAIN_OPTIONS: [&str; 4] = ["conv", "relu-conv", "relu-relu", "identity"];

impl Chain {
    fn graph(&self) -> Graph {
        let mut g = GraphBuilder::new();
        let input = g.input(Width::fixed(4), 8, 8);
        let mut x = input;
        let mut branches = Vec::new();
        for slot in 0..self.layers {
            let from = if self.parallel { input } else { x };
            let mut outs = Vec::new();
            for (o, _) in CHAIN_OPTIONS.iter().enumerate() {
                outs.push(g.when(slot, o as u32, |g| match o {
                    0 => g.conv(from, Width::scaled(4), 3, 1),
                    1 => {
                        let a = g.activation(from, Activation::Relu);
                        g.conv(a, Width::scaled(4), 3, 1)
                    }
                    2 => {
                        let a = g.activation(from, Activation::Relu);
                        g.activation(a, Activation::Gelu)
                    }
                    _ => g.identity(from),
                }));
            }
            x = g.add(&outs);
            branches.push(x);
        }
        let out = if self.parallel { g.add(&branches) } else { x };
        g.finish(out)
    }
}

impl SearchSpace for Chain {
    fn slots(&self) -> Vec<Slot> {
        (0..self.layers).map(|i| Slot::new(&format!("layer{i}"), &CHAIN_OPTIONS)).collect()
    }
    fn parse(&self, text: &str) -> Result<Arch, String> {
        text.split('-')
            .map(|t| CHAIN_OPTIONS.iter().position(|o| *o == t).map(|i| i as u32).ok_or(format!("bad `{t}`")))
            .collect::<Result<Vec<u32>, String>>()
            .map(Arch::new)
    }
    fn format(&self, arch: &Arch) -> String {
        arch.as_slice().iter().map(|&c| CHAIN_OPTIONS[c as usize]).collect::<Vec<_>>().join("-")
    }
    fn supernet_graph(&self) -> Graph {
        self.graph()
    }
    fn counting_graph(&self) -> Graph {
        self.graph()
    }
    fn default_groups(&self) -> String {
        "0-2,3-4,rest".into()
    }
    fn slots_in_series(&self) -> bool {
        true
    }
}

fn chain_space(layers: u32, parallel: bool) -> SpaceBox {
    let entry = if parallel {
        PluginEntry::space("parallel", "", "", |_| Ok(Chain { layers: 3, parallel: true }))
    } else if layers == 4 {
        PluginEntry::space("chain4", "", "", |_| Ok(Chain { layers: 4, parallel: false }))
    } else {
        PluginEntry::space("chain11", "", "", |_| Ok(Chain { layers: 11, parallel: false }))
    };
    match made(&entry, "") {
        AnyPlugin::Space(s) => s,
        _ => unreachable!(),
    }
}

#[test]
fn dynamic_programming_agrees_with_enumeration_and_draws_uniformly() {
    let force = |m| PlanOptions { method: Some(m), ..opts() };
    let by_dp = Plan::build(chain_space(4, false), rule("enn"), splitter("nonlin"), force(Method::DynamicProgramming)).unwrap();
    let by_enum = Plan::build(chain_space(4, false), rule("enn"), splitter("nonlin"), force(Method::Enumeration)).unwrap();
    assert_eq!(by_dp.method(), Method::DynamicProgramming);
    assert_eq!(by_dp.subspaces(), by_enum.subspaces());
    assert_eq!(sizes(&by_dp).iter().sum::<u128>(), 256);

    // Every architecture of subspace 1 (counts 3-4) equally often.
    let members: Vec<Vec<u32>> = {
        let mut all = Vec::new();
        let mut odo = fewshot_core::space::odometer::Odometer::new(&[4, 4, 4, 4]);
        while let Some(a) = odo.advance() {
            if by_enum.info(&Arch::new(a.to_vec())).unwrap().subspace == 1 {
                all.push(a.to_vec());
            }
        }
        all
    };
    assert_eq!(members.len() as u128, by_dp.subspaces()[1].size);
    for p in [&by_dp, &by_enum] {
        let mut drawer = p.drawer(Rng::new(11));
        let mut hits: BTreeMap<Vec<u32>, u64> = members.iter().map(|m| (m.clone(), 0)).collect();
        let draws = 200 * members.len();
        for _ in 0..draws {
            *hits.get_mut(drawer.draw(1).unwrap().as_slice()).expect("drawn arch is in the subspace") += 1;
        }
        let counts: Vec<u64> = hits.into_values().collect();
        let chi2 = chi_square(&counts);
        assert!(chi2 < chi_square_critical(counts.len() - 1), "{:?}: chi2 {chi2} over {} cells", p.method(), counts.len());
    }
}

#[test]
fn large_series_spaces_use_dynamic_programming_automatically() {
    // 4^11 > the enumeration limit.
    assert!(4u128.pow(11) > ENUMERATION_LIMIT);
    let p = Plan::build(chain_space(11, false), rule("enn"), splitter("nonlin"), opts()).unwrap();
    assert_eq!(p.method(), Method::DynamicProgramming);
    assert_eq!(sizes(&p).iter().sum::<u128>(), 4u128.pow(11));
    // Not keyed by the count: estimated from a sample, drawn by rejection.
    let p = Plan::build(chain_space(11, false), rule("enn"), splitter("edge-op"), opts()).unwrap();
    assert_eq!(p.method(), Method::Estimate);
    assert!(!p.exact());
    // A uniform sample of ESTIMATE_SAMPLE architectures: each share is a binomial proportion.
    for s in p.subspaces() {
        let share = s.size as f64 / 4f64.powi(11);
        assert!((share - 0.25).abs() < four_sigma(ESTIMATE_SAMPLE as f64, 0.25) / ESTIMATE_SAMPLE as f64, "{s:?}");
    }
    let mut drawer = p.drawer(Rng::new(2));
    for k in 0..4 {
        assert_eq!(drawer.draw(k).unwrap().as_slice()[0], k);
    }
}

#[test]
fn a_rule_that_is_not_additive_fails_loudly() {
    let force = PlanOptions { method: Some(Method::DynamicProgramming), ..opts() };
    let err = Plan::build(chain_space(3, true), rule("enn"), splitter("nonlin:groups=rest"), force).err().unwrap().to_string();
    assert!(err.contains("additive"), "{err}");
}

#[test]
fn estimates_are_close_and_draws_by_rejection_are_correct() {
    let p = plan("nb201", "enn", "nonlin", PlanOptions { method: Some(Method::Estimate), seed: 3, ..opts() }).unwrap();
    assert!(!p.exact());
    // Sizes scaled from a uniform sample of ESTIMATE_SAMPLE architectures: binomial counts.
    let scale = 15_625.0 / ESTIMATE_SAMPLE as f64;
    let tolerance = |exact: f64| scale * four_sigma(ESTIMATE_SAMPLE as f64, exact / 15_625.0);
    for (s, exact) in p.subspaces().iter().zip([9105.0, 5520.0, 1000.0]) {
        assert!((s.size as f64 - exact).abs() < tolerance(exact), "{s:?}: ± {}", tolerance(exact));
    }
    assert!((p.trash() as f64 - 341.0).abs() < tolerance(341.0), "{}", p.trash());
    let mut drawer = p.drawer(Rng::new(4));
    for k in 0..3 {
        for _ in 0..20 {
            let info = p.info(&drawer.draw(k).unwrap()).unwrap();
            assert_eq!(info.subspace, k);
            assert!(!info.trash);
        }
    }
}

#[test]
fn sbs_is_uniform_within_an_enumerated_subspace() {
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    let mut drawer = p.drawer(Rng::new(5));
    let mut sbs = sampler("sbs");
    let mut hits: BTreeMap<Vec<u32>, u64> = BTreeMap::new();
    let mut trained = [0u64; 3];
    for _ in 0..100_000 {
        for pick in drawer.draw_step(&mut sbs).unwrap() {
            trained[pick.subspace as usize] += 1;
            assert!(!p.info(&pick.arch).unwrap().trash);
            if pick.subspace == 2 {
                *hits.entry(pick.arch.as_slice().to_vec()).or_default() += 1;
            }
        }
    }
    assert_eq!(trained, [100_000; 3]);
    assert_eq!(hits.len(), 1000);
    let counts: Vec<u64> = hits.into_values().collect();
    assert!(chi_square(&counts) < chi_square_critical(999), "{}", chi_square(&counts));
}

#[test]
fn uniform_and_group_uniform_samplers_balance_as_designed() {
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    let mut drawer = p.drawer(Rng::new(6));
    let (mut uniform, mut group) = (sampler("uniform"), sampler("group-uniform"));
    let (mut by_uniform, mut by_group) = ([0u32; 3], [0u32; 3]);
    for _ in 0..15_284 {
        by_uniform[drawer.draw_step(&mut uniform).unwrap()[0].subspace as usize] += 1;
        by_group[drawer.draw_step(&mut group).unwrap()[0].subspace as usize] += 1;
    }
    // uniform: proportional to the trainable sizes 8764 / 5520 / 1000 (of 15,284).
    for (got, want) in by_uniform.iter().zip([8764.0, 5520.0, 1000.0]) {
        assert!((*got as f64 - want).abs() < four_sigma(15_284.0, want / 15_284.0), "{by_uniform:?}");
    }
    for got in by_group {
        assert!((got as f64 - 15_284.0 / 3.0).abs() < four_sigma(15_284.0, 1.0 / 3.0), "{by_group:?}");
    }
}

/// Sum over slots of (most − least used option) among the picks of one subspace.
fn spread(picks: &[fewshot_sdk::Pick], subspace: u32) -> u64 {
    let mut usage = vec![vec![0u64; 5]; 6];
    for pick in picks.iter().filter(|p| p.subspace == subspace) {
        for (s, &o) in pick.arch.as_slice().iter().enumerate() {
            usage[s][o as usize] += 1;
        }
    }
    usage
        .iter()
        .map(|u| {
            let used: Vec<u64> = u.iter().copied().filter(|&c| c > 0).collect();
            used.iter().max().unwrap_or(&0) - used.iter().min().unwrap_or(&0)
        })
        .sum()
}

#[test]
fn fair_sampler_is_strictly_fair_on_edge_op_subspaces() {
    // FS-NAS subspaces are product sets: each block of 5 uses every op of every free edge once.
    let p = plan("nb201", "enn", "edge-op", PlanOptions { include_trash: true, ..opts() }).unwrap();
    let mut drawer = p.drawer(Rng::new(8));
    let mut fair = sampler("fair");
    for _ in 0..20 {
        let picks = drawer.draw_step(&mut fair).unwrap();
        assert_eq!(picks.len(), 5 * 5);
        for k in 0..5u32 {
            let block: Vec<_> = picks.iter().filter(|p| p.subspace == k).collect();
            for slot in 1..6 {
                let mut ops: Vec<u32> = block.iter().map(|p| p.arch.as_slice()[slot]).collect();
                ops.sort_unstable();
                assert_eq!(ops, vec![0, 1, 2, 3, 4], "subspace {k} slot {slot}");
            }
            assert!(block.iter().all(|p| p.arch.as_slice()[0] == k));
        }
    }
}

#[test]
fn fair_sampler_is_fairer_than_uniform_elsewhere_and_resumes() {
    // "count 2" is no product set; fair must still balance it better than uniform draws.
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    let mut drawer = p.drawer(Rng::new(7));
    let (mut fair, mut sbs) = (sampler("fair"), sampler("sbs"));
    let mut by_fair = Vec::new();
    let mut by_sbs = Vec::new();
    for _ in 0..100 {
        let picks = drawer.draw_step(&mut fair).unwrap();
        assert_eq!(picks.len(), 3 * 5);
        by_fair.extend(picks);
        for _ in 0..5 {
            by_sbs.extend(drawer.draw_step(&mut sbs).unwrap());
        }
    }
    let (fair_spread, sbs_spread) = (spread(&by_fair, 1), spread(&by_sbs, 1));
    assert!(fair_spread * 2 < sbs_spread, "fair {fair_spread} vs uniform {sbs_spread}");

    let state = fair.save_state().into_result().unwrap();
    let mut resumed = sampler("fair");
    resumed.load_state(state.as_str().into()).into_result().unwrap();
    let mut a = p.drawer(drawer.rng().clone());
    let mut b = p.drawer(drawer.rng().clone());
    assert_eq!(a.draw_step(&mut fair).unwrap(), b.draw_step(&mut resumed).unwrap());
}

#[test]
fn draws_are_reproducible_from_the_seed() {
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    let run = |seed| {
        let mut d = p.drawer(Rng::stream(seed, "sampler"));
        (0..20).map(|i| d.draw(i % 3).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn other_splitters_partition_nb201() {
    let p = plan("nb201", "enn", "edge-op", opts()).unwrap();
    assert_eq!(sizes(&p), vec![3125; 5]);
    assert_eq!(p.subspaces()[3].label, "edge1<-0=nor_conv_3x3");
    let p = plan("nb201", "enn", "edge-op:slot=edge3<-0", opts()).unwrap();
    // Cutting edge 3<-0 leaves other paths: trash only among `none`.
    assert!(p.subspaces()[1..].iter().all(|s| s.trainable == s.size));

    // Quantile groups are exact by enumeration. NB201 has only 28 distinct costs and a cost's
    // architectures stay together, so the groups are unequal: these are the cuts of the
    // benchmark's own c10_flops_m and c10_params_mb columns by cumulative midpoint.
    let p = plan("nb201", "enn", "flops:k=3", opts()).unwrap();
    assert_eq!(sizes(&p), vec![5554, 4686, 5385]);
    for w in p.subspaces().windows(2) {
        assert!(w[0].flops_m_range.1 < w[1].flops_m_range.0, "{w:?}");
    }
    for s in p.subspaces() {
        assert!(s.label.starts_with("flops ") && s.label.ends_with('M'), "{}", s.label);
    }
    // Each group is exactly the architectures within its FLOPs range.
    let mut in_range = vec![0u128; 3];
    let mut odometer = fewshot_core::space::odometer::Odometer::new(p.option_counts());
    while let Some(choices) = odometer.advance() {
        let flops = p.info(&Arch::new(choices.to_vec())).unwrap().flops_m;
        let k = p.subspaces().iter().position(|s| (s.flops_m_range.0..=s.flops_m_range.1).contains(&flops)).unwrap();
        in_range[k] += 1;
    }
    assert_eq!(in_range, sizes(&p));
    let p = plan("nb201", "enn", "params:k=4", opts()).unwrap();
    assert_eq!(sizes(&p), vec![3942, 4042, 3471, 4170]);

    let a = plan("nb201", "enn", "random:k=4", opts()).unwrap();
    let b = plan("nb201", "enn", "random:k=4", opts()).unwrap();
    let c = plan("nb201", "enn", "random:k=4", PlanOptions { seed: 9, ..opts() }).unwrap();
    assert_eq!(sizes(&a), sizes(&b));
    assert_ne!(sizes(&a), sizes(&c));
    // A seeded hash per architecture: each group's size is binomial(15,625, 1/4).
    assert_eq!(sizes(&a).iter().sum::<u128>(), 15_625);
    let tolerance = four_sigma(15_625.0, 0.25);
    assert!(sizes(&a).iter().all(|&s| (s as f64 - 15_625.0 / 4.0).abs() < tolerance), "{:?} ± {tolerance}", sizes(&a));

    let p = plan("nb201", "enn", "none", opts()).unwrap();
    assert_eq!(sizes(&p), vec![15_625]);
    assert_eq!(p.subspaces()[0].trainable, 15_625 - 341);
}

#[test]
fn bad_input_gives_clear_errors() {
    let e = plan("nb201", "enn", "nonlin:groups=0-1,2", opts()).err().unwrap().to_string();
    assert!(e.contains("count 3") && e.contains("rest"), "{e}");
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    assert!(p.info(&Arch::new(vec![0, 1])).unwrap_err().to_string().contains("slots"));
    assert!(p.info(&Arch::new(vec![9, 0, 0, 0, 0, 0])).unwrap_err().to_string().contains("option"));
    assert!(p.parse("|bogus~0|").is_err());
    let mut d = p.drawer(Rng::new(0));
    assert!(d.draw(3).unwrap_err().to_string().contains("does not exist"));
    let e = plan("mobilenet", "enn", "nonlin", PlanOptions { method: Some(Method::Enumeration), ..opts() }).err().unwrap().to_string();
    assert!(e.contains("too many to enumerate"), "{e}");
}

#[test]
fn plans_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let p = plan("nb201", "enn", "nonlin", opts()).unwrap();
    shareable(&p);
    let sizes: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let p = &p;
                s.spawn(move || {
                    let mut d = p.drawer(Rng::new(t));
                    (0..100).filter(|_| d.draw(2).is_ok()).count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sizes, vec![100, 100]);
}
