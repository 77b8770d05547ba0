//! Exact count distributions of series spaces by dynamic programming over slots.
//!
//! On a space whose slots lie in series (every input→output path crosses every slot, as in a
//! chain of layers) an additive counting rule gives
//! `count(arch) = base + Σ_slot increment[slot][option]`. [`SeriesCounter`] turns the per-option
//! increments into the exact number of architectures with each count (`u128`, no enumeration)
//! and draws exact-uniform architectures with a given count by walking the table backwards.

use super::SpaceError;
use crate::util::rng::Rng;

/// Largest dynamic-programming table (slots × count values) built.
const SERIES_TABLE_LIMIT: usize = 10_000_000;

/// A uniform integer in `0..n` (`n > 0`) from 64-bit draws.
pub fn below_u128(rng: &mut Rng, n: u128) -> u128 {
    if n <= u64::MAX as u128 {
        return rng.below(n as u64) as u128;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let x = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        if x >= threshold {
            return x % n;
        }
    }
}

/// Exact count distribution of a series space with an additive count, by dynamic programming.
///
/// `count(arch) = base + Σ_slot increments[slot][arch[slot]]` with every increment ≥ 0;
/// `ways[s][r]` is the number of ways slots `s..` add up to `r`.
#[derive(Clone, Debug)]
pub struct SeriesCounter {
    base: u32,
    increments: Vec<Vec<u32>>,
    ways: Vec<Vec<u128>>,
}

impl SeriesCounter {
    /// From the count of a reference architecture and each option's difference to it.
    pub fn new(reference: u32, deltas: &[Vec<i64>]) -> Result<SeriesCounter, SpaceError> {
        let mut base = i64::from(reference);
        let mut increments = Vec::with_capacity(deltas.len());
        for (s, d) in deltas.iter().enumerate() {
            let min = *d.iter().min().ok_or(SpaceError::NoOptions(s))?;
            base += min;
            increments.push(d.iter().map(|&x| u32::try_from(x - min)).collect::<Result<Vec<u32>, _>>()
                .map_err(|_| SpaceError::ContributionRange(s))?);
        }
        let base = u32::try_from(base).map_err(|_| SpaceError::NegativeCount)?;
        let span: u64 = increments.iter().map(|s| u64::from(*s.iter().max().unwrap_or(&0))).sum();
        let width = span as usize + 1;
        if (increments.len() + 1).saturating_mul(width) > SERIES_TABLE_LIMIT {
            return Err(SpaceError::TableTooLarge(span));
        }
        let mut ways = vec![vec![0u128; width]; increments.len() + 1];
        ways[increments.len()][0] = 1;
        for s in (0..increments.len()).rev() {
            let (head, tail) = ways.split_at_mut(s + 1);
            let (row, next) = (&mut head[s], &tail[0]);
            for &increment in &increments[s] {
                let increment = increment as usize;
                for r in increment..width {
                    row[r] += next[r - increment];
                }
            }
        }
        Ok(SeriesCounter { base, increments, ways })
    }

    /// The smallest count any architecture has.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// Per slot and option: the count added above the slot's smallest contribution.
    pub fn increments(&self) -> &[Vec<u32>] {
        &self.increments
    }

    /// The count of an architecture.
    pub fn count(&self, arch: &[u32]) -> u32 {
        self.base + arch.iter().zip(&self.increments).map(|(&o, s)| s[o as usize]).sum::<u32>()
    }

