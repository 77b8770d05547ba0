//! The entry points, one module per subcommand: each parses its arguments, calls the stages
//! and prints. No command calls another; what two commands share lives below them ([`crate::cli`]
//! for arguments, [`crate::stages`] for work).

pub mod bench;
pub mod compare;
pub mod costs;
pub mod eval;
pub mod plugins;
pub mod rank;
pub mod retrain;
pub mod run;
pub mod score;
pub mod search;
pub mod split;
pub mod train;
