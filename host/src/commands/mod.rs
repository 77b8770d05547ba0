//! One module per subcommand.

pub mod plugins;
pub mod rank;
