//! A small markdown builder for `report.md`, with the sections a run reports: settings, plan,
//! training summary, best architectures, rank correlations and plots.
//!
//! ```text
//! let mut md = Markdown::new("fewshot run");
//! md.key_values("What was run", &settings).plan(&plan_rows).training(&records, &labels)
//!   .best("Best architectures", &best).rank(&report, "subspace").plots(&plots);
//! md.write(&run_dir.join("report.md"))?;
//! ```

use std::path::Path;

use anyhow::{Context, Result};
use fewshot_core::{metrics::RankReport, train::EpochMetrics, util::files::write_atomic};

use super::{format_metric, rank_table, rank_verdicts};

/// Markdown text under construction.
#[derive(Clone, Debug, Default)]
pub struct Markdown {
    text: String,
}

/// Escapes a table cell: `|` becomes `\|` (also inside code spans, as GitHub markdown wants) and
/// line breaks become spaces.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `text` as an inline code span (e.g. an architecture string).
pub fn code_span(text: &str) -> String {
    let fence = if text.contains('`') { "``" } else { "`" };
    format!("{fence}{text}{fence}")
}

fn range(r: Option<(f64, f64)>) -> String {
    r.map_or_else(|| "n/a".into(), |(lo, hi)| format!("{lo:.2} – {hi:.2}"))
}