    /// `(count, number of architectures)` for every count that occurs, ascending.
    pub fn distribution(&self) -> Vec<(u32, u128)> {
        self.ways[0]
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0)
            .map(|(r, &w)| (self.base + r as u32, w))
            .collect()
    }

    /// Number of architectures with this count.
    pub fn ways(&self, count: u32) -> u128 {
        count
            .checked_sub(self.base)
            .and_then(|r| self.ways[0].get(r as usize))
            .copied()
            .unwrap_or(0)
    }

    /// A uniformly drawn architecture with `count` (which must occur).
    pub fn sample(&self, count: u32, rng: &mut Rng) -> Vec<u32> {
        self.walk(count, |n| below_u128(rng, n))
    }

    /// The first architecture with `count` in slot order (which must occur).
    pub fn first(&self, count: u32) -> Vec<u32> {
        self.walk(count, |_| 0)
    }

    /// Walks the slots choosing, per slot, the option at position `pick(total)` of the
    /// completions-weighted option list.
    fn walk(&self, count: u32, mut pick: impl FnMut(u128) -> u128) -> Vec<u32> {
        let mut r = (count - self.base) as usize;
        let mut arch = Vec::with_capacity(self.increments.len());
        for (s, increments) in self.increments.iter().enumerate() {
            let mut at = pick(self.ways[s][r]);
            let next = &self.ways[s + 1];
            for (o, &increment) in increments.iter().enumerate() {
                let increment = increment as usize;
                if increment > r {
                    continue;
                }
                let w = next[r - increment];
                if at < w {
                    arch.push(o as u32);
                    r -= increment;
                    break;
                }
                at -= w;
            }
        }
        arch
    }

    /// For each count `base + r` (index `r`): the smallest and largest total of a per-option
    /// quantity `table[slot][option]` over the architectures with that count (`None` where no
    /// architecture has it). Gives exact cost ranges per count when costs add up per slot.
    pub fn extremes(&self, table: &[Vec<u64>]) -> Vec<Option<(u64, u64)>> {
        let width = self.ways[0].len();
        let mut best: Vec<Option<(u64, u64)>> = vec![None; width];
        best[0] = Some((0, 0));
        for s in (0..self.increments.len()).rev() {
            let mut row: Vec<Option<(u64, u64)>> = vec![None; width];
            for (o, &increment) in self.increments[s].iter().enumerate() {
                let increment = increment as usize;
                for r in increment..width {
                    if let Some((lo, hi)) = best[r - increment] {
                        let v = table[s][o];
                        row[r] = Some(match row[r] {
                            Some((a, b)) => (a.min(lo + v), b.max(hi + v)),
                            None => (lo + v, hi + v),
                        });
                    }
                }
            }
            best = row;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_u128_is_in_range_and_covers_it() {
        let mut rng = Rng::new(3);
        let n = (1u128 << 100) + 7;
        let mut high = false;
        for _ in 0..1000 {
            let x = below_u128(&mut rng, n);
            assert!(x < n);
            high |= x > n / 2;
        }
        assert!(high);
        let mut hits = [0u32; 3];
        for _ in 0..3000 {
            hits[below_u128(&mut rng, 3) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (900..1100).contains(&h)), "{hits:?}");
    }

    #[test]
    fn counts_a_small_chain_exactly() {
        // Three slots adding {0, 2}, {0, 2} and {0, 2, 2} to 6.
        let c = SeriesCounter::new(6, &[vec![0, 2], vec![0, 2], vec![0, 2, 2]]).unwrap();
        assert_eq!(c.base(), 6);
        assert_eq!(c.distribution(), vec![(6, 1), (8, 4), (10, 5), (12, 2)]);
        assert_eq!(c.count(&[1, 0, 2]), 10);
        assert_eq!(c.first(10), vec![0, 1, 1]);
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            assert_eq!(c.count(&c.sample(10, &mut rng)), 10);
        }
        assert!(SeriesCounter::new(0, &[vec![0, -1]]).is_err());
        // Cost extremes per count: slot 2's second and third options cost 5 and 1.
        let table = vec![vec![0, 10], vec![0, 20], vec![0, 5, 1]];
        let ext = c.extremes(&table);
        assert_eq!(ext[0], Some((0, 0)));
        assert_eq!(ext[2], Some((1, 20)));
        assert_eq!(ext[6], Some((31, 35)));
        assert_eq!(ext[1], None);
    }
}
