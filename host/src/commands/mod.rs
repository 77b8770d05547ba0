//! One module per subcommand.

pub mod plugins;
pub mod bench;
pub mod bench_plan;
pub mod costs;
pub mod pipeline;
pub mod split;
pub mod table;
pub mod rank;
pub mod bench_step;
pub mod compare;
pub mod eval;
pub mod run;
pub mod run_options;
pub mod search;
pub mod train;
