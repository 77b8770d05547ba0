//! Rank correlation between predicted and ground-truth accuracies.
//!
//! A supernet is useful for search when it *ranks* architectures like their real, stand-alone
//! accuracies do. This module measures that, on all architectures and within groups
//! (subspaces):
//!
//! - [`kendall_tau_b`]: Kendall's τ-b, O(n log n) (Knight's algorithm), ties in both variables
//!   handled exactly, as `scipy.stats.kendalltau` computes it.
//! - [`spearman_rho`]: Spearman's ρ, the Pearson correlation of average ranks (ties get the mean
//!   of the ranks they span), as `scipy.stats.spearmanr`.
//! - [`top_k_overlap`] and [`precision_at_k`] for the best `k` architectures, with `k` usually a
//!   percentage of `n` ([`top_k_size`]). Higher values are better in both variables.
//!
//! **Top-k definitions.** Let `t_k` be the k-th largest ground-truth value; an architecture is
//! *truly top-k* when its ground truth is `≥ t_k` (an architecture tying the k-th best counts,
//! since it is exactly as good).
//!
//! - *Overlap@k* is the fraction of the true top-k that the predictor puts in its own top-k list
//!   of exactly `k` architectures. When the predictor ties architectures at its cut-off, the
//!   free places are shared equally among the tied ones (the expectation over random
//!   tie-breaking), so ties can neither help nor hurt: a constant predictor scores `k/n`, the
//!   chance level, and a perfect one scores 1.
//! - *Precision@k* is the share of **every** architecture the predictor scores at or above its
//!   own k-th value that is truly top-k. Here the predictor must commit to its whole tied block
//!   at the cut-off, so a coarse predictor that cannot tell its top-k from hundreds of others is
//!   charged for all of them. (Parameter count, for example, takes only a few dozen distinct
//!   values on NAS-Bench-201.)
//!
//! Without ties at the predictor's cut-off the two are equal; the gap between them shows how
//! much of a predictor's top-k is a tie it cannot resolve.
//!
//! Every function takes predicted values first and ground truth second, and requires finite
//! values (no NaN): the callers validate their inputs. Metrics that are undefined (fewer than
//! two items, a constant variable) are `None`.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The top-k percentages reported by default: 1% and 5% of the architectures.
pub const DEFAULT_TOP_PERCENTS: [f64; 2] = [1.0, 5.0];

fn check_inputs(pred: &[f64], truth: &[f64]) {
    assert_eq!(pred.len(), truth.len(), "predicted and true values differ in length");
    assert!(
        pred.iter().chain(truth).all(|v| !v.is_nan()),
        "rank metrics need values that are not NaN"
    );
}

/// Number of unordered pairs among `t` items.
fn pairs(t: u64) -> u64 {
    t * t.saturating_sub(1) / 2
}

/// Sum of `pairs(run length)` over runs of equal consecutive items of `items` (already sorted).
fn tied_pairs<T, F: Fn(&T, &T) -> bool>(items: &[T], same: F) -> u64 {
    let mut total = 0;
    let mut run = 1u64;
    for i in 1..items.len() {
        if same(&items[i - 1], &items[i]) {
            run += 1;
        } else {
            total += pairs(run);
            run = 1;
        }
    }
    if !items.is_empty() {
        total += pairs(run);
    }
    total
}

/// Sorts `values` ascending with a stable merge sort and returns the number of inversions
/// (pairs `i < j` with `values[i] > values[j]`, strictly).
fn sort_counting_inversions(values: &mut Vec<f64>) -> u64 {
    let n = values.len();
    let mut buffer = vec![0.0; n];
    let mut swaps = 0u64;
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut out) = (start, mid, start);
            while i < mid && j < end {
                if values[j] < values[i] {
                    buffer[out] = values[j];
                    swaps += (mid - i) as u64;
                    j += 1;
                } else {
                    buffer[out] = values[i];
                    i += 1;
                }
                out += 1;
            }
            buffer[out..out + mid - i].copy_from_slice(&values[i..mid]);
            out += mid - i;
            buffer[out..out + end - j].copy_from_slice(&values[j..end]);
            start = end;
        }
        std::mem::swap(values, &mut buffer);
        width *= 2;
    }
    swaps
}

