//! Progress of the engine's long jobs (a training epoch, an evaluation), reported to whatever the
//! caller wants to show: the engine says how far it is, the caller draws (the `fewshot` CLI draws
//! bars on stderr), or nothing is shown ([`NoProgress`]).

/// What a reported job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Training epoch `epoch` (from 1) of `epochs`, counted in steps.
    Epoch {
        /// The epoch, from 1.
        epoch: usize,
        /// Epochs of the whole run.
        epochs: usize,
    },
    /// Estimating the accuracy of architectures, counted in architectures.
    Evaluation,
    /// Scoring architectures with a zero-cost proxy, counted in architectures.
    Scoring {
        /// The proxy's name.
        proxy: &'static str,
    },
}

/// Receives the progress of one job at a time: [`Progress::start`], then [`Progress::advance`]
/// (and [`Progress::message`]) as units are done, then [`Progress::finish`].
pub trait Progress {
    /// A job of `total` units starts.
    fn start(&self, job: Job, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// A short status of the running job (e.g. the running loss); ignored by default.
    fn message(&self, _text: &str) {}
    /// The job is over.
    fn finish(&self);
}

/// Reports nowhere: for tests, library users and runs without a progress display.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _job: Job, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}
