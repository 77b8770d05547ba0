//! The compute engine: backends and devices, the kernels behind each op family, and supernets
//! (parameter layout, storage and the forward pass) built from a space's graph.

pub mod backend;
pub mod kernels;
pub mod supernet;
