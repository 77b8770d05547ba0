//! Zero-cost proxies: scores of randomly initialised subnets that predict how well they train.
//!
//! A [`Scorer`] holds one randomly initialised supernet of a space (seeded, at the channel
//! divisor asked for, full width by default) and one fixed batch: the first `batch` training
//! images of the dataset's seeded class-mixed order (no augmentation, normalised), or for AZ-NAS,
//! as its code does, standard-normal noise of that shape ([`Proxy::input`]). Every
//! architecture is scored as a subnet of that supernet, so two architectures that share an op
//! share its initial weights, and an architecture's score depends on nothing but the seed —
//! not on the order or the company it is scored in. Every proxy runs through the engine's
//! kernels and forward pass ([`crate::engine::supernet`]); nothing crosses the plugin ABI.
//!
//! - [`Proxy::Naswot`] (Mellor et al., ICML 2021): log|det K| of the activation codes.
//! - [`Proxy::Az`] (AZ-NAS, Lee & Ham, CVPR 2024): expressivity, progressivity, trainability and
//!   complexity, aggregated by the sum of their log-ranks ([`scores`]).
//! - [`Proxy::Synflow`] (Tanaka et al., NeurIPS 2020) and [`Proxy::Snip`] (Lee et al., ICLR
//!   2019), as in the zero-cost baselines of Abdelfattah et al. (ICLR 2021).
//!
//! Each module documents its definition and where it departs from the reference code.

mod az;
mod linalg;
mod naswot;
mod snip;
mod synflow;

use std::{fmt, str::FromStr, sync::Arc};

use burn::tensor::{Tensor, TensorData};

use crate::{
    data::{make_batch, Dataset},
    engine::{
        backend::EngineBackend,
        supernet::{init_params_with, Init, SupernetLayout},
        EngineError,
    },
    metrics::average_ranks,
    space::{cost::CostModel, SpaceError},
    util::rng::Rng,
};

pub use linalg::{largest_singular_value, log_abs_det, symmetric_eigenvalues};

/// A zero-cost proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proxy {
    /// NASWOT: log|det K| of the binary activation codes of a batch.
    Naswot,
    /// AZ-NAS: four components, aggregated by the sum of log-ranks.
    Az,
    /// SynFlow: the synaptic flow of the network with absolute weights on an all-ones input.
    Synflow,
    /// SNIP: Σ |θ · ∂L/∂θ| of the cross-entropy on a batch.
    Snip,
}

impl Proxy {
    /// Every proxy, in a fixed order.
    pub const ALL: [Proxy; 4] = [Proxy::Naswot, Proxy::Az, Proxy::Synflow, Proxy::Snip];

    /// The name used on the command line and in files.
    pub fn name(&self) -> &'static str {
        match self {
            Proxy::Naswot => "naswot",
            Proxy::Az => "az",
            Proxy::Synflow => "synflow",
            Proxy::Snip => "snip",
        }
    }

    /// The values [`Scorer::measure`] returns for one architecture, by name.
    pub fn columns(&self) -> &'static [&'static str] {
        match self {
            Proxy::Naswot => &["naswot"],
            Proxy::Az => &["expressivity", "progressivity", "trainability", "complexity"],
            Proxy::Synflow => &["synflow"],
            Proxy::Snip => &["snip"],
        }
    }

    /// What the proxy's reference feeds the network: real training images, or (AZ-NAS) a batch
    /// of standard-normal noise of the same shape. (SynFlow replaces either by one all-ones
    /// image.)
    pub fn input(&self) -> ProxyInput {
        match self {
            Proxy::Az => ProxyInput::Gaussian,
            Proxy::Naswot | Proxy::Synflow | Proxy::Snip => ProxyInput::Images,
        }
    }

    /// How the proxy's reference initialises the weights.
    pub fn init(&self) -> Init {
        match self {
            Proxy::Az => Init::KaimingNormal,
            Proxy::Naswot | Proxy::Synflow | Proxy::Snip => Init::PyTorch,
        }
    }
}

/// The batch a proxy scores on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyInput {
    /// The first images of the training half's seeded class-mixed order, normalised.
    Images,
    /// Standard-normal noise of the images' shape, drawn from the seed (the AZ-NAS code scores
    /// NB201 on `torch.randn` inputs).
    Gaussian,
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proxy {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Proxy, ProxyError> {
        let s = s.trim().to_ascii_lowercase();
        Proxy::ALL
            .into_iter()
            .find(|p| p.name() == s || (s == "az-nas" && *p == Proxy::Az))
            .ok_or(ProxyError::Unknown(s))
    }
}

/// Why a proxy could not score.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A proxy name this build does not know.
    #[error("unknown proxy `{0}` (expected naswot, az, synflow or snip)")]
    Unknown(String),
    /// The space cannot be built or run.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The space's costs cannot be computed.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// Images whose size differs from the space's input.
    #[error("the images are {images:?} (channels, height, width) but the space takes {space:?}")]
    ImageSize {
        /// The dataset's image dimensions.
        images: [usize; 3],
        /// The space's input dimensions.
        space: [usize; 3],
    },
    /// Too few images for the batch.
    #[error("the proxy batch needs {needed} images but the dataset has {available}")]
    TooFewImages {
        /// Batch size asked for.
        needed: usize,
        /// Images available.
        available: usize,
    },
    /// A label the space's classifier has no logit for.
    #[error("image label {label} does not fit the space's {classes} classes")]
    Label {
        /// The label.
        label: u32,
        /// Classes of the space.
        classes: usize,
    },
    /// A batch of fewer than two images (batch statistics and NASWOT's kernel need two).
    #[error("the proxy batch must hold at least 2 images, got {0}")]
    BatchTooSmall(usize),
}

