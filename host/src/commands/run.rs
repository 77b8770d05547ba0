//! `fewshot run`: the whole pipeline in one run directory — plan, train, rank (with a truth
//! table), search, report. Every stage is resumable: running the same command again continues
//! where it stopped (training from its last checkpoint, ranking from the predictions written so
//! far, the search from its last generation).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use fewshot_core::{
    util::files::write_atomic,
    metrics::{rank_report, Predictor, RankReport},
    util::rng::Rng,
    search::SearchState,
};
use fewshot_sdk::Arch;
use serde::Serialize;

use super::{run_options::RunOptions, split::read_truth, train::resumed_config};
use crate::{
    config::RunConfig,
    output::print,
    registry::Registry,
    report::{
        markdown::{BestArch, Markdown, PlanRow},
        plots::{self, CostPoint},
        rank_table, rank_verdicts, text_table,
    },
    workflow::{BestRecord, EvalSplit, Run, BEST_FILE},
};

/// Arguments of `fewshot run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub options: RunOptions,
    /// Run directory (default: runs/<space>-<splitter>-<sampler>-seed<seed>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out with its stored configuration.
    #[arg(long, requires = "out")]
    pub resume: bool,
}

/// Predictions of the ranking stage.
pub const PREDICTIONS_FILE: &str = "predictions.csv";
/// Rank correlations of the ranking stage.
pub const RANK_FILE: &str = "rank.json";
/// The report.
pub const REPORT_FILE: &str = "report.md";
/// Top-k percentages of the rank metrics.
const TOP_PERCENTS: [f64; 2] = [1.0, 5.0];
/// Architectures evaluated between two writes of the predictions.
const PREDICTION_CHUNK: usize = 100;

/// What a finished run produced.
pub struct RunSummary {
    /// The run directory.
    pub dir: PathBuf,
    /// The best architecture of the search.
    pub best: BestRecord,
    /// Its ground-truth values, when a truth table is set.
    pub best_truth: Vec<(String, f64)>,
    /// Rank correlations, when a truth table is set.
    pub rank: Option<RankReport>,
    /// Last epoch's mean training loss over all supernets.
    pub final_loss: Option<f64>,
}

/// Runs `fewshot run`.
pub fn run(args: &RunArgs, registry: Arc<Registry>) -> Result<()> {
    let config = match (&args.out, args.resume) {
        (Some(out), true) => resumed_config(out, &args.options)?,
        _ => args.options.resolve()?,
    };
    let out = args.out.clone().unwrap_or_else(|| default_dir(&config));
    let summary = pipeline(&out, config, registry)?;
    print(&format!("{}\n", summary_text(&summary)))?;
    Ok(())
}

/// `runs/<space>-<splitter>-<sampler>-seed<seed>`, with plugin parameters left out.
pub fn default_dir(config: &RunConfig) -> PathBuf {
    let name = |spec: &str| spec.split(':').next().unwrap_or(spec).to_string();
    let mut parts = vec![name(&config.space.spec)];
    if let Some(a) = &config.space.activation {
        parts.push(a.clone());
    }
    parts.push(name(&config.split.splitter));
    parts.push(name(&config.train.sampler));
    parts.push(format!("seed{}", config.seed));
    Path::new("runs").join(parts.join("-"))
}