fn optional(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

/// One subspace of the plan.
#[derive(Clone, Debug)]
pub struct PlanRow {
    /// Subspace id.
    pub id: usize,
    /// Its label (e.g. the counts it holds: `0-1`).
    pub label: String,
    /// Number of architectures.
    pub size: u128,
    /// Range of MFLOPs at full width, if known.
    pub flops_m: Option<(f64, f64)>,
    /// Range of parameters in millions at full width, if known.
    pub params_m: Option<(f64, f64)>,
}

/// One of the best architectures found.
#[derive(Clone, Debug)]
pub struct BestArch {
    /// Canonical string of the architecture.
    pub arch: String,
    /// Its subspace label.
    pub subspace: String,
    /// Its search fitness (the supernet's accuracy estimate, or the estimator's score).
    pub fitness: f64,
    /// MFLOPs at full width, if known.
    pub flops_m: Option<f64>,
    /// Parameters in millions at full width, if known.
    pub params_m: Option<f64>,
    /// Ground-truth values looked up for it, as (column, value), e.g. `("c10_test_acc", 94.37)`.
    pub truth: Vec<(String, f64)>,
}

impl Markdown {
    /// A document starting with a level-1 title.
    pub fn new(title: &str) -> Markdown {
        Markdown { text: format!("# {title}\n\n") }
    }

    /// A heading of `level` (1–6).
    pub fn heading(&mut self, level: usize, text: &str) -> &mut Markdown {
        self.text += &format!("{} {text}\n\n", "#".repeat(level.clamp(1, 6)));
        self
    }

    /// A paragraph.
    pub fn paragraph(&mut self, text: &str) -> &mut Markdown {
        self.text += text.trim_end();
        self.text += "\n\n";
        self
    }

    /// A bullet list.
    pub fn bullets<S: AsRef<str>>(&mut self, items: impl IntoIterator<Item = S>) -> &mut Markdown {
        for item in items {
            self.text += &format!("- {}\n", item.as_ref().replace('\n', " "));
        }
        self.text += "\n";
        self
    }

    /// A table; cells are escaped. Rows shorter than the header are padded with empty cells.
    pub fn table<H: AsRef<str>>(&mut self, headers: &[H], rows: &[Vec<String>]) -> &mut Markdown {
        let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
        self.text += &line(headers.iter().map(|h| cell(h.as_ref())).collect());
        self.text += &line(headers.iter().map(|_| "---".to_string()).collect());
        for row in rows {
            let cells = (0..headers.len()).map(|i| row.get(i).map_or_else(String::new, |c| cell(c))).collect();
            self.text += &line(cells);
        }
        self.text += "\n";
        self
    }

    /// A fenced code block.
    pub fn code(&mut self, language: &str, text: &str) -> &mut Markdown {
        self.text += &format!("```{language}\n{}\n```\n\n", text.trim_end());
        self
    }

    /// An image (e.g. a plot), `target` relative to the report.
    pub fn image(&mut self, alt: &str, target: &str) -> &mut Markdown {
        self.text += &format!("![{alt}]({})\n\n", target.replace(' ', "%20"));
        self
    }

    /// "What was run": a section of (setting, value) rows.
    pub fn key_values(&mut self, title: &str, pairs: &[(String, String)]) -> &mut Markdown {
        self.heading(2, title);
        let rows: Vec<Vec<String>> = pairs.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect();
        self.table(&["setting", "value"], &rows)
    }

    /// The plan: one row per subspace.
    pub fn plan(&mut self, rows: &[PlanRow]) -> &mut Markdown {
        self.heading(2, "Plan");
        let total: u128 = rows.iter().map(|r| r.size).sum();
        self.paragraph(&format!("{} subspaces, one supernet each, {total} architectures in all.", rows.len()));
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.id.to_string(), r.label.clone(), r.size.to_string(), range(r.flops_m), range(r.params_m)])
            .collect();
        self.table(&["subspace", "label", "architectures", "MFLOPs", "params (M)"], &table)
    }

    /// Per-supernet training summary from `metrics.jsonl` records: epochs, steps, last and best
    /// accuracy, last loss. `labels` names the supernets (missing: "supernet i").
    pub fn training(&mut self, records: &[EpochMetrics], labels: &[String]) -> &mut Markdown {
        self.heading(2, "Training");
        let supernets = records.iter().map(|r| r.supernets.len()).max().unwrap_or(0);
        if supernets == 0 {
            return self.paragraph("No training metrics were recorded.");
        }
        let rows: Vec<Vec<String>> = (0..supernets)
            .map(|k| {
                let epochs: Vec<_> = records.iter().filter_map(|r| r.supernets.get(k)).collect();
                let trained: Vec<_> = epochs.iter().filter(|s| s.steps > 0).collect();
                let (last_loss, last_accuracy, best) = match trained.last() {
                    Some(last) => {
                        let best = trained.iter().map(|s| s.accuracy).fold(f64::NEG_INFINITY, f64::max);
                        (format!("{:.4}", last.loss), format!("{:.2}", last.accuracy), format!("{best:.2}"))
                    }
                    None => ("-".into(), "-".into(), "-".into()),
                };
                vec![
                    labels.get(k).cloned().unwrap_or_else(|| format!("supernet {k}")),
                    epochs.len().to_string(),
                    epochs.iter().map(|s| s.steps).sum::<u64>().to_string(),
                    last_loss,
                    last_accuracy,
                    best,
                ]
            })
            .collect();
        self.table(&["supernet", "epochs", "steps", "last loss", "last accuracy (%)", "best accuracy (%)"], &rows)
    }

    /// The best architectures found, best first, with any ground truth looked up for them.
    pub fn best(&mut self, title: &str, fitness: &str, archs: &[BestArch]) -> &mut Markdown {
        self.heading(2, title);
        let mut truth_columns: Vec<String> = Vec::new();
        for (name, _) in archs.iter().flat_map(|a| &a.truth) {
            if !truth_columns.contains(name) {
                truth_columns.push(name.clone());
            }
        }
        let mut headers: Vec<String> =
            ["rank", "architecture", "subspace", fitness, "MFLOPs", "params (M)"].map(String::from).to_vec();
        headers.extend(truth_columns.iter().cloned());
        // Accuracies in percent to 2 decimals; estimator scores (log-ranks, proxy values) to 4.
        let decimals = if fitness.starts_with("accuracy") { 2 } else { 4 };
        let rows: Vec<Vec<String>> = archs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut row = vec![
                    (i + 1).to_string(),
                    code_span(&a.arch),
                    a.subspace.clone(),
                    format!("{:.*}", decimals, a.fitness),
                    optional(a.flops_m, 2),
                    optional(a.params_m, 3),
                ];
                row.extend(truth_columns.iter().map(|c| {
                    optional(a.truth.iter().find(|(name, _)| name == c).map(|(_, v)| *v), 2)
                }));
                row
            })
            .collect();
        self.table(&headers, &rows)
    }

    /// Rank correlations of the supernets against the ground truth, with the trivial predictors
    /// and a verdict per scope.
    pub fn rank(&mut self, report: &RankReport, group_name: &str) -> &mut Markdown {
        self.heading(2, "Rank correlation");
        self.paragraph(&format!(
            "Kendall τ-b and Spearman ρ of the {} predictions against the ground truth, on all \
             architectures and within each {group_name}; overlap@k is the share of the true top-k \
             found in the predicted top-k, precision@k the share of everything the predictor ranks \
             at or above its k-th value (ties included) that is truly top-k. Overall τ-b: {}.",
            report.predictor.name,
            format_metric(report.predictor.overall.kendall_tau_b),
        ));
        let (headers, rows) = rank_table(report, group_name);
        self.table(&headers, &rows);
        if report.baselines.is_empty() {
            self.paragraph("No trivial predictors were available to compare with.")
        } else {
            self.bullets(rank_verdicts(report, group_name))
        }
    }

    /// Links to plots: (title, path relative to the report).
    pub fn plots(&mut self, plots: &[(String, String)]) -> &mut Markdown {
        self.heading(2, "Plots");
        for (title, target) in plots {
            self.heading(3, title);
            self.image(title, target);
        }
        self
    }

    /// The text so far.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Writes the document atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use fewshot_core::metrics::{rank_report, Predictor};

    use super::*;
    use crate::report::test_epoch;

    #[test]
    fn builds_every_section_with_escaped_cells() {
        let records = vec![test_epoch(0, &[(2.0, 30.0, 5); 2]), test_epoch(1, &[(1.5, 45.0, 5), (1.7, 28.0, 5)])];
        let truth = [1.0, 2.0, 3.0, 4.0];
        let report = rank_report(
            &truth,
            None,
            Predictor { name: "supernet", values: &[1.0, 2.0, 4.0, 3.0] },
            &[Predictor { name: "params", values: &[4.0, 3.0, 2.0, 1.0] }],
            &[25.0],
        );
        let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|";
        let mut md = Markdown::new("fewshot run");
        md.key_values("What was run", &[("space".into(), "nb201".into()), ("seed".into(), "0".into())])
            .plan(&[
                PlanRow { id: 0, label: "0-1".into(), size: 9105, flops_m: Some((7.78, 184.0)), params_m: Some((0.073, 1.5)) },
                PlanRow { id: 1, label: "2".into(), size: 5520, flops_m: None, params_m: None },
            ])
            .training(&records, &["0-1".into()])
            .best(
                "Best architectures",
                "accuracy (%)",
                &[BestArch {
                    arch: arch.into(),
                    subspace: "0".into(),
                    fitness: 71.25,
                    flops_m: Some(113.95),
                    params_m: Some(0.802),
                    truth: vec![("c10_test_acc".into(), 93.66)],
                }],
            )
            .rank(&report, "subspace")
            .plots(&[("Accuracy vs FLOPs".into(), "plots/accuracy vs flops.svg".into())]);
        let text = md.as_str();
        assert!(text.starts_with("# fewshot run\n\n## What was run\n\n| setting | value |\n| --- | --- |\n| space | nb201 |\n"));
        assert!(text.contains("2 subspaces, one supernet each, 14625 architectures in all."));
        assert!(text.contains("| 0 | 0-1 | 9105 | 7.78 – 184.00 | 0.07 – 1.50 |"));
        assert!(text.contains("| 1 | 2 | 5520 | n/a | n/a |"));
        assert!(text.contains("| 0-1 | 2 | 10 | 1.5000 | 45.00 | 45.00 |"));
        assert!(text.contains("| supernet 1 | 2 | 10 | 1.7000 | 28.00 | 30.00 |"));
        assert!(text.contains("| 1 | `\\|nor_conv_3x3~0\\|+\\|nor_conv_3x3~0\\|avg_pool_3x3~1\\|` | 0 | 71.25 | 113.95 | 0.802 | 93.66 |"));
        assert!(text.contains("| all | supernet | 4 | 0.6667 |"));
        assert!(text.contains("- all: supernet τ-b 0.6667 beats params (-1.0000)"));
        assert!(text.contains("![Accuracy vs FLOPs](plots/accuracy%20vs%20flops.svg)"));

        let dir = std::env::temp_dir().join(format!("fewshot-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        md.write(&dir.join("report.md")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("report.md")).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_training_and_missing_baselines_are_said_plainly() {
        let report = rank_report(&[1.0, 2.0], None, Predictor { name: "supernet", values: &[2.0, 1.0] }, &[], &[50.0]);
        let mut md = Markdown::new("t");
        md.training(&[], &[]).rank(&report, "subspace").code("toml", "seed = 0\n");
        assert!(md.as_str().contains("No training metrics were recorded."));
        assert!(md.as_str().contains("No trivial predictors were available to compare with."));
        assert!(md.as_str().ends_with("```toml\nseed = 0\n```\n\n"));
        assert_eq!(code_span("a`b"), "``a`b``");
    }
}
