//! `fewshot score`: zero-cost proxy scores of architectures, without training.
//!
//! ```text
//! fewshot score --proxy naswot|az|synflow|snip (--arch TEXT | --archs FILE | --all)
//!     [--batch B] [--channel-divisor C] [--output FILE] [--space S] [--data PATH] ...
//! ```
//! Writes `arch,score` (AZ-NAS adds its four components); `fewshot rank --pred FILE
//! --pred-column score --truth TRUTH` then ranks the scores against a ground truth.

use std::path::PathBuf;

use anyhow::Result;
use clap::{builder::PossibleValuesParser, builder::TypedValueParser, Args};
use fewshot_core::{engine::backend::Device, proxy::Proxy};

use crate::{
    cli::arch_args::ArchArgs,
    config::RunConfig,
    io::{csv, output::print},
    plugin_host::registry::Registry,
    stages::{plan::plan, score::score},
};

/// The `--proxy` values, listed by `--help`.
fn proxy_parser() -> impl TypedValueParser<Value = Proxy> {
    PossibleValuesParser::new(Proxy::ALL.map(|p| p.name())).try_map(|s| s.parse::<Proxy>())
}

/// Arguments of `fewshot score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The proxy.
    #[arg(long, value_parser = proxy_parser())]
    pub proxy: Proxy,
    #[command(flatten)]
    pub which: ArchArgs,
    /// Images in the scoring batch [default: 64].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// Channel divisor of the scored networks [default: 1, full width].
    #[arg(long, value_name = "C")]
    pub channel_divisor: Option<f64>,
    /// Write the CSV here (resumable: rows already there with the same settings are kept)
    /// instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// TOML configuration to take the space, data, seed and `[proxy]` settings from.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Search space: `name` or `name:key=value,...` (e.g. `nb201:C=16,N=5`, `mobilenet`)
    /// [default: the configuration's, nb201].
    #[arg(long)]
    pub space: Option<String>,
    /// Activation of the space (relu, relu6, tanh, gelu, sigmoid, silu).
    #[arg(long, value_name = "KIND")]
    pub activation: Option<String>,
    /// Images (the batch comes from the training half): a CIFAR-10 binary folder or an
    /// ImageFolder tree (default: built-in generated images).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Resize images to N×N on load; the space's input resolution follows.
    #[arg(long, value_name = "N")]
    pub resolution: Option<usize>,
    /// Seed of the weights, the batch and the proxies' random draws.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute device: cpu, reference, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<Device>,
}

impl ScoreArgs {
    /// The configuration file (or the defaults) with these options applied.
    fn config(&self) -> Result<RunConfig> {
        let mut c = match &self.config {
            Some(path) => RunConfig::read(path)?,
            None => RunConfig::default(),
        };
        if let Some(space) = &self.space {
            c.space.spec.clone_from(space);
        }
        if self.activation.is_some() {
            c.space.activation.clone_from(&self.activation);
        }
        if self.data.is_some() {
            c.data.path.clone_from(&self.data);
        }
        if self.resolution.is_some() {
            c.data.resolution = self.resolution;
        }
        c.seed = self.seed.unwrap_or(c.seed);
        c.device = self.device.unwrap_or(c.device);
        c.proxy.batch = self.batch.unwrap_or(c.proxy.batch);
        c.proxy.channel_divisor = self.channel_divisor.unwrap_or(c.proxy.channel_divisor);
        c.validate()?;
        Ok(c)
    }
}

/// Runs `fewshot score`.
pub fn run(args: &ScoreArgs, registry: &Registry) -> Result<()> {
    let config = args.config()?;
    let plan = plan(&config, registry, None)?;
    let archs = args.which.select(&plan, |text| plan.parse(text).map_err(|e| anyhow::anyhow!("{e}")))?;
    let scored = score(&config, &plan, args.proxy, &archs, args.output.as_deref(), archs.len() > 1)?;
    let (headers, rows) = scored.csv_rows();
    match &args.output {
        Some(path) => {
            eprintln!("wrote {} scores to {}", rows.len(), path.display());
            Ok(())
        }
        None => Ok(print(&csv::to_string(&headers, &rows)?)?),
    }
}
