//! The score stage: zero-cost proxy scores of architectures ([`fewshot_core::proxy`]), in
//! parallel over architectures on the CPU, resumably through a CSV file and the settings file
//! beside it.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::{
    data::{load_splits, DataConfig, Dataset},
    engine::{
        backend::{run_on, BackendJob, EngineBackend},
        supernet::{NormMode, SupernetLayout},
    },
    plan::Plan,
    progress::{Job, NoProgress, Progress},
    proxy::{scores, Proxy, ProxyConfig, Scorer},
    util::files::write_atomic,
};
use fewshot_sdk::Arch;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{config::RunConfig, io::csv, progress::Bars};

/// Architectures scored between two writes of the output.
const CHUNK: usize = 64;

/// Everything a score depends on besides the architecture; stored beside a scores file so that
/// a resumed scoring refuses to mix settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreSettings {
    /// The proxy's name.
    pub proxy: String,
    /// The space's plugin spec (with activation and resolution).
    pub space: String,
    /// The images: a path, or `builtin`.
    pub data: String,
    /// Seed of the train/validation halves the batch is drawn from.
    pub split_seed: u64,
    /// The stratified subset of the training half, if any (it holds the batch's images).
    pub train_images: Option<usize>,
    /// Images in the scoring batch.
    pub batch: usize,
    /// Channel divisor of the scored networks (1 = full width).
    pub channel_divisor: f64,
    /// Seed of the weights, the batch and the proxies' draws.
    pub seed: u64,
}

impl ScoreSettings {
    /// The settings of `proxy` under `config` (its `[proxy]` section, seed, space and data).
    pub fn new(proxy: Proxy, config: &RunConfig) -> ScoreSettings {
        ScoreSettings {
            proxy: proxy.name().to_string(),
            space: config.space_spec(),
            data: config.data.path.as_ref().map_or_else(|| "builtin".to_string(), |p| p.display().to_string()),
            split_seed: config.data.split_seed,
            train_images: config.data.train_images,
            batch: config.proxy.batch,
            channel_divisor: config.proxy.channel_divisor,
            seed: config.seed,
        }
    }
}

/// Scores of a set of architectures: the proxy's values per architecture and the final score
/// ([`scores`]: for AZ-NAS the log-rank aggregate over this set).
pub struct Scored {
    /// The proxy.
    pub proxy: Proxy,
    /// Architectures (text form), in the order asked for.
    pub archs: Vec<String>,
    /// [`Proxy::columns`] values per architecture.
    pub values: Vec<Vec<f64>>,
    /// The score per architecture.
    pub scores: Vec<f64>,
    /// Seconds spent scoring the architectures not already stored (after the network was
    /// built and the batch loaded).
    pub seconds: f64,
}

impl Scored {
    /// The CSV: `arch,score` and, for proxies with several components, one column each.
    pub fn csv_rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut headers = vec!["arch".to_string(), "score".to_string()];
        let multi = self.proxy.columns().len() > 1;
        if multi {
            headers.extend(self.proxy.columns().iter().map(|c| c.to_string()));
        }
        let rows = self
            .archs
            .iter()
            .zip(&self.values)
            .zip(&self.scores)
            .map(|((arch, values), score)| {
                let mut row = vec![arch.clone(), score.to_string()];
                if multi {
                    row.extend(values.iter().map(|v| v.to_string()));
                }
                row
            })
            .collect();
        (headers, rows)
    }
}

