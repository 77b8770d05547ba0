//! Speed benchmarks of the pipeline's stages: planning and drawing ([`plan`]), the SBS
//! training step ([`step`]) and zero-cost proxies ([`score`]).

pub mod eval;
pub mod plan;
pub mod score;
pub mod step;