/// Kendall's τ-b between predicted and true values, in O(n log n) (Knight, 1966).
///
/// τ-b = (C − D) / √((n₀ − n₁)(n₀ − n₂)), with C and D the concordant and discordant pairs,
/// n₀ = n(n−1)/2 and n₁, n₂ the pairs tied in each variable. `None` when `n < 2` or either
/// variable is constant.
///
/// # Panics
/// When the slices differ in length or hold NaN.
pub fn kendall_tau_b(pred: &[f64], truth: &[f64]) -> Option<f64> {
    check_inputs(pred, truth);
    let n = pred.len();
    if n < 2 {
        return None;
    }
    // `total_cmp` orders -0.0 before 0.0, but they are tied: make every zero +0.0.
    let positive_zero = |v: &f64| if *v == 0.0 { 0.0 } else { *v };
    let pred: Vec<f64> = pred.iter().map(positive_zero).collect();
    let truth: Vec<f64> = truth.iter().map(positive_zero).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| {
        pred[a].total_cmp(&pred[b]).then(truth[a].total_cmp(&truth[b]))
    });
    let tied_pred = tied_pairs(&order, |&a, &b| pred[a] == pred[b]);
    let tied_both = tied_pairs(&order, |&a, &b| pred[a] == pred[b] && truth[a] == truth[b]);
    let mut sorted_truth: Vec<f64> = order.iter().map(|&i| truth[i]).collect();
    let discordant = sort_counting_inversions(&mut sorted_truth);
    let tied_truth = tied_pairs(&sorted_truth, |a, b| a == b);

    let all = pairs(n as u64);
    let (pred_untied, truth_untied) = (all - tied_pred, all - tied_truth);
    if pred_untied == 0 || truth_untied == 0 {
        return None;
    }
    // C − D = n₀ − n₁ − n₂ + n₃ − 2D, in signed 128-bit to stay exact.
    let numerator = all as i128 - tied_pred as i128 - tied_truth as i128 + tied_both as i128
        - 2 * discordant as i128;
    Some(numerator as f64 / ((pred_untied as f64) * (truth_untied as f64)).sqrt())
}

/// Ranks from 1 to n, ascending, with tied values sharing the mean of the ranks they span
/// (e.g. `[10, 20, 20, 30]` → `[1, 2.5, 2.5, 4]`).
///
/// # Panics
/// When a value is NaN.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    assert!(values.iter().all(|v| !v.is_nan()), "ranks need values that are not NaN");
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation; `None` when a variable has zero variance or `n < 2`.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 2 {
        return None;
    }
    let mean_x = x.iter().sum::<f64>() / n as f64;
    let mean_y = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's ρ: the Pearson correlation of the average ranks of both variables. `None` when
/// `n < 2` or either variable is constant.
///
/// # Panics
/// When the slices differ in length or hold NaN.
pub fn spearman_rho(pred: &[f64], truth: &[f64]) -> Option<f64> {
    check_inputs(pred, truth);
    pearson(&average_ranks(pred), &average_ranks(truth))
}

/// The number of architectures in the top `percent`% of `n`: ⌊n·percent/100⌋, at least 1
/// (e.g. 156 for 1% of NAS-Bench-201's 15,625, as the reference's `rank.py` counts it).
pub fn top_k_size(n: usize, percent: f64) -> usize {
    ((n as f64 * percent / 100.0).floor() as usize).clamp(1, n.max(1))
}

/// The k-th largest value (1-based `k`, `1 ≤ k ≤ values.len()`).
fn kth_largest(values: &[f64], k: usize) -> f64 {
    let mut sorted = values.to_vec();
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    *kth
}

/// Membership weights of the top-k list of `values` with ties at the cut-off sharing the
/// remaining places equally: 1 above the k-th largest value, `(k − above) / tied` on it, 0
/// below. The weights sum to `k`.
fn top_k_weights(values: &[f64], k: usize) -> Vec<f64> {
    let cut = kth_largest(values, k);
    let above = values.iter().filter(|&&v| v > cut).count();
    let tied = values.iter().filter(|&&v| v == cut).count();
    let share = (k - above) as f64 / tied as f64;
    values
        .iter()
        .map(|&v| match v.partial_cmp(&cut) {
            Some(Ordering::Greater) => 1.0,
            Some(Ordering::Equal) => share,
            _ => 0.0,
        })
        .collect()
}

