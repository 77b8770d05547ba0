//! The run directory: its files, the configuration stored in it (and the first difference to
//! another one), and the records the stages leave there. The stages decide what goes in; this
//! module alone knows the names and formats.
//!
//! Files of a run directory (all written atomically):
//! - `config.toml`: the resolved [`RunConfig`];
//! - `plan.json`: the subspaces (sizes, count and cost ranges);
//! - `checkpoint.safetensors`, `metrics.jsonl`, `train_config.json`: training (fewshot-core);
//! - `predictions.csv`, `rank.json`: ranking against a ground-truth table;
//! - `search_state.json`, `search.csv`, `best.json`: the search;
//! - `report.md`, `plots/*.svg`: the report.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::{
    search::Strategy,
    train::{EpochMetrics, CHECKPOINT_FILE, METRICS_FILE},
    util::files::write_atomic,
};
use serde::{Deserialize, Serialize};

use crate::{config::RunConfig, io::csv};

/// The resolved configuration.
pub const CONFIG_FILE: &str = "config.toml";
/// The split plan.
pub const PLAN_FILE: &str = "plan.json";
/// Accuracy estimates of the ranking stage.
pub const PREDICTIONS_FILE: &str = "predictions.csv";
/// Rank correlations of the ranking stage.
pub const RANK_FILE: &str = "rank.json";
/// The search state (resumable).
pub const SEARCH_STATE_FILE: &str = "search_state.json";
/// Every scored candidate.
pub const SEARCH_CSV: &str = "search.csv";
/// The best candidate.
pub const BEST_FILE: &str = "best.json";
/// The report.
pub const REPORT_FILE: &str = "report.md";
/// The report's plots.
pub const PLOTS_DIR: &str = "plots";

/// The header of `search.csv`.
pub const SEARCH_CSV_HEADERS: [&str; 6] = ["generation", "arch", "subspace", "accuracy", "flops_m", "params_m"];

/// `best.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BestRecord {
    /// The architecture.
    pub arch: String,
    /// Its subspace.
    pub subspace: u32,
    /// The subspace's label.
    pub subspace_label: String,
    /// Supernet-estimated accuracy (%) on the validation split.
    pub accuracy: f64,
    /// FLOPs in millions at full width.
    pub flops_m: f64,
    /// Parameters in millions at full width.
    pub params_m: f64,
    /// The counting rule's count.
    pub count: u32,
    /// Generation that found it.
    pub generation: usize,
    /// `evolution` or `random`.
    pub strategy: Strategy,
    /// Candidates scored in all.
    pub scored: usize,
}

/// A run directory (which need not exist yet).
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: &Path) -> RunDir {
        RunDir { path: path.to_path_buf() }
    }

    /// `runs/<space>-<splitter>-<sampler>-seed<seed>` (with the activation after the space when
    /// one is set), plugin parameters left out.
    pub fn default_path(config: &RunConfig) -> PathBuf {
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

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of a file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Refuses `config` when the directory already holds a run with another configuration,
    /// naming the first difference.
    pub fn refuse_other_config(&self, config: &RunConfig) -> Result<()> {
        let path = self.file(CONFIG_FILE);
        if path.exists() {
            let stored = RunConfig::read(&path)?;
            if stored != *config {
                bail!(
                    "{} already holds a run with another configuration ({}); resume it with its stored settings (--resume without options that change them), or choose a new directory",
                    self.path.display(),
                    first_difference(&stored, config)?
                );
            }
        }
        Ok(())
    }

    /// Creates the directory if needed and writes `config.toml`.
    pub fn save_config(&self, config: &RunConfig) -> Result<()> {
        fs::create_dir_all(&self.path).with_context(|| format!("cannot create run directory {}", self.path.display()))?;
        let path = self.file(CONFIG_FILE);
        write_atomic(&path, config.to_toml()?.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The stored configuration, checked; an error when the directory holds no run.
    pub fn read_config(&self) -> Result<RunConfig> {
        let path = self.file(CONFIG_FILE);
        if !path.exists() {
            bail!("{} is not a fewshot run directory (it has no {CONFIG_FILE})", self.path.display());
        }
        let config = RunConfig::read(&path)?;
        config.validate().with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    /// Whether training has written a checkpoint.
    pub fn has_checkpoint(&self) -> bool {
        self.file(CHECKPOINT_FILE).exists()
    }

    /// Writes `value` as pretty JSON to the file `name`.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let json = serde_json::to_string_pretty(value)?;
        write_atomic(&self.file(name), json.as_bytes()).with_context(|| format!("cannot write {name}"))
    }

    /// The training records of `metrics.jsonl`.
    pub fn training_records(&self) -> Result<Vec<EpochMetrics>> {
        read_metrics_jsonl(&self.file(METRICS_FILE))
    }

    /// `best.json`.
    pub fn read_best(&self) -> Result<BestRecord> {
        let path = self.file(BEST_FILE);
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
    }

    /// Writes `best.json`.
    pub fn write_best(&self, best: &BestRecord) -> Result<()> {
        self.write_json(BEST_FILE, best)
    }

    /// Writes `search.csv`: rows under [`SEARCH_CSV_HEADERS`].
    pub fn write_search_csv(&self, rows: &[Vec<String>]) -> Result<()> {
        csv::write(&self.file(SEARCH_CSV), &SEARCH_CSV_HEADERS, rows)
    }

    /// The estimates `predictions.csv` holds (none when there is no such file).
    pub fn read_predictions(&self) -> Result<Vec<(String, u32, f64)>> {
        let path = self.file(PREDICTIONS_FILE);
        if path.exists() {
            csv::read_estimates(&path)
        } else {
            Ok(Vec::new())
        }
    }

    /// Writes `predictions.csv`.
    pub fn write_predictions(&self, estimates: &[(String, u32, f64)]) -> Result<()> {
        let path = self.file(PREDICTIONS_FILE);
        write_atomic(&path, csv::estimates_csv(estimates)?.as_bytes()).context("cannot write predictions.csv")
    }

    /// Removes the saved search state, if any.
    pub fn remove_search_state(&self) -> Result<()> {
        let state = self.file(SEARCH_STATE_FILE);
        if state.exists() {
            fs::remove_file(&state).with_context(|| format!("cannot remove {}", state.display()))?;
        }
        Ok(())
    }
}

/// Parses `metrics.jsonl` text (one record per non-empty line, as the trainer writes them);
/// `origin` names the source in errors.
pub fn parse_metrics_jsonl(text: &str, origin: &str) -> Result<Vec<EpochMetrics>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{origin}: line {}: not a training metrics record", i + 1))
        })
        .collect()
}

