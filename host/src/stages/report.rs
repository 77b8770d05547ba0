//! The report stage: a run's `report.md` (settings, plan, training, rank correlations, best
//! architectures, the configuration) and its plots under `plots/`.

use anyhow::{anyhow, Context, Result};
use fewshot_core::search::SearchState;
use fewshot_sdk::Arch;

use super::{
    rank::Ranked,
    search::{describe, fitness_label, REFERENCE_ARCHS},
    Run,
};
use crate::{
    config::{defaults, RunConfig},
    estimator::Term,
    report::{
        markdown::{BestArch, Markdown, PlanRow},
        plots::{self, CostPoint},
    },
    run_dir::{PLOTS_DIR, REPORT_FILE},
};

/// Writes `report.md` and its plots.
pub fn write(run: &Run, state: &SearchState, ranked: Option<&Ranked>) -> Result<()> {
    let plots_dir = run.dir.file(PLOTS_DIR);
    std::fs::create_dir_all(&plots_dir).with_context(|| format!("cannot create {}", plots_dir.display()))?;
    let labels: Vec<String> = run.plan.subspaces().iter().map(|s| format!("{} ({})", s.id, s.label)).collect();
    let c = &run.config;
    let mut md = Markdown::new(&format!("fewshot run: {} / {} / {}", c.space_spec(), c.splitter_spec(), c.train.sampler));
    md.key_values("What was run", &settings(c));
    let plan_rows: Vec<PlanRow> = run
        .plan
        .subspaces()
        .iter()
        .map(|s| PlanRow {
            id: s.id as usize,
            label: s.label.clone(),
            size: s.size,
            flops_m: Some(s.flops_m_range),
            params_m: Some(s.params_m_range),
        })
        .collect();
    md.plan(&plan_rows);
    let records = if c.eval.estimator.needs_supernets() { run.dir.training_records()? } else { Vec::new() };
    if c.eval.estimator.needs_supernets() {
        md.training(&records, &labels);
    } else {
        md.heading(2, "Training");
        md.paragraph(&format!("None: the estimator `{}` scores untrained networks.", c.eval.estimator));
    }
    let mut figures = Vec::new();
    if !records.is_empty() {
        plots::training_curves(&plots_dir.join("training.svg"), &records, &labels)?;
        figures.push(("Training curves".to_string(), "plots/training.svg".to_string()));
    }
    if let Some(ranked) = ranked {
        md.rank(&ranked.report, "subspace");
        // A proxy's −inf (a network it cannot score) has no place on the axes.
        let drawn: Vec<_> = ranked.rows.iter().filter(|r| r.2.is_finite()).collect();
        let truth: Vec<f64> = drawn.iter().map(|r| r.1).collect();
        let pred: Vec<f64> = drawn.iter().map(|r| r.2).collect();
        let groups: Vec<String> = drawn.iter().map(|r| r.3.to_string()).collect();
        plots::pred_vs_truth(&plots_dir.join("pred_vs_truth.svg"), &truth, &pred, Some(&groups), &ranked.report, "subspace")?;
        figures.push(("Predicted vs ground-truth accuracy".to_string(), "plots/pred_vs_truth.svg".to_string()));
    }
    let truth_table = run.truth_table()?;
    let mut best = Vec::new();
    for row in state.ranked().into_iter().take(5) {
        let (text, info) = describe(run, row)?;
        best.push(BestArch {
            truth: truth_table.as_ref().map(|t| t.values(&text)).unwrap_or_default(),
            arch: text,
            subspace: run.plan.subspaces()[info.subspace as usize].label.clone(),
            fitness: row.fitness,
            flops_m: Some(info.flops_m),
            params_m: Some(info.params_m),
        });
    }
    let fitness = fitness_label(&c.eval.estimator);
    md.best(&format!("Best architectures ({} search by {})", c.search.strategy, c.eval.estimator), &fitness, &best);
    let mut points = Vec::new();
    let mut by_subspace: Vec<(String, Vec<f64>)> = labels.iter().map(|l| (l.clone(), Vec::new())).collect();
    for row in state.history() {
        let info = run.plan.info(&Arch::new(row.arch.clone())).map_err(|e| anyhow!(e))?;
        points.push(CostPoint { cost: info.flops_m, accuracy: row.fitness, group: labels[info.subspace as usize].clone() });
        by_subspace[info.subspace as usize].1.push(row.fitness);
    }
    if !points.is_empty() {
        let title = format!("Searched candidates: {fitness} vs FLOPs");
        plots::accuracy_vs_cost(&plots_dir.join("pareto.svg"), &title, "FLOPs (M, full width)", &points)?;
        figures.push((format!("{fitness} vs FLOPs with the Pareto front"), "plots/pareto.svg".to_string()));
        by_subspace.retain(|(_, v)| !v.is_empty());
        let title = format!("{fitness} of searched candidates per subspace");
        plots::group_histograms(&plots_dir.join("subspace_accuracy.svg"), &title, &fitness, &by_subspace, 12)?;
        figures.push((format!("{fitness} per subspace"), "plots/subspace_accuracy.svg".to_string()));
    }
    md.plots(&figures);
    if let Some(section) = super::retrain::report_section(run.dir.path()) {
        md.paragraph(&section);
    }
    md.heading(2, "Configuration");
    md.paragraph("The resolved `config.toml` of this run (`fewshot run --config` takes it back):");
    md.code("toml", &c.to_toml()?);
    md.write(&run.dir.file(REPORT_FILE))
}

