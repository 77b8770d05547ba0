//! One module per subcommand.

pub mod plugins;
pub mod bench;
pub mod bench_step;
