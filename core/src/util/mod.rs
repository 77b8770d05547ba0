//! Small pieces every layer uses: the seeded random generator, the content hash and atomic files.

pub mod files;
pub mod hash;
pub mod rng;
