//! Enumeration of a product space: every architecture in odometer order, and its size.

/// Moves `choices` to the next architecture in odometer order (the last slot fastest); false
/// after the last one (when it wraps around to all zeros).
pub fn next_arch(radices: &[u32], choices: &mut [u32]) -> bool {
    for s in (0..radices.len()).rev() {
        choices[s] += 1;
        if choices[s] < radices[s] {
            return true;
        }
        choices[s] = 0;
    }
    false
}

/// Every architecture of a product space, in order with the last slot fastest.
pub struct Odometer {
    radices: Vec<u32>,
    current: Vec<u32>,
    started: bool,
    finished: bool,
}

impl Odometer {
    /// Starts at the all-zero architecture.
    pub fn new(radices: &[u32]) -> Odometer {
        Odometer { radices: radices.to_vec(), current: vec![0; radices.len()], started: false, finished: radices.contains(&0) }
    }

    /// The next architecture, or `None` after the last (it lends its buffer, so this is not an
    /// `Iterator`).
    pub fn advance(&mut self) -> Option<&[u32]> {
        if self.finished {
            return None;
        }
        if !self.started {
            self.started = true;
            return Some(&self.current);
        }
        if next_arch(&self.radices, &mut self.current) {
            Some(&self.current)
        } else {
            self.finished = true;
            None
        }
    }
}

/// Number of architectures of a product space, if it fits `u128`.
pub fn product_size(radices: &[u32]) -> Option<u128> {
    radices.iter().try_fold(1u128, |acc, &r| acc.checked_mul(u128::from(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odometer_visits_every_architecture_once() {
        let mut odometer = Odometer::new(&[2, 3]);
        let mut seen = Vec::new();
        while let Some(a) = odometer.advance() {
            seen.push(a.to_vec());
        }
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        assert!(odometer.advance().is_none());
        assert!(Odometer::new(&[2, 0]).advance().is_none());
        assert_eq!(product_size(&[6; 6]).unwrap() * product_size(&[7; 15]).unwrap(), 221_502_229_807_900_608);
        assert!(product_size(&[u32::MAX; 5]).is_none());
    }
}
