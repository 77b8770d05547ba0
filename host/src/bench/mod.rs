//! Speed benchmarks of the pipeline's stages: planning and drawing ([`plan`]) and the SBS
//! training step ([`step`]).

pub mod plan;
pub mod step;
