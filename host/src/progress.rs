//! The engine's progress as bars on stderr: one bar per training epoch, one per evaluation.

use std::cell::RefCell;

use fewshot_core::progress::{Job, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws the progress of one job at a time as an indicatif bar on stderr, cleared when the job
/// finishes.
#[derive(Default)]
pub struct Bars {
    bar: RefCell<Option<ProgressBar>>,
}

impl Bars {
    /// No bar yet.
    pub fn new() -> Bars {
        Bars::default()
    }
}

/// The bar of a job: its template, filled like the rest of the bar (`=> `).
fn style(job: Job) -> ProgressStyle {
    let template = match job {
        Job::Epoch { epoch, epochs } => {
            format!("epoch {epoch}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}")
        }
        Job::Evaluation => "evaluating [{bar:30}] {pos}/{len} {per_sec} ETA {eta}".to_string(),
        Job::Scoring { proxy } => format!("scoring {proxy} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}}"),
    };
    ProgressStyle::with_template(&template).expect("valid progress template").progress_chars("=> ")
}

impl Progress for Bars {
    fn start(&self, job: Job, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(style(job));
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(n);
        }
    }

    fn message(&self, text: &str) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.set_message(text.to_string());
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