/// Scores `archs` of `plan`'s space with `proxy` under `config` (device, data, seed, `[proxy]`).
/// With `store`, rows already in that CSV (written with the same settings, see
/// [`ScoreSettings`]) are reused and the file is rewritten every [`CHUNK`] architectures, so an
/// interrupted scoring resumes where it stopped.
pub fn score(
    config: &RunConfig,
    plan: &Plan,
    proxy: Proxy,
    archs: &[Arch],
    store: Option<&Path>,
    progress: bool,
) -> Result<Scored> {
    let settings = ScoreSettings::new(proxy, config);
    let texts: Vec<String> = archs.iter().map(|a| plan.format(a).map_err(|e| anyhow!("{e}"))).collect::<Result<_>>()?;
    let mut known = match store {
        Some(path) => read_store(path, &settings)?,
        None => HashMap::new(),
    };
    let mut seconds = 0.0;
    // Each architecture not stored yet, once.
    let mut seen = std::collections::HashSet::new();
    let missing: Vec<usize> = (0..archs.len()).filter(|&i| !known.contains_key(&texts[i]) && seen.insert(&texts[i])).collect();
    if !missing.is_empty() {
        let (layout, images) = inputs(config, plan)?;
        if archs.len() > missing.len() {
            eprintln!("scoring {} architectures with {proxy} ({} already done)", missing.len(), archs.len() - missing.len());
        }
        let job = ScoreJob {
            proxy,
            layout,
            images,
            config: proxy_config(config),
            todo: missing.iter().map(|&i| (texts[i].clone(), archs[i].as_slice().to_vec())).collect(),
            progress,
            sink: |done: &[(String, Vec<f64>)]| -> Result<(), String> {
                known.extend(done.iter().cloned());
                match store {
                    Some(path) => write_store(path, &settings, &known, proxy).map_err(|e| format!("{e:#}")),
                    None => Ok(()),
                }
            },
        };
        seconds = run_on(config.device, job).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))?;
    }
    let values: Vec<Vec<f64>> = texts.iter().map(|t| known[t].clone()).collect();
    let scores = scores(proxy, &values);
    let scored = Scored { proxy, archs: texts, values, scores, seconds };
    if let Some(path) = store {
        // The finished file: the architectures asked for, in that order.
        let (headers, rows) = scored.csv_rows();
        csv::write(path, &headers, &rows)?;
    }
    Ok(scored)
}

/// The scored networks (the space's supernet at the `[proxy]` channel divisor) and the training
/// half the batch is drawn from.
fn inputs(config: &RunConfig, plan: &Plan) -> Result<(Arc<SupernetLayout>, Arc<Dataset>)> {
    let layout = SupernetLayout::new(plan.supernet_graph(), plan.slots(), config.proxy.channel_divisor, NormMode::Plain)
        .map_err(|e| anyhow!("cannot build the scored networks at channel divisor {}: {e}", config.proxy.channel_divisor))?;
    let layout = Arc::new(layout);
    // The batch comes from the training half; no validation or test subset is needed.
    let data = DataConfig { valid_images: None, test_images: None, ..config.data_config() };
    let splits = load_splits(&data, layout.input_dims(), layout.classes()).map_err(anyhow::Error::msg)?;
    Ok((layout, splits.train))
}

fn proxy_config(config: &RunConfig) -> ProxyConfig {
    ProxyConfig { batch: config.proxy.batch, seed: config.seed }
}

/// Scores one architecture's choices: its [`Proxy::columns`] values.
pub type ScoreFn = Box<dyn Fn(&[u32]) -> Result<Vec<f64>, String> + Send + Sync>;

/// A scorer of `plan`'s space under `config` that lives on, for architectures met one at a time
/// (the same networks and batch as [`score`], so the same values).
pub fn score_fn(config: &RunConfig, plan: &Plan, proxy: Proxy) -> Result<ScoreFn> {
    struct Make {
        proxy: Proxy,
        layout: Arc<SupernetLayout>,
        images: Arc<Dataset>,
        config: ProxyConfig,
    }
    impl BackendJob for Make {
        type Output = Result<ScoreFn, String>;
        fn run<B: EngineBackend>(self, device: B::Device) -> Result<ScoreFn, String> {
            let scorer = Scorer::<B>::new(self.proxy, self.layout, &self.images, self.config, &device).map_err(|e| e.to_string())?;
            Ok(Box::new(move |arch: &[u32]| scorer.measure(arch).map_err(|e| e.to_string())))
        }
    }
    let (layout, images) = inputs(config, plan)?;
    let make = Make { proxy, layout, images, config: proxy_config(config) };
    run_on(config.device, make).map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))
}

/// The settings file beside a scores file.
fn settings_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".settings.json");
    path.with_file_name(name)
}

