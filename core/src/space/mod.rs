//! What a space's graph implies, before any training: exact costs, which nodes are live, the
//! distribution of the nonlinear count over slots in series, and enumeration of the space.

pub mod cost;
pub(crate) mod liveness;
pub mod odometer;
pub mod series;