/// Runs every stage in `dir`.
pub fn pipeline(dir: &Path, config: RunConfig, registry: Arc<Registry>) -> Result<RunSummary> {
    let mut stages = StageLog::new(if config.rank.truth.is_some() { 5 } else { 4 });
    let mut announce = |what: &'static str| stages.begin(what);
    let run = Run::create(dir, config, registry)?;
    announce("plan");
    let plan = run.write_plan()?;
    eprint!("{}", super::split::table(&plan));
    announce("train");
    run.train(run.has_checkpoint(), None, true)?;
    eprintln!("{}", run.training_summary()?);
    let ranked = if run.config.rank.truth.is_some() {
        announce("rank");
        let ranked = rank(&run)?;
        let (headers, rows) = rank_table(&ranked.report, "subspace");
        eprintln!("{}", text_table(&headers, &rows));
        for verdict in rank_verdicts(&ranked.report, "subspace") {
            eprintln!("  {verdict}");
        }
        Some(ranked)
    } else {
        None
    };
    announce("search");
    let state = run.search(true)?;
    eprintln!("{}", run.search_summary(&state, 5)?);
    announce("report");
    write_report(&run, &state, ranked.as_ref())?;
    stages.finish();
    let best: BestRecord = serde_json::from_str(&std::fs::read_to_string(run.file(BEST_FILE))?)?;
    let best_truth = match run.truth_table()? {
        Some(t) => t.values(&best.arch),
        None => Vec::new(),
    };
    let final_loss = run.training_records()?.last().map(|r| {
        r.supernets.iter().map(|s| s.loss).sum::<f64>() / r.supernets.len().max(1) as f64
    });
    Ok(RunSummary { dir: dir.to_path_buf(), best, best_truth, rank: ranked.map(|r| r.report), final_loss })
}

/// Announces the pipeline's stages on stderr, each with the time the one before it took.
struct StageLog {
    stages: usize,
    done: usize,
    current: Option<(&'static str, Instant)>,
}

impl StageLog {
    fn new(stages: usize) -> StageLog {
        StageLog { stages, done: 0, current: None }
    }

    /// Ends the current stage and starts `what`.
    fn begin(&mut self, what: &'static str) {
        self.finish();
        eprintln!("[{}/{}] {what}", self.done + 1, self.stages);
        self.current = Some((what, Instant::now()));
    }

    /// Ends the current stage, printing how long it took.
    fn finish(&mut self) {
        if let Some((what, start)) = self.current.take() {
            self.done += 1;
            eprintln!("[{}/{}] {what}: done in {:.1} s", self.done, self.stages, start.elapsed().as_secs_f64());
        }
    }
}

/// The closing lines `fewshot run` prints.
pub fn summary_text(s: &RunSummary) -> String {
    let mut out = format!(
        "best architecture: {}\n  subspace {} ({}), supernet accuracy {:.2}%, {:.2} MFLOPs, {:.3} M params\n",
        s.best.arch, s.best.subspace, s.best.subspace_label, s.best.accuracy, s.best.flops_m, s.best.params_m
    );
    if !s.best_truth.is_empty() {
        let values: Vec<String> = s.best_truth.iter().map(|(c, v)| format!("{c} {v:.2}")).collect();
        out.push_str(&format!("  ground truth: {}\n", values.join(", ")));
    }
    if let Some(r) = &s.rank {
        let tau = |name: &str| {
            r.baselines
                .iter()
                .find(|b| b.name == name)
                .and_then(|b| b.overall.kendall_tau_b)
                .map_or("n/a".to_string(), |t| format!("{t:.3}"))
        };
        out.push_str(&format!(
            "  Kendall tau over {} architectures: supernets {}, params {}, flops {}\n",
            r.predictor.overall.n,
            r.predictor.overall.kendall_tau_b.map_or("n/a".to_string(), |t| format!("{t:.3}")),
            tau("params"),
            tau("flops")
        ));
    }
    out.push_str(&format!("report: {}", s.dir.join(REPORT_FILE).display()));
    out
}

/// The ranking stage's result.
pub struct Ranked {
    /// Rank correlations of the supernets and of the exact-cost baselines.
    pub report: RankReport,
    /// Ranked architectures (text form), truth, prediction, subspace.
    pub rows: Vec<(String, f64, f64, u32)>,
}

/// Estimates the accuracy of the ranked architectures (those of the truth table, all or a
/// uniform sample of `rank.archs`) and measures rank correlations against the truth, for the
/// supernets and for the exact params / FLOPs.
fn rank(run: &Run) -> Result<Ranked> {
    let c = &run.config.rank;
    let path = c.truth.as_deref().expect("rank stage runs with a truth table");
    let mut rows = read_truth(path, &c.truth_column)?;
    if c.archs > 0 && c.archs < rows.len() {
        let mut rng = Rng::stream(run.config.seed, "rank");
        rng.shuffle(&mut rows);
        rows.truncate(c.archs);
        rows.sort_by_key(|r| r.0);
    }
    let mut archs = Vec::with_capacity(rows.len());
    for (line, text, _) in &rows {
        archs.push(run.plan.parse(text).map_err(|e| anyhow!("truth table {} line {line}: {e}", path.display()))?);
    }
    let split: EvalSplit = c.split.parse().map_err(|e: String| anyhow!(e))?;
    let predictions = predict(run, &archs, split)?;

    let mut truth = Vec::new();
    let mut pred = Vec::new();
    let mut groups = Vec::new();
    let mut params = Vec::new();
    let mut flops = Vec::new();
    let mut table = Vec::new();
    for ((_, text, value), arch) in rows.iter().zip(&archs) {
        let info = run.plan.info(arch).map_err(|e| anyhow!("{text}: {e}"))?;
        let estimate = predictions[text.as_str()];
        truth.push(*value);
        pred.push(estimate);
        groups.push(info.subspace.to_string());
        params.push(info.params_m);
        flops.push(info.flops_m);
        table.push((text.clone(), *value, estimate, info.subspace));
    }
    let baselines = [Predictor { name: "params", values: &params }, Predictor { name: "flops", values: &flops }];
    let report = rank_report(&truth, Some(&groups), Predictor { name: "supernet", values: &pred }, &baselines, &TOP_PERCENTS);
    let json = serde_json::to_string_pretty(&RankJson {
        truth: path.display().to_string(),
        truth_column: &c.truth_column,
        split: &c.split,
        report: &report,
    })?;
    write_atomic(&run.file(RANK_FILE), json.as_bytes()).context("cannot write rank.json")?;
    Ok(Ranked { report, rows: table })
}

#[derive(Serialize)]
struct RankJson<'a> {
    truth: String,
    truth_column: &'a str,
    split: &'a str,
    #[serde(flatten)]
    report: &'a RankReport,
}