fn top_k_defined(n: usize, k: usize) -> bool {
    k >= 1 && k < n
}

/// Overlap@k: the fraction of the truly top-k architectures found in the predictor's top-k
/// list (ties at the predictor's cut-off share its free places; see the module docs).
/// `None` unless `1 ≤ k < n` (with `k = n` both lists are everything).
///
/// # Panics
/// When the slices differ in length or hold NaN.
pub fn top_k_overlap(pred: &[f64], truth: &[f64], k: usize) -> Option<f64> {
    check_inputs(pred, truth);
    if !top_k_defined(pred.len(), k) {
        return None;
    }
    let weights = top_k_weights(pred, k);
    let true_cut = kth_largest(truth, k);
    let found: f64 = weights.iter().zip(truth).filter(|(_, &t)| t >= true_cut).map(|(w, _)| w).sum();
    Some((found / k as f64).min(1.0))
}

/// Precision@k: the share of all architectures the predictor scores at or above its own k-th
/// largest value (its whole tied block included) that are truly top-k (see the module docs).
/// `None` unless `1 ≤ k < n`.
///
/// # Panics
/// When the slices differ in length or hold NaN.
pub fn precision_at_k(pred: &[f64], truth: &[f64], k: usize) -> Option<f64> {
    check_inputs(pred, truth);
    if !top_k_defined(pred.len(), k) {
        return None;
    }
    let pred_cut = kth_largest(pred, k);
    let true_cut = kth_largest(truth, k);
    let (mut picked, mut good) = (0usize, 0usize);
    for (&p, &t) in pred.iter().zip(truth) {
        if p >= pred_cut {
            picked += 1;
            good += usize::from(t >= true_cut);
        }
    }
    Some(good as f64 / picked as f64)
}

/// Overlap and precision for the top `percent`% (`k` architectures).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// The percentage of the architectures, e.g. 1.0 for 1%.
    pub percent: f64,
    /// The number of architectures it stands for ([`top_k_size`]).
    pub k: usize,
    /// [`top_k_overlap`].
    pub overlap: Option<f64>,
    /// [`precision_at_k`].
    pub precision: Option<f64>,
}

/// All rank metrics of one predictor on one set of architectures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankMetrics {
    /// Number of architectures.
    pub n: usize,
    /// [`kendall_tau_b`].
    pub kendall_tau_b: Option<f64>,
    /// [`spearman_rho`].
    pub spearman_rho: Option<f64>,
    /// One entry per requested percentage.
    pub top_k: Vec<TopK>,
}

/// Computes every metric of `pred` against `truth`, with top-k at each of `percents`.
///
/// # Panics
/// When the slices differ in length or hold NaN.
pub fn rank_metrics(pred: &[f64], truth: &[f64], percents: &[f64]) -> RankMetrics {
    let n = pred.len();
    RankMetrics {
        n,
        kendall_tau_b: kendall_tau_b(pred, truth),
        spearman_rho: spearman_rho(pred, truth),
        top_k: percents
            .iter()
            .map(|&percent| {
                let k = top_k_size(n, percent);
                TopK {
                    percent,
                    k,
                    overlap: top_k_overlap(pred, truth, k),
                    precision: precision_at_k(pred, truth, k),
                }
            })
            .collect(),
    }
}

/// The metrics of one predictor within one group (subspace).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// The group's label, e.g. the subspace id.
    pub group: String,
    /// Metrics over the architectures of that group only.
    pub metrics: RankMetrics,
}

/// The metrics of one predictor over all architectures and within each group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictorReport {
    /// What predicted, e.g. `"supernet"`, `"params"`, `"flops"`.
    pub name: String,
    /// Metrics over all architectures.
    pub overall: RankMetrics,
    /// Metrics within each group, in [`group_order`]; empty without groups.
    pub groups: Vec<GroupMetrics>,
}

/// One set of predicted values, one per architecture, aligned with the ground truth.
#[derive(Clone, Copy, Debug)]
pub struct Predictor<'a> {
    /// Its name in reports.
    pub name: &'a str,
    /// Its values; higher means better.
    pub values: &'a [f64],
}

