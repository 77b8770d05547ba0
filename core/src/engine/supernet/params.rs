//! The parameters of `K` supernets: their seeded initialisation and storage on a backend.

use std::sync::Arc;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::{forward, BnStats, ParamId, ParamRole, SupernetLayout};
use crate::{engine::kernels::SupernetOps, util::rng::Rng};

/// How weights are drawn at initialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's defaults: conv and linear weights kaiming-uniform with `a = √5`, i.e.
    /// `U(−1/√fan_in, 1/√fan_in)`, biases the same.
    #[default]
    PyTorch,
    /// Kaiming-normal in fan-in mode with ReLU gain (`N(0, 2/fan_in)`), biases zero (AZ-NAS).
    KaimingNormal,
}

/// Draws the initial parameters of `count` supernets from `seed` with PyTorch's defaults
/// ([`init_params_with`]).
pub fn init_params(layout: &SupernetLayout, count: usize, seed: u64) -> Vec<Vec<Vec<f32>>> {
    init_params_with(layout, count, seed, Init::PyTorch)
}

/// Draws the initial parameters of `count` supernets from `seed`, supernet by supernet, in
/// parameter order, the weights as `init` says; BatchNorm scales are 1 and shifts 0. Returns
/// host vectors, one per parameter per supernet.
pub fn init_params_with(layout: &SupernetLayout, count: usize, seed: u64, init: Init) -> Vec<Vec<Vec<f32>>> {
    let mut rng = Rng::stream(seed, "init");
    (0..count)
        .map(|_| {
            layout
                .params()
                .iter()
                .map(|p| {
                    let fan_in = p.fan_in.max(1) as f64;
                    let bias = matches!(p.role, ParamRole::ConvBias | ParamRole::LinearBias);
                    match (p.role, init) {
                        (ParamRole::BnScale, _) => vec![1.0; p.numel()],
                        (ParamRole::BnShift, _) => vec![0.0; p.numel()],
                        (_, Init::KaimingNormal) if bias => vec![0.0; p.numel()],
                        (_, Init::KaimingNormal) => {
                            let std = (2.0 / fan_in).sqrt();
                            (0..p.numel()).map(|_| (rng.normal() * std) as f32).collect()
                        }
                        (_, Init::PyTorch) => {
                            let bound = 1.0 / fan_in.sqrt();
                            (0..p.numel()).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect()
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// `K` independent supernets sharing one layout. Parameters live on backend `B` as flat
/// tensors (reshaped when used).
#[derive(Clone, Debug)]
pub struct Supernets<B: Backend> {
    layout: Arc<SupernetLayout>,
    params: Vec<Vec<Tensor<B, 1>>>,
    device: B::Device,
}

impl<B: Backend> Supernets<B> {
    /// `count` supernets initialised from `seed`.
    pub fn new(layout: Arc<SupernetLayout>, count: usize, seed: u64, device: &B::Device) -> Self {
        let host = init_params(&layout, count, seed);
        Self::from_host(layout, host, device)
    }

    /// Supernets from host parameter values (`[supernet][param]`, each flat).
    pub fn from_host(layout: Arc<SupernetLayout>, host: Vec<Vec<Vec<f32>>>, device: &B::Device) -> Self {
        let params = host
            .into_iter()
            .map(|net| {
                net.into_iter()
                    .map(|values| {
                        let n = values.len();
                        Tensor::from_data(TensorData::new(values, [n]), device)
                    })
                    .collect()
            })
            .collect();
        Supernets { layout, params, device: device.clone() }
    }

    /// The shared layout.
    pub fn layout(&self) -> &Arc<SupernetLayout> {
        &self.layout
    }

    /// Number of supernets `K`.
    pub fn count(&self) -> usize {
        self.params.len()
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Parameter `id` of supernet `k` (flat).
    pub fn param(&self, k: usize, id: ParamId) -> &Tensor<B, 1> {
        &self.params[k][id]
    }

    /// Replaces parameter `id` of supernet `k`.
    pub fn set_param(&mut self, k: usize, id: ParamId, value: Tensor<B, 1>) {
        self.params[k][id] = value;
    }

    /// All parameter values on the host (`[supernet][param]`), for checkpoints and tests.
    pub fn to_host(&self) -> Vec<Vec<Vec<f32>>> {
        self.params
            .iter()
            .map(|net| net.iter().map(|t| tensor_to_vec(t.clone())).collect())
            .collect()
    }

    /// Logits `[N, classes]` of subnet `arch` of supernet `k` on channel-major images `x`
    /// `[C, N, H, W]`, without autodiff.
    pub fn logits(&self, k: usize, arch: &[u32], x: Tensor<B, 4>, bn: &mut BnStats<B>) -> Tensor<B, 2>
    where
        B: SupernetOps,
    {
        forward(&self.layout, x, arch, |id| self.params[k][id].clone(), bn)
    }
}

/// A float tensor's values on the host.
pub fn tensor_to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float tensor data converts to f32")
}