/// Accuracy estimates of `archs`, reusing `predictions.csv` rows written by an earlier,
/// interrupted ranking; new estimates are written every [`PREDICTION_CHUNK`] architectures.
fn predict(run: &Run, archs: &[Arch], split: EvalSplit) -> Result<HashMap<String, f64>> {
    let path = run.file(PREDICTIONS_FILE);
    let mut known: Vec<(String, u32, f64)> = if path.exists() { read_predictions(&path)? } else { Vec::new() };
    let have: HashMap<String, f64> = known.iter().map(|(a, _, v)| (a.clone(), *v)).collect();
    let mut missing = Vec::new();
    for arch in archs {
        if !have.contains_key(&run.text(arch)?) {
            missing.push(arch.clone());
        }
    }
    if !missing.is_empty() {
        eprintln!("estimating {} architectures on the {} split ({} already done)", missing.len(), run.config.rank.split, archs.len() - missing.len());
    }
    for chunk in missing.chunks(PREDICTION_CHUNK) {
        for e in run.evaluate(chunk, split, true)? {
            known.push((run.text(&e.arch)?, e.subspace, e.accuracy));
        }
        let mut csv = String::from("arch,subspace,accuracy\n");
        for (arch, subspace, accuracy) in &known {
            csv.push_str(&format!("{arch},{subspace},{accuracy}\n"));
        }
        write_atomic(&path, csv.as_bytes()).context("cannot write predictions.csv")?;
    }
    Ok(known.into_iter().map(|(a, _, v)| (a, v)).collect())
}

fn read_predictions(path: &Path) -> Result<Vec<(String, u32, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some("arch,subspace,accuracy") {
        bail!("{} is not a predictions file of fewshot (remove it to estimate again)", path.display());
    }
    lines
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let bad = || anyhow!("{} line {}: malformed (remove the file to estimate again)", path.display(), i + 2);
            let mut fields = line.rsplitn(3, ',');
            let accuracy = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let subspace = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let arch = fields.next().ok_or_else(bad)?;
            Ok((arch.to_string(), subspace, accuracy))
        })
        .collect()
}