/// A predictor (usually the supernets) and trivial baselines (usually exact params and FLOPs),
/// measured on the same architectures against the same ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankReport {
    /// The top-k percentages used.
    pub percents: Vec<f64>,
    /// The predictor under test.
    pub predictor: PredictorReport,
    /// The baselines, in the order given.
    pub baselines: Vec<PredictorReport>,
}

impl RankReport {
    /// Whether the predictor's τ-b is above the named baseline's, overall (`group = None`) or
    /// within a group. `None` when either τ is undefined or the baseline or group is unknown.
    pub fn beats(&self, baseline: &str, group: Option<&str>) -> Option<bool> {
        let base = self.baselines.iter().find(|b| b.name == baseline)?;
        let tau = |report: &PredictorReport| match group {
            None => report.overall.kendall_tau_b,
            Some(g) => report.groups.iter().find(|m| m.group == g)?.metrics.kendall_tau_b,
        };
        Some(tau(&self.predictor)? > tau(base)?)
    }
}

/// The distinct group labels in report order: numerically when every label is an integer
/// (`"2"` before `"10"`), else lexicographically.
pub fn group_order(groups: &[String]) -> Vec<String> {
    let mut labels: Vec<String> = groups.to_vec();
    labels.sort();
    labels.dedup();
    if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
        labels.sort_by_key(|l| l.parse::<i64>().unwrap_or_default());
    }
    labels
}

fn predictor_report(
    predictor: &Predictor,
    truth: &[f64],
    groups: Option<&[String]>,
    percents: &[f64],
) -> PredictorReport {
    assert_eq!(predictor.values.len(), truth.len(), "predictor '{}' has the wrong length", predictor.name);
    let by_group = groups.map_or_else(Vec::new, |groups| {
        group_order(groups)
            .into_iter()
            .map(|group| {
                let members: Vec<usize> = (0..truth.len()).filter(|&i| groups[i] == group).collect();
                let pred: Vec<f64> = members.iter().map(|&i| predictor.values[i]).collect();
                let true_values: Vec<f64> = members.iter().map(|&i| truth[i]).collect();
                GroupMetrics { group, metrics: rank_metrics(&pred, &true_values, percents) }
            })
            .collect()
    });
    PredictorReport {
        name: predictor.name.to_string(),
        overall: rank_metrics(predictor.values, truth, percents),
        groups: by_group,
    }
}

