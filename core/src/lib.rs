//! # fewshot-core
//!
//! The engine of fewshot, generic over burn's `Backend` and knowing no particular search space.
//! Its layers, each depending only on the ones before it:
//! - [`util`]: the seeded generator, the content hash, atomic files;
//! - [`space`]: what a space's graph implies (exact costs, liveness, count series, enumeration);
//! - [`plan`]: the split of a space into subspaces, their sizes and uniform draws;
//! - [`data`]: datasets, the split protocol, augmentation and batches;
//! - [`engine`]: backends, kernels and supernets built from the graph;
//! - [`train`]: the SBS step, the optimizer, checkpoints and the training loop;
//! - [`eval`]: subnet accuracy estimates;
//! - [`proxy`]: zero-cost proxies (NASWOT, AZ-NAS, SynFlow, SNIP) of untrained subnets;
//! - [`search`]: evolutionary and random search;
//! - [`metrics`]: rank correlations against a ground truth.
//!
//! [`progress`] is how [`train`] and [`eval`] report the progress of their long jobs to the caller.
//! Each layer names its failures with its own error type ([`space::SpaceError`], [`plan::PlanError`],
//! [`data::DataError`], [`engine::EngineError`], [`train::TrainError`], [`eval::EvalError`],
//! [`search::SearchError`]); a layer's error wraps those of the layers it calls.

#![warn(missing_docs)]

pub mod data;
pub mod engine;
pub mod eval;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod proxy;
pub mod search;
pub mod space;
pub mod train;
pub mod util;