/// Writes `report.md` and its plots.
fn write_report(run: &Run, state: &SearchState, ranked: Option<&Ranked>) -> Result<()> {
    let plots_dir = run.file("plots");
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
    let records = run.training_records()?;
    md.training(&records, &labels);
    let mut figures = Vec::new();
    if !records.is_empty() {
        plots::training_curves(&plots_dir.join("training.svg"), &records, &labels)?;
        figures.push(("Training curves".to_string(), "plots/training.svg".to_string()));
    }
    if let Some(ranked) = ranked {
        md.rank(&ranked.report, "subspace");
        let truth: Vec<f64> = ranked.rows.iter().map(|r| r.1).collect();
        let pred: Vec<f64> = ranked.rows.iter().map(|r| r.2).collect();
        let groups: Vec<String> = ranked.rows.iter().map(|r| r.3.to_string()).collect();
        plots::pred_vs_truth(&plots_dir.join("pred_vs_truth.svg"), &truth, &pred, Some(&groups), &ranked.report, "subspace")?;
        figures.push(("Predicted vs ground-truth accuracy".to_string(), "plots/pred_vs_truth.svg".to_string()));
    }
    let truth_table = run.truth_table()?;
    let mut best = Vec::new();
    for row in state.ranked().into_iter().take(5) {
        let arch = Arch::new(row.arch.clone());
        let info = run.plan.info(&arch).map_err(|e| anyhow!(e))?;
        let text = run.text(&arch)?;
        best.push(BestArch {
            truth: truth_table.as_ref().map(|t| t.values(&text)).unwrap_or_default(),
            arch: text,
            subspace: run.plan.subspaces()[info.subspace as usize].label.clone(),
            accuracy: row.fitness,
            flops_m: Some(info.flops_m),
            params_m: Some(info.params_m),
        });
    }
    md.best(&format!("Best architectures ({} search, validation split)", c.search.strategy), &best);
    let mut points = Vec::new();
    let mut by_subspace: Vec<(String, Vec<f64>)> = labels.iter().map(|l| (l.clone(), Vec::new())).collect();
    for row in state.history() {
        let info = run.plan.info(&Arch::new(row.arch.clone())).map_err(|e| anyhow!(e))?;
        points.push(CostPoint { cost: info.flops_m, accuracy: row.fitness, group: labels[info.subspace as usize].clone() });
        by_subspace[info.subspace as usize].1.push(row.fitness);
    }
    if !points.is_empty() {
        plots::accuracy_vs_cost(&plots_dir.join("pareto.svg"), "Searched candidates: supernet accuracy vs FLOPs", "FLOPs (M, full width)", &points)?;
        figures.push(("Accuracy vs FLOPs with the Pareto front".to_string(), "plots/pareto.svg".to_string()));
        by_subspace.retain(|(_, v)| !v.is_empty());
        plots::group_histograms(&plots_dir.join("subspace_accuracy.svg"), "Supernet accuracy of searched candidates per subspace", "accuracy (%)", &by_subspace, 12)?;
        figures.push(("Accuracy per subspace".to_string(), "plots/subspace_accuracy.svg".to_string()));
    }
    md.plots(&figures);
    md.heading(2, "Configuration");
    md.paragraph("The resolved `config.toml` of this run (`fewshot run --config` takes it back):");
    md.code("toml", &c.to_toml()?);
    md.write(&run.file(REPORT_FILE))
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
            format!(
                "{} epochs, batch {}, channel divisor {}, lr {} ({} cosine to {}), momentum {}, weight decay {}",
                c.train.epochs, c.train.batch_size, c.train.channel_divisor, c.train.lr, c.train.schedule, c.train.lr_min, c.train.momentum, c.train.weight_decay
            ),
        ),
        (
            "search".to_string(),
            format!("{}, population {}, generations {}", c.search.strategy, c.search.population, c.search.generations),
        ),
    ];
    if let Some(t) = &c.rank.truth {
        let n = if c.rank.archs == 0 { "all".to_string() } else { c.rank.archs.to_string() };
        rows.push(("ranking".to_string(), format!("{n} architectures of {} ({}), {} split", t.display(), c.rank.truth_column, c.rank.split)));
    }
    rows
}