/// Measures `predictor` and each baseline against `truth`, overall and, when `groups` gives a
/// group label per architecture, within each group.
///
/// # Panics
/// When a slice's length differs from `truth`'s or a value is NaN.
pub fn rank_report(
    truth: &[f64],
    groups: Option<&[String]>,
    predictor: Predictor,
    baselines: &[Predictor],
    percents: &[f64],
) -> RankReport {
    if let Some(groups) = groups {
        assert_eq!(groups.len(), truth.len(), "one group label per architecture");
    }
    RankReport {
        percents: percents.to_vec(),
        predictor: predictor_report(&predictor, truth, groups, percents),
        baselines: baselines.iter().map(|b| predictor_report(b, truth, groups, percents)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::rng::Rng;

    /// τ-b by its definition, over all O(n²) pairs.
    fn brute_force_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
        let n = x.len();
        let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..n {
            for j in i + 1..n {
                let dx = x[i].partial_cmp(&x[j]).unwrap();
                let dy = y[i].partial_cmp(&y[j]).unwrap();
                if dx == Ordering::Equal {
                    tied_x += 1;
                }
                if dy == Ordering::Equal {
                    tied_y += 1;
                }
                if dx != Ordering::Equal && dy != Ordering::Equal {
                    if dx == dy {
                        concordant += 1;
                    } else {
                        discordant += 1;
                    }
                }
            }
        }
        let all = (n * n.saturating_sub(1) / 2) as i64;
        let denominator = ((all - tied_x) as f64) * ((all - tied_y) as f64);
        (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator.sqrt())
    }

    /// Ranks by counting, O(n²): 1 + #smaller + (#equal − 1) / 2.
    fn brute_force_ranks(x: &[f64]) -> Vec<f64> {
        x.iter()
            .map(|&v| {
                let smaller = x.iter().filter(|&&w| w < v).count() as f64;
                let equal = x.iter().filter(|&&w| w == v).count() as f64;
                1.0 + smaller + (equal - 1.0) / 2.0
            })
            .collect()
    }

    fn random_values(rng: &mut Rng, n: usize, distinct: u64) -> Vec<f64> {
        (0..n).map(|_| rng.below(distinct) as f64 * 0.5 - 3.0).collect()
    }

    #[test]
    fn tau_b_matches_brute_force_on_random_data_with_ties() {
        let mut rng = Rng::stream(11, "tau-test");
        for case in 0..400 {
            let n = 2 + rng.below(120) as usize;
            // From heavy ties (2 distinct values) to almost none.
            let (dx, dy) = (1 + rng.below(if case % 3 == 0 { 3 } else { 400 }), 1 + rng.below(60));
            let x = random_values(&mut rng, n, dx);
            let y = random_values(&mut rng, n, dy);
            match (kendall_tau_b(&x, &y), brute_force_tau_b(&x, &y)) {
                (Some(fast), Some(slow)) => assert!((fast - slow).abs() < 1e-12, "case {case}: {fast} vs {slow}"),
                (fast, slow) => assert_eq!(fast, slow, "case {case}: x={x:?} y={y:?}"),
            }
        }
    }

    #[test]
    fn tau_b_is_exact_for_perfect_and_reversed_orders_with_ties() {
        let x = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0];
        let reversed: Vec<f64> = x.iter().map(|v| -v).collect();
        assert_eq!(kendall_tau_b(&x, &x), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &reversed), Some(-1.0));
    }

    #[test]
    fn tau_b_and_rho_are_none_when_undefined() {
        assert_eq!(kendall_tau_b(&[], &[]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
        assert_eq!(kendall_tau_b(&[4.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[7.0; 3]), None);
        assert_eq!(brute_force_tau_b(&[4.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        assert_eq!(spearman_rho(&[1.0], &[2.0]), None);
        assert_eq!(spearman_rho(&[4.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        assert_eq!(spearman_rho(&[1.0, 2.0], &[0.0, 0.0]), None);
    }

    #[test]
    fn tau_b_treats_signed_zeros_as_tied() {
        let with_signs = kendall_tau_b(&[-0.0, -0.0, 0.0, 1.0], &[1.0, 2.0, 1.0, 3.0]);
        let plain = kendall_tau_b(&[0.0, 0.0, 0.0, 1.0], &[1.0, 2.0, 1.0, 3.0]);
        assert_eq!(with_signs, plain);
        assert_eq!(plain, brute_force_tau_b(&[0.0, 0.0, 0.0, 1.0], &[1.0, 2.0, 1.0, 3.0]));
    }

    #[test]
    fn known_small_examples() {
        // scipy.stats.kendalltau documentation example: τ-b = −0.47140452079103173.
        // By hand: 10 pairs, 2 concordant, 6 discordant, 2 tied in x (one of them also in y):
        // (2 − 6) / √((10 − 2)(10 − 1)) = −4 / √72.
        let x = [12.0, 2.0, 1.0, 12.0, 2.0];
        let y = [1.0, 4.0, 7.0, 1.0, 0.0];
        let tau = kendall_tau_b(&x, &y).unwrap();
        assert!((tau - (-4.0 / 72f64.sqrt())).abs() < 1e-15);
        assert!((tau - -0.471_404_520_791_031_7).abs() < 1e-12);
        // scipy.stats.spearmanr documentation example: ρ = 0.8207826816681233.
        // Ranks of y = [5, 6, 7, 8, 7] are [1, 2, 3.5, 5, 3.5]; deviations from the mean 3 give
        // Σdx·dy = 8, Σdx² = 10, Σdy² = 9.5: ρ = 8 / √95.
        let rho = spearman_rho(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!((rho - 8.0 / 95f64.sqrt()).abs() < 1e-15);
        assert!((rho - 0.820_782_681_668_123_3).abs() < 1e-12);
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(average_ranks(&[10.0, 20.0, 20.0, 30.0]), vec![1.0, 2.5, 2.5, 4.0]);
        assert_eq!(average_ranks(&[3.0, 3.0, 3.0]), vec![2.0, 2.0, 2.0]);
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            let (n, distinct) = (1 + rng.below(40) as usize, 1 + rng.below(10));
            let x = random_values(&mut rng, n, distinct);
            assert_eq!(average_ranks(&x), brute_force_ranks(&x));
        }
    }

    #[test]
    fn spearman_matches_the_direct_formula() {
        let mut rng = Rng::new(8);
        for _ in 0..100 {
            let n = 3 + rng.below(50) as usize;
            // Without ties: ρ = 1 − 6 Σd² / (n(n² − 1)).
            let mut x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut y = x.clone();
            rng.shuffle(&mut x);
            rng.shuffle(&mut y);
            let d2: f64 = x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum();
            let direct = 1.0 - 6.0 * d2 / (n as f64 * ((n * n) as f64 - 1.0));
            assert!((spearman_rho(&x, &y).unwrap() - direct).abs() < 1e-12);
            // With ties: the Pearson correlation of counted ranks.
            let a = random_values(&mut rng, n, 4);
            let b = random_values(&mut rng, n, 6);
            let expected = pearson(&brute_force_ranks(&a), &brute_force_ranks(&b));
            match (spearman_rho(&a, &b), expected) {
                (Some(r), Some(e)) => assert!((r - e).abs() < 1e-12),
                (r, e) => assert_eq!(r, e),
            }
        }
    }

    #[test]
    fn top_k_size_is_floor_of_the_percentage() {
        assert_eq!(top_k_size(15_625, 1.0), 156);
        assert_eq!(top_k_size(15_625, 5.0), 781);
        assert_eq!(top_k_size(10, 1.0), 1);
        assert_eq!(top_k_size(0, 5.0), 1);
    }

    #[test]
    fn top_k_of_perfect_constant_and_reversed_predictors() {
        let truth: Vec<f64> = (0..200).map(|i| (i % 37) as f64).collect();
        let k = 10;
        assert_eq!(top_k_overlap(&truth, &truth, k), Some(1.0));
        assert_eq!(precision_at_k(&truth, &truth, k), Some(1.0));
        let reversed: Vec<f64> = truth.iter().map(|v| -v).collect();
        assert_eq!(top_k_overlap(&reversed, &truth, k), Some(0.0));
        assert_eq!(precision_at_k(&reversed, &truth, k), Some(0.0));
        // A constant predictor is at chance level, k/n (the truly top-10 are the ten items with
        // values 36 and 35, five each).
        let constant = vec![1.0; 200];
        assert!((top_k_overlap(&constant, &truth, k).unwrap() - 10.0 / 200.0).abs() < 1e-12);
        assert!((precision_at_k(&constant, &truth, k).unwrap() - 10.0 / 200.0).abs() < 1e-12);
        assert_eq!(top_k_overlap(&truth, &truth, 200), None);
        assert_eq!(precision_at_k(&[1.0], &[1.0], 1), None);
    }

    #[test]
    fn top_k_ties_share_places_for_overlap_and_count_fully_for_precision() {
        // Truth top-2 = items 0 and 1. The predictor is sure of item 0 and ties items 1, 2, 3
        // for the second place.
        let truth = [10.0, 9.0, 1.0, 2.0, 0.0, 3.0];
        let pred = [5.0, 4.0, 4.0, 4.0, 0.0, 1.0];
        // Overlap: item 0 (weight 1) + item 1 (weight 1/3) of 2 true top items.
        assert!((top_k_overlap(&pred, &truth, 2).unwrap() - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
        // Precision: the predictor's block {0, 1, 2, 3} holds 2 truly top-2 items.
        assert_eq!(precision_at_k(&pred, &truth, 2), Some(0.5));
        // Without ties at the cut-off the two agree.
        let sharp = [5.0, 3.0, 4.0, 2.0, 0.0, 1.0];
        assert_eq!(top_k_overlap(&sharp, &truth, 2), Some(0.5));
        assert_eq!(precision_at_k(&sharp, &truth, 2), Some(0.5));
        // A pick tying the true k-th best counts as truly top-k.
        let tied_truth = [10.0, 9.0, 9.0, 1.0];
        assert_eq!(top_k_overlap(&[4.0, 1.0, 3.0, 2.0], &tied_truth, 2), Some(1.0));
    }

    #[test]
    fn overlap_equals_brute_force_expectation_over_tie_breaks() {
        // Enumerate every tie-breaking of the predictor (all orderings of equal values, via all
        // permutations of a tiny instance) and average |P ∩ T| / k.
        let pred = [3.0, 2.0, 2.0, 2.0, 1.0];
        let truth = [5.0, 1.0, 4.0, 3.0, 2.0];
        for k in 1..5 {
            let true_cut = kth_largest(&truth, k);
            let mut total = 0.0;
            let mut count = 0.0;
            let mut perm: Vec<usize> = (0..5).collect();
            permutations(&mut perm, 0, &mut |p| {
                // The ordering must sort pred descending; p lists items best first.
                if p.windows(2).all(|w| pred[w[0]] >= pred[w[1]]) {
                    let found = p[..k].iter().filter(|&&i| truth[i] >= true_cut).count();
                    total += found as f64 / k as f64;
                    count += 1.0;
                }
            });
            assert!((top_k_overlap(&pred, &truth, k).unwrap() - total / count).abs() < 1e-12, "k={k}");
        }
    }

    fn permutations(items: &mut Vec<usize>, at: usize, visit: &mut dyn FnMut(&[usize])) {
        if at == items.len() {
            visit(items);
            return;
        }
        for i in at..items.len() {
            items.swap(at, i);
            permutations(items, at + 1, visit);
            items.swap(at, i);
        }
    }

    #[test]
    fn grouped_report_splits_by_group_in_numeric_order() {
        let truth = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let pred = [1.0, 2.0, 3.0, 6.0, 5.0, 4.0];
        let params = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
        let groups: Vec<String> = ["10", "10", "10", "2", "2", "2"].map(String::from).to_vec();
        let report = rank_report(
            &truth,
            Some(&groups),
            Predictor { name: "supernet", values: &pred },
            &[Predictor { name: "params", values: &params }],
            &DEFAULT_TOP_PERCENTS,
        );
        let labels: Vec<&str> = report.predictor.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(labels, ["2", "10"]);
        assert_eq!(report.predictor.groups[0].metrics.kendall_tau_b, Some(-1.0));
        assert_eq!(report.predictor.groups[1].metrics.kendall_tau_b, Some(1.0));
        assert_eq!(report.predictor.groups[1].metrics.n, 3);
        assert_eq!(report.baselines[0].overall.kendall_tau_b, Some(-1.0));
        assert_eq!(report.beats("params", None), Some(true));
        assert_eq!(report.beats("params", Some("2")), Some(false));
        assert_eq!(report.beats("flops", None), None);
        assert_eq!(report.beats("params", Some("7")), None);
        let json = serde_json::to_string(&report).unwrap();
        let back: RankReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn group_order_is_lexicographic_for_names() {
        let groups: Vec<String> = ["b", "a", "10", "b"].map(String::from).to_vec();
        assert_eq!(group_order(&groups), ["10", "a", "b"]);
    }

    /// Reads `arch`, the given columns of the shared NAS-Bench-201 table.
    fn nb201_columns(names: &[&str]) -> Vec<Vec<f64>> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/nb201/nb201.csv");
        let text = std::fs::read_to_string(path).expect("cannot read ../shared/data/nb201/nb201.csv");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let index: Vec<usize> = names.iter().map(|n| header.iter().position(|h| h == n).unwrap()).collect();
        let mut columns = vec![Vec::new(); names.len()];
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            for (column, &i) in columns.iter_mut().zip(&index) {
                column.push(fields[i].parse::<f64>().unwrap());
            }
        }
        columns
    }

    #[test]
    fn nb201_params_and_flops_already_rank_well() {
        let columns = nb201_columns(&["c10_test_acc", "c10_params_mb", "c10_flops_m"]);
        let (acc, params, flops) = (&columns[0], &columns[1], &columns[2]);
        assert_eq!(acc.len(), 15_625);
        let tau_params = kendall_tau_b(params, acc).unwrap();
        let tau_flops = kendall_tau_b(flops, acc).unwrap();
        // Both are 0.57785 (params and FLOPs order NB201's cells identically), above the
        // paper's SPOS supernet (0.554).
        assert!((tau_params - 0.57785).abs() < 1e-4, "params τ-b {tau_params}");
        assert!((tau_flops - 0.57785).abs() < 1e-4, "flops τ-b {tau_flops}");
        // The fast τ equals the definition on a 2,000-architecture slice (ties in params).
        let slow = brute_force_tau_b(&params[..2000], &acc[..2000]).unwrap();
        assert!((kendall_tau_b(&params[..2000], &acc[..2000]).unwrap() - slow).abs() < 1e-12);
    }
}