/// The rows of an existing scores file written with `settings` (none when there is no file).
fn read_store(path: &Path, settings: &ScoreSettings) -> Result<HashMap<String, Vec<f64>>> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let side = settings_path(path);
    let stored: ScoreSettings = match std::fs::read_to_string(&side) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("{} is malformed (remove it and {})", side.display(), path.display()))?,
        Err(_) => bail!(
            "{} exists but was not written by `fewshot score` ({} is missing); remove it or choose another --output",
            path.display(),
            side.display()
        ),
    };
    if &stored != settings {
        bail!(
            "{} holds scores with other settings ({}); remove it or choose another --output",
            path.display(),
            difference(&stored, settings)
        );
    }
    let table = csv::Csv::read(path)?;
    let proxy: Proxy = settings.proxy.parse().map_err(|e| anyhow!("{e}"))?;
    let arch = table.require("arch")?;
    let columns: Vec<usize> = if proxy.columns().len() > 1 {
        proxy.columns().iter().map(|c| table.require(c)).collect::<Result<_>>()?
    } else {
        vec![table.require("score")?]
    };
    let mut rows = HashMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let values = columns.iter().map(|&c| table.score(i, c)).collect::<Result<Vec<f64>>>()?;
        rows.insert(row.cells[arch].clone(), values);
    }
    Ok(rows)
}

/// The first setting that differs, for the message.
fn difference(stored: &ScoreSettings, asked: &ScoreSettings) -> String {
    let pairs = [
        ("proxy", stored.proxy.clone(), asked.proxy.clone()),
        ("space", stored.space.clone(), asked.space.clone()),
        ("data", stored.data.clone(), asked.data.clone()),
        ("split seed", stored.split_seed.to_string(), asked.split_seed.to_string()),
        ("training images", format!("{:?}", stored.train_images), format!("{:?}", asked.train_images)),
        ("batch", stored.batch.to_string(), asked.batch.to_string()),
        ("channel divisor", stored.channel_divisor.to_string(), asked.channel_divisor.to_string()),
        ("seed", stored.seed.to_string(), asked.seed.to_string()),
    ];
    pairs
        .iter()
        .find(|(_, a, b)| a != b)
        .map_or_else(String::new, |(name, a, b)| format!("{name} {a}, asked for {b}"))
}

/// Writes every known row (sorted by architecture) and the settings, each atomically.
fn write_store(path: &Path, settings: &ScoreSettings, known: &HashMap<String, Vec<f64>>, proxy: Proxy) -> Result<()> {
    let mut archs: Vec<&String> = known.keys().collect();
    archs.sort();
    let values: Vec<Vec<f64>> = archs.iter().map(|a| known[*a].clone()).collect();
    let archs = archs.into_iter().cloned().collect();
    let scored = Scored { proxy, archs, scores: scores(proxy, &values), values, seconds: 0.0 };
    let (headers, rows) = scored.csv_rows();
    let json = serde_json::to_string_pretty(settings)?;
    write_atomic(&settings_path(path), json.as_bytes()).with_context(|| format!("cannot write {}", settings_path(path).display()))?;
    csv::write(path, &headers, &rows)
}

struct ScoreJob<S> {
    proxy: Proxy,
    layout: Arc<SupernetLayout>,
    images: Arc<Dataset>,
    config: ProxyConfig,
    /// (text, choices) of the architectures to score.
    todo: Vec<(String, Vec<u32>)>,
    progress: bool,
    /// Receives every chunk of results as it is done.
    sink: S,
}

impl<S> BackendJob for ScoreJob<S>
where
    S: FnMut(&[(String, Vec<f64>)]) -> Result<(), String>,
{
    type Output = Result<f64, String>;

    /// Scores every architecture; returns the seconds the scoring took.
    fn run<B: EngineBackend>(mut self, device: B::Device) -> Result<f64, String> {
        let scorer = Scorer::<B>::new(self.proxy, self.layout, &self.images, self.config, &device).map_err(|e| e.to_string())?;
        let bars = Bars::new();
        let progress: &dyn Progress = if self.progress { &bars } else { &NoProgress };
        progress.start(Job::Scoring { proxy: self.proxy.name() }, self.todo.len() as u64);
        let start = Instant::now();
        let mut scoring = 0.0;
        for chunk in self.todo.chunks(CHUNK) {
            let done: Vec<(String, Vec<f64>)> = chunk
                .par_iter()
                .map(|(text, arch)| scorer.measure(arch).map(|v| (text.clone(), v)).map_err(|e| format!("{text}: {e}")))
                .collect::<Result<_, String>>()?;
            scoring = start.elapsed().as_secs_f64();
            (self.sink)(&done)?;
            progress.advance(done.len() as u64);
        }
        progress.finish();
        Ok(scoring)
    }
}
