//! The built-in plugin set of fewshot, written only against `fewshot-sdk` and registered with
//! `inventory`: search spaces, counting rules, splitters and samplers.

#![warn(missing_docs)]

pub mod nb201;
pub mod samplers;
pub mod mobilenet;
pub mod rules;
pub mod splitters;
