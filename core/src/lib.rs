//! # fewshot-core
//!
//! The engine of fewshot, generic over burn's `Backend` and knowing no particular search space:
//! exact costs and split planning from a space's graph IR, supernets built from the graph,
//! training, evaluation, evolutionary search, rank metrics and datasets.

pub mod rng;
pub mod cost;
pub mod plan;
pub mod series;
mod liveness;
pub mod metrics;
pub mod files;
pub mod search;
pub mod backend;
pub mod supernet;
pub mod optim;
pub mod step;
pub mod kernels;
pub mod data;
pub mod checkpoint;
pub mod train;
pub mod evaluate;