/// Reads a run's `metrics.jsonl`.
pub fn read_metrics_jsonl(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_metrics_jsonl(&text, &path.display().to_string())
}

/// The first key whose value differs between two configurations, as `key: old → new`.
fn first_difference(old: &RunConfig, new: &RunConfig) -> Result<String> {
    let flatten = |c: &RunConfig| -> Result<HashMap<String, String>> {
        let value = toml::Value::try_from(c).map_err(|e| anyhow!("{e}"))?;
        let mut out = HashMap::new();
        flatten_toml("", &value, &mut out);
        Ok(out)
    };
    let (a, b) = (flatten(old)?, flatten(new)?);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let none = "(unset)".to_string();
    Ok(keys
        .into_iter()
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {} → {}", a.get(k).unwrap_or(&none), b.get(k).unwrap_or(&none)))
        .unwrap_or_else(|| "they differ".to_string()))
}

fn flatten_toml(prefix: &str, value: &toml::Value, out: &mut HashMap<String, String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten_toml(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use fewshot_core::train::SupernetEpoch;

    use super::*;

    #[test]
    fn metrics_jsonl_reads_the_trainers_records_and_names_bad_lines() {
        let record = |epoch: usize, loss: f64| EpochMetrics {
            epoch,
            lr: 0.1,
            steps: 10,
            images: 640,
            images_per_s: 100.0,
            seconds: 6.4,
            loss,
            accuracy: 20.5,
            supernets: vec![SupernetEpoch { subspace: 0, steps: 10, loss, accuracy: 20.5 }],
        };
        let records = vec![record(1, 2.1), record(2, 1.5)];
        let lines: Vec<String> = records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
        let text = format!("{}\n\n{}\n", lines[0], lines[1]);
        assert_eq!(parse_metrics_jsonl(&text, "m.jsonl").unwrap(), records);
        let err = parse_metrics_jsonl("{\"epoch\":0}\n{oops\n", "m.jsonl").unwrap_err();
        assert_eq!(err.to_string(), "m.jsonl: line 1: not a training metrics record");

        let dir = std::env::temp_dir().join(format!("fewshot-jsonl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("metrics.jsonl"), &text).unwrap();
        assert_eq!(read_metrics_jsonl(&dir.join("metrics.jsonl")).unwrap(), records);
        let missing = read_metrics_jsonl(&dir.join("missing.jsonl")).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read ") && missing.ends_with("missing.jsonl"), "{missing}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_difference_is_named_by_key() {
        let old = RunConfig::default();
        let mut new = old.clone();
        new.train.epochs = 7;
        assert_eq!(first_difference(&old, &new).unwrap(), "train.epochs: 3 → 7");
    }
}