/// How a [`Scorer`] is set up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxyConfig {
    /// Images in the scoring batch (synflow uses a single all-ones image instead).
    pub batch: usize,
    /// Seeds the weights, the batch and every random draw of the proxies.
    pub seed: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { batch: 64, seed: 0 }
    }
}

/// Scores architectures of one space with one proxy (see the module docs).
pub struct Scorer<B: EngineBackend> {
    proxy: Proxy,
    layout: Arc<SupernetLayout>,
    params: Vec<Tensor<B, 1>>,
    /// The host values of the parameters (synflow computes in `f64` from them).
    host: Vec<Vec<f32>>,
    images: Tensor<B, 4>,
    labels: Vec<u32>,
    costs: CostModel,
    blocks: Vec<usize>,
    seed: u64,
}

impl<B: EngineBackend> Scorer<B> {
    /// A scorer for `proxy` on the supernet `layout`, with its batch drawn from `data`.
    pub fn new(
        proxy: Proxy,
        layout: Arc<SupernetLayout>,
        data: &Dataset,
        config: ProxyConfig,
        device: &B::Device,
    ) -> Result<Self, ProxyError> {
        if layout.input_dims() != data.dims {
            return Err(ProxyError::ImageSize { images: data.dims, space: layout.input_dims() });
        }
        if config.batch < 2 {
            return Err(ProxyError::BatchTooSmall(config.batch));
        }
        if data.len() < config.batch {
            return Err(ProxyError::TooFewImages { needed: config.batch, available: data.len() });
        }
        let mut order = data.mixed_order(config.seed);
        order.truncate(config.batch);
        let mut batch = make_batch(data, &order, None);
        if let Some(&label) = batch.labels.iter().find(|&&l| l as usize >= layout.classes()) {
            return Err(ProxyError::Label { label, classes: layout.classes() });
        }
        if proxy.input() == ProxyInput::Gaussian {
            let mut rng = Rng::stream(config.seed, "proxy:gaussian");
            batch.pixels.iter_mut().for_each(|p| *p = rng.normal() as f32);
        }
        let images = Tensor::from_data(TensorData::new(batch.pixels, batch.dims), device);
        let mut host = init_params_with(&layout, 1, config.seed, proxy.init());
        let host = host.pop().expect("one supernet");
        let params = host
            .iter()
            .map(|values| Tensor::from_data(TensorData::new(values.clone(), [values.len()]), device))
            .collect();
        let costs = CostModel::new(layout.graph(), layout.divisor())?;
        let blocks = layout.block_outputs();
        Ok(Scorer { proxy, layout, params, host, images, labels: batch.labels, costs, blocks, seed: config.seed })
    }

    /// The proxy.
    pub fn proxy(&self) -> Proxy {
        self.proxy
    }

    /// The proxy's values ([`Proxy::columns`]) for architecture `arch`. A value can be `-inf`
    /// (e.g. NASWOT's kernel is singular, or AZ-NAS's features vanish).
    pub fn measure(&self, arch: &[u32]) -> Result<Vec<f64>, ProxyError> {
        self.layout.check_arch(arch)?;
        Ok(match self.proxy {
            Proxy::Naswot => vec![naswot::score(self, arch)],
            Proxy::Az => az::components(self, arch),
            Proxy::Synflow => vec![synflow::score(self, arch)],
            Proxy::Snip => vec![snip::score(self, arch)],
        })
    }
}

/// The score of every architecture of a measured set, from its rows of [`Scorer::measure`]: the
/// value itself for single-valued proxies; for AZ-NAS the sum over its components of
/// log(rank / n), ranks ascending among the `n` rows (ties share their average rank), as in the
/// AZ-NAS paper. AZ-NAS scores therefore depend on the set they were measured in.
pub fn scores(proxy: Proxy, rows: &[Vec<f64>]) -> Vec<f64> {
    match proxy {
        Proxy::Az => {
            let columns: Vec<Vec<f64>> = (0..proxy.columns().len()).map(|c| rows.iter().map(|r| r[c]).collect()).collect();
            log_rank_sum(&columns)
        }
        _ => rows.iter().map(|r| r[0]).collect(),
    }
}

/// The sum over `estimators` (each one value per item, higher = better) of log(rank / n), ranks
/// ascending among the `n` items, ties sharing their average rank; NaN counts as lowest. The
/// aggregation of AZ-NAS, and of fewshot's ensembles of estimators.
pub fn log_rank_sum(estimators: &[Vec<f64>]) -> Vec<f64> {
    let n = estimators.first().map_or(0, Vec::len);
    let mut total = vec![0.0; n];
    for values in estimators {
        assert_eq!(values.len(), n, "one value per item for every estimator");
        let clean: Vec<f64> = values.iter().map(|v| if v.is_nan() { f64::NEG_INFINITY } else { *v }).collect();
        for (t, r) in total.iter_mut().zip(average_ranks(&clean)) {
            *t += (r / n as f64).ln();
        }
    }
    total
}

#[cfg(test)]
mod tests;
