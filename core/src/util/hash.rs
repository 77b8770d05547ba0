//! FNV-1a, the one content hash of fewshot: cache keys, checksums, layout fingerprints and the
//! names of random streams, plus the SplitMix64 mixer for keys. Not cryptographic; stable
//! across platforms and releases.

use rand_xoshiro::{
    rand_core::{RngCore, SeedableRng},
    SplitMix64,
};

/// An FNV-1a (64-bit) hasher.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    const OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01B3;

    /// A hasher in the initial state.
    pub const fn new() -> Self {
        Fnv1a(Self::OFFSET)
    }

    /// Feeds bytes, one at a time.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds bytes eight at a time as little-endian words (the last one zero-padded): the same
    /// construction over words, eight times fewer steps, for checksums of large buffers.
    pub fn write_words(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(Self::PRIME);
        }
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// A well-mixed 64-bit value of `x`: one step of SplitMix64 from state `x` (the `rand_xoshiro`
/// generator), for turning a hash or seed into a uniformly spread key.
pub fn mix64(x: u64) -> u64 {
    SplitMix64::seed_from_u64(x).next_u64()
}

/// The FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_F739_67E8);
        // SplitMix64 from state 0 (Vigna's reference implementation).
        assert_eq!(mix64(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn words_hash_like_bytes_in_eight_byte_steps() {
        let mut h = Fnv1a::new();
        h.write_words(&[1, 0, 0, 0, 0, 0, 0, 0, 2]);
        let expected =
            ((Fnv1a::OFFSET ^ 1).wrapping_mul(Fnv1a::PRIME) ^ 2).wrapping_mul(Fnv1a::PRIME);
        assert_eq!(h.finish(), expected);
    }
}