/// How the run estimated architectures, in words.
fn estimator_text(c: &RunConfig) -> String {
    let e = &c.eval.estimator;
    let term = |t: &Term| match t {
        Term::Supernet => "the accuracy of the architecture's subspace supernet".to_string(),
        Term::Proxy(p) => format!(
            "the zero-cost proxy {p} of the untrained network (batch {}, channel divisor {})",
            c.proxy.batch, c.proxy.channel_divisor
        ),
    };
    let terms: Vec<String> = e.terms().iter().map(|t| format!("{}: {}", t.name(), term(t))).collect();
    let mut text = format!("`{e}` — {}", terms.join("; "));
    if e.is_ensemble() {
        text += &format!(
            "; combined by the sum of log-ranks (among the ranked architectures; in the search, against a seeded reference sample of {REFERENCE_ARCHS})"
        );
    }
    if !e.needs_supernets() {
        text += "; training-free (no supernet trained)";
    }
    if e.to_string() == defaults::ESTIMATOR {
        text += ". Chosen as fewshot's default: the best ranking measured within a CPU hour on NB201 / CIFAR-10 (Kendall τ 0.76 over 1,000 architectures against 0.58 for counting parameters, in about 18 minutes on 2 cores; supernets trained for up to seven minutes ranked below parameters; docs/study/README.md); `--estimator supernet` runs the EFS-NAS protocol";
    }
    text
}

/// The settings table of the report.
fn settings(c: &RunConfig) -> Vec<(String, String)> {
    let data = match &c.data.path {
        Some(p) => p.display().to_string(),
        None => format!("built-in generated images ({} train / {} test)", c.data.builtin_train, c.data.builtin_test),
    };
    let images = |n: Option<usize>| n.map_or("all".to_string(), |n| n.to_string());
    let mut rows = vec![
        ("space".to_string(), c.space_spec()),
        ("counting rule".to_string(), c.split.rule.clone()),
        ("splitter".to_string(), c.splitter_spec()),
        ("sampler".to_string(), c.train.sampler.clone()),
        ("seed / device".to_string(), format!("{} / {}", c.seed, c.device)),
        ("data".to_string(), data),
        (
            "images (train / valid / test)".to_string(),
            format!("{} / {} / {}", images(c.data.train_images), images(c.data.valid_images), images(c.data.test_images)),
        ),
        (
            "training".to_string(),
            if c.eval.estimator.needs_supernets() {
                format!(
                    "{} epochs, batch {}, channel divisor {}, lr {} ({} cosine to {}), momentum {}, weight decay {}",
                    c.train.epochs, c.train.batch_size, c.train.channel_divisor, c.train.lr, c.train.schedule, c.train.lr_min, c.train.momentum, c.train.weight_decay
                )
            } else {
                "none (the estimator is training-free)".to_string()
            },
        ),
        (
            "search".to_string(),
            format!("{}, population {}, generations {}", c.search.strategy, c.search.population, c.search.generations),
        ),
        ("estimator".to_string(), estimator_text(c)),
    ];
    if let Some(t) = &c.rank.truth {
        let n = if c.rank.archs == 0 { "all".to_string() } else { c.rank.archs.to_string() };
        rows.push(("ranking".to_string(), format!("{n} architectures of {} ({}), {} split", t.display(), c.rank.truth_column, c.rank.split)));
    }
    rows
}
