//! What a space's graph implies, before any training: exact costs, which nodes are live, the
//! distribution of the nonlinear count over slots in series, and enumeration of the space.

pub mod cost;
pub(crate) mod liveness;
pub mod odometer;
pub mod series;

/// What a space's graph or counts do not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// A channel divisor that is not a positive number.
    #[error("the channel divisor must be a positive number, got {0}")]
    Divisor(f64),
    /// The graph is malformed (the SDK's own check says why).
    #[error("{0}")]
    Graph(String),
    /// One node of the graph is unusable.
    #[error("node {index} `{name}`: {reason}")]
    Node {
        /// The node's index.
        index: usize,
        /// The node's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A slot without options in the count decomposition.
    #[error("slot {0} has no options")]
    NoOptions(usize),
    /// A slot whose count contributions do not fit the table.
    #[error("slot {0}: count contributions out of range")]
    ContributionRange(usize),
    /// Per-slot contributions that add up to a negative count.
    #[error("the additive count decomposition gives a negative count")]
    NegativeCount,
    /// Counts spread over too many values for the dynamic-programming table.
    #[error("counts span {0} values, too many for the dynamic-programming table")]
    TableTooLarge(u64),
}

/// Checks a channel divisor (1 = full width, 2 = half width, …).
pub fn check_divisor(divisor: f64) -> Result<(), SpaceError> {
    if divisor.is_finite() && divisor > 0.0 {
        Ok(())
    } else {
        Err(SpaceError::Divisor(divisor))
    }
}
