//! The optimizer over all parameters of all supernets (SGD, or RMSProp), and learning-rate
//! schedules.
//!
//! The SGD update is PyTorch's `torch.optim.SGD` (coupled weight decay, momentum with
//! dampening, optional Nesterov), written out so its state can be checkpointed exactly:
//!
//! ```text
//! g   = grad + weight_decay · p
//! buf = g                                   (first update of p)
//! buf = momentum · buf + (1 − dampening) · g (later updates)
//! g   = g + momentum · buf  (Nesterov)   or   buf
//! p   = p − lr · g
//! ```
//!
//! With [`SgdConfig::rmsprop`] set, the update is TensorFlow's RMSProp instead, the optimizer of
//! the EfficientNet and MobileNet recipes (timm's `RMSpropTF`): the square average starts at
//! one and `eps` is added under the root. (PyTorch's `RMSprop` starts it at zero, so its first
//! steps move every weight by about `lr / √(1 − alpha)`: at the MobileNet recipe's lr 0.064 a
//! network trained from scratch diverges.)
//!
//! ```text
//! g   = grad + weight_decay · p
//! v   = alpha · v + (1 − alpha) · g²          (v = 1 before the first update)
//! buf = momentum · buf + g / √(v + eps)
//! p   = p − lr · buf
//! ```
//!
//! [`SgdConfig::decay_weights_only`] applies weight decay to convolution and linear weights
//! only (not to biases or BatchNorm scales and shifts), as the MobileNet recipes do.
//!
//! ## Parameters a step did not use
//! A step trains a few subnets; the parameters of ops that none of them ran get no gradient.
//! [`IdleParams::Frozen`] (the default) leaves such a parameter and its momentum buffer exactly
//! as they are: no weight decay, no momentum drift. This is burn's and PyTorch ≥ 2.0's
//! behaviour (`zero_grad(set_to_none=True)`) and keeps the weights of one subnet independent of
//! how often *other* subnets were sampled. [`IdleParams::Decay`] reproduces the authors' code
//! (PyTorch 1.13, gradients zeroed to tensors, reference §3.4): once a parameter has a momentum
//! buffer, every later step updates it as if its gradient were zero, so weight decay and
//! momentum keep moving it. Parameters never used so far are untouched in both modes.

use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::engine::supernet::{ParamId, Supernets};

/// How the optimizer treats parameters that got no gradient in a step (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleParams {
    /// Untouched (no decay, no momentum) until used again.
    #[default]
    Frozen,
    /// Once used, decayed and moved by momentum every step (the reference code's behaviour).
    Decay,
}

/// RMSProp's own hyper-parameters (TensorFlow's `decay` and `epsilon`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsPropConfig {
    /// Smoothing constant of the square average.
    pub alpha: f64,
    /// Added to the square average under the root.
    pub eps: f64,
}

impl Default for RmsPropConfig {
    /// The TensorFlow-style values of the EfficientNet and MobileNet recipes: 0.9 and 1e-3.
    fn default() -> Self {
        RmsPropConfig { alpha: 0.9, eps: 1e-3 }
    }
}

/// Optimizer hyper-parameters. The default is the NB201 supernet recipe of the reference: SGD
/// lr 0.025, momentum 0.9 (dampening 0), Nesterov, weight decay 5e-4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum factor (0 disables momentum).
    pub momentum: f64,
    /// Momentum dampening (PyTorch's default 0; burn's default 0.1 is not used).
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// Treatment of parameters without a gradient in a step.
    pub idle: IdleParams,
    /// Decay only convolution and linear weights (not biases, not BatchNorm parameters).
    #[serde(default)]
    pub decay_weights_only: bool,
    /// RMSProp instead of SGD (`nesterov` and `dampening` then do not apply).
    #[serde(default)]
    pub rmsprop: Option<RmsPropConfig>,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 5e-4,
            idle: IdleParams::Frozen,
            decay_weights_only: false,
            rmsprop: None,
        }
    }
}

impl SgdConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(TrainError::Momentum(self.momentum));
        }
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(TrainError::Dampening(self.dampening));
        }
        if self.nesterov && self.rmsprop.is_none() && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(TrainError::Nesterov);
        }
        if let Some(r) = self.rmsprop {
            if !((0.0..1.0).contains(&r.alpha) && r.eps > 0.0 && r.eps.is_finite()) {
                return Err(TrainError::RmsProp { alpha: r.alpha, eps: r.eps });
            }
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(TrainError::WeightDecay(self.weight_decay));
        }
        Ok(())
    }
}

/// Optimizer state: one momentum buffer (and, for RMSProp, one square average) per parameter
/// per supernet, created on first use.
#[derive(Clone, Debug)]
pub struct Sgd<B: Backend> {
    config: SgdConfig,
    momentum: Vec<Vec<Option<Tensor<B, 1>>>>,
    square: Vec<Vec<Option<Tensor<B, 1>>>>,
}

impl<B: Backend> Sgd<B> {
    /// A fresh optimizer for `supernets` supernets of `params` parameters each.
    pub fn new(config: SgdConfig, supernets: usize, params: usize) -> Self {
        Sgd { config, momentum: vec![vec![None; params]; supernets], square: vec![vec![None; params]; supernets] }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The momentum buffer of parameter `id` of supernet `k` (None until first used).
    pub fn momentum(&self, k: usize, id: ParamId) -> Option<&Tensor<B, 1>> {
        self.momentum[k][id].as_ref()
    }

    /// Restores a momentum buffer (checkpoints).
    pub fn set_momentum(&mut self, k: usize, id: ParamId, buffer: Option<Tensor<B, 1>>) {
        self.momentum[k][id] = buffer;
    }

    /// RMSProp's square average of parameter `id` of supernet `k` (None until first used, and
    /// always with SGD).
    pub fn square(&self, k: usize, id: ParamId) -> Option<&Tensor<B, 1>> {
        self.square[k][id].as_ref()
    }

    /// Restores a square average (checkpoints).
    pub fn set_square(&mut self, k: usize, id: ParamId, buffer: Option<Tensor<B, 1>>) {
        self.square[k][id] = buffer;
    }

    /// One update with learning rate `lr`. `grads[k][id]` is the gradient of parameter `id` of
    /// supernet `k`, or None when the step did not use it.
    pub fn update(&mut self, nets: &mut Supernets<B>, grads: Vec<Vec<Option<Tensor<B, 1>>>>, lr: f64) {
        let c = self.config.clone();
        let layout = nets.layout().clone();
        for (k, net_grads) in grads.into_iter().enumerate() {
            for (id, grad) in net_grads.into_iter().enumerate() {
                let buffer = &mut self.momentum[k][id];
                let grad = match (grad, c.idle) {
                    (Some(g), _) => g,
                    (None, IdleParams::Decay) if buffer.is_some() || self.square[k][id].is_some() => {
                        Tensor::zeros(nets.param(k, id).dims(), nets.device())
                    }
                    (None, _) => continue,
                };
                let p = nets.param(k, id).clone();
                let decay = if c.decay_weights_only && !layout.params()[id].role.is_weight() { 0.0 } else { c.weight_decay };
                let mut g = if decay != 0.0 { grad + p.clone().mul_scalar(decay) } else { grad };
                if let Some(r) = c.rmsprop {
                    let square = &mut self.square[k][id];
                    let g2 = g.clone().square().mul_scalar(1.0 - r.alpha);
                    let v = match square.take() {
                        None => g2.add_scalar(r.alpha),
                        Some(v) => v.mul_scalar(r.alpha) + g2,
                    };
                    g = g / v.clone().add_scalar(r.eps).sqrt();
                    *square = Some(v);
                    if c.momentum != 0.0 {
                        let buf = match buffer.take() {
                            None => g,
                            Some(b) => b.mul_scalar(c.momentum) + g,
                        };
                        g = buf.clone();
                        *buffer = Some(buf);
                    }
                    nets.set_param(k, id, p - g.mul_scalar(lr));
                    continue;
                }
                if c.momentum != 0.0 {
                    let buf = match buffer.take() {
                        None => g.clone(),
                        Some(b) => b.mul_scalar(c.momentum) + g.clone().mul_scalar(1.0 - c.dampening),
                    };
                    g = if c.nesterov { g + buf.clone().mul_scalar(c.momentum) } else { buf.clone() };
                    *buffer = Some(buf);
                }
                nets.set_param(k, id, p - g.mul_scalar(lr));
            }
        }
    }
}

/// How the learning rate changes over training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Cosine annealing per epoch, constant within an epoch (the NB201 reference):
    /// `lr_e = min + (base − min)(1 + cos(π e / E)) / 2` for epoch `e` of `E`.
    CosineEpoch {
        /// Starting learning rate.
        base: f64,
        /// Floor (0.001 in the reference).
        min: f64,
    },
    /// Cosine annealing per iteration over the whole run, from `base` to `min`.
    CosineStep {
        /// Starting learning rate.
        base: f64,
        /// Final learning rate.
        min: f64,
    },
    /// Exponential decay in steps: `base · factor^⌊t / every⌋`, with `t` the epochs done so far
    /// (fractional within an epoch), e.g. ×0.97 every 2.4 epochs (the MobileNet RMSProp recipe).
    StepDecay {
        /// Starting learning rate.
        base: f64,
        /// Factor applied at every period.
        factor: f64,
        /// Period in epochs.
        every: f64,
    },
    /// A constant learning rate.
    Constant {
        /// The learning rate.
        lr: f64,
    },
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule::CosineEpoch { base: 0.025, min: 0.001 }
    }
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based within the epoch) of epoch `epoch` (0-based),
    /// for a run of `epochs` epochs of `steps_per_epoch` steps.
    pub fn lr(&self, epoch: usize, epochs: usize, step: usize, steps_per_epoch: usize) -> f64 {
        let cosine = |base: f64, min: f64, t: f64| min + (base - min) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0;
        match *self {
            LrSchedule::CosineEpoch { base, min } => cosine(base, min, epoch as f64 / epochs.max(1) as f64),
            LrSchedule::CosineStep { base, min } => {
                let total = (epochs * steps_per_epoch).max(1) as f64;
                cosine(base, min, (epoch * steps_per_epoch + step) as f64 / total)
            }
            LrSchedule::StepDecay { base, factor, every } => {
                let t = epoch as f64 + step as f64 / steps_per_epoch.max(1) as f64;
                base * factor.powf((t / every).floor())
            }
            LrSchedule::Constant { lr } => lr,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), TrainError> {
        let (a, b) = match *self {
            LrSchedule::CosineEpoch { base, min } | LrSchedule::CosineStep { base, min } => (base, min),
            LrSchedule::StepDecay { base, factor, every } => {
                if !(factor > 0.0 && factor <= 1.0 && every > 0.0 && every.is_finite()) {
                    return Err(TrainError::StepDecay { factor, every });
                }
                (base, 0.0)
            }
            LrSchedule::Constant { lr } => (lr, 0.0),
        };
        if !(a > 0.0 && a.is_finite() && b >= 0.0 && b <= a) {
            return Err(TrainError::LearningRates { base: a, min: b });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_per_epoch_matches_the_reference_formula() {
        let s = LrSchedule::default();
        assert!((s.lr(0, 250, 17, 391) - 0.025).abs() < 1e-12);
        let mid = 0.001 + (0.025 - 0.001) * (1.0 + (std::f64::consts::PI * 0.5).cos()) / 2.0;
        assert!((s.lr(125, 250, 0, 391) - mid).abs() < 1e-12);
        assert!((s.lr(125, 250, 390, 391) - mid).abs() < 1e-12, "constant within an epoch");
        assert!(s.lr(249, 250, 0, 391) > 0.001 && s.lr(249, 250, 0, 391) < 0.00101);
    }

    #[test]
    fn cosine_per_step_goes_to_the_floor() {
        let s = LrSchedule::CosineStep { base: 0.1, min: 0.0 };
        assert_eq!(s.lr(0, 2, 0, 10), 0.1);
        assert!((s.lr(1, 2, 0, 10) - 0.05).abs() < 1e-12);
        assert!(s.lr(1, 2, 9, 10) < 0.001);
        assert!(s.lr(0, 2, 5, 10) < s.lr(0, 2, 4, 10));
    }

    #[test]
    fn sgd_matches_pytorch_nesterov_with_weight_decay() {
        use crate::{engine::backend::CpuBackend, engine::supernet::{tests::small_space, NormMode, SupernetLayout, Supernets}};
        use burn::tensor::TensorData;
        use std::sync::Arc;
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Plain).unwrap());
        let mut nets = Supernets::<CpuBackend>::new(layout.clone(), 1, 0, &Default::default());
        let id = 2; // pw.weight
        let n = layout.params()[id].numel();
        let p0 = nets.to_host()[0][id].clone();
        let config = SgdConfig { weight_decay: 0.01, ..SgdConfig::default() };
        let mut sgd = Sgd::<CpuBackend>::new(config, 1, layout.params().len());
        let grads = |g: f32| {
            let mut all = vec![vec![None; layout.params().len()]];
            all[0][id] = Some(Tensor::from_data(TensorData::new(vec![g; n], [n]), &Default::default()));
            all
        };
        sgd.update(&mut nets, grads(0.5), 0.1);
        sgd.update(&mut nets, grads(-0.25), 0.05);
        let got = &nets.to_host()[0][id];
        for (i, &p) in p0.iter().enumerate() {
            // PyTorch: d = g + wd·p; buf = d (first) / 0.9·buf + d; p -= lr·(d + 0.9·buf).
            let (mut p, mut buf) = (p as f64, 0.0);
            for (step, (g, lr)) in [(0.5, 0.1), (-0.25, 0.05)].into_iter().enumerate() {
                let d = g + 0.01 * p;
                buf = if step == 0 { d } else { 0.9 * buf + d };
                p -= lr * (d + 0.9 * buf);
            }
            assert!((got[i] as f64 - p).abs() < 1e-6, "{} vs {p}", got[i]);
        }
    }

    #[test]
    fn step_decay_multiplies_at_every_period() {
        let s = LrSchedule::StepDecay { base: 0.064, factor: 0.97, every: 2.4 };
        assert_eq!(s.lr(0, 10, 0, 100), 0.064);
        assert_eq!(s.lr(2, 10, 39, 100), 0.064, "2.39 epochs: before the first period ends");
        assert!((s.lr(2, 10, 40, 100) - 0.064 * 0.97).abs() < 1e-15);
        assert!((s.lr(4, 10, 80, 100) - 0.064 * 0.97 * 0.97).abs() < 1e-15);
        assert!(LrSchedule::StepDecay { base: 0.1, factor: 1.5, every: 1.0 }.validate().is_err());
    }

    #[test]
    fn rmsprop_matches_tensorflow_with_weights_only_decay() {
        use crate::{engine::backend::CpuBackend, engine::supernet::{tests::small_space, NormMode, ParamRole, SupernetLayout, Supernets}};
        use burn::tensor::TensorData;
        use std::sync::Arc;
        let (graph, slots) = small_space();
        let layout = Arc::new(SupernetLayout::new(&graph, &slots, 2.0, NormMode::Affine).unwrap());
        let mut nets = Supernets::<CpuBackend>::new(layout.clone(), 1, 0, &Default::default());
        let weight = layout.params().iter().position(|p| p.role == ParamRole::ConvWeight).unwrap();
        let scale = layout.params().iter().position(|p| p.role == ParamRole::BnScale).unwrap();
        let before = nets.to_host()[0].clone();
        let config = SgdConfig {
            weight_decay: 0.01,
            decay_weights_only: true,
            rmsprop: Some(RmsPropConfig { alpha: 0.9, eps: 1e-3 }),
            ..SgdConfig::default()
        };
        let mut opt = Sgd::<CpuBackend>::new(config, 1, layout.params().len());
        let grads = |g: f32| {
            let mut all = vec![vec![None; layout.params().len()]];
            for id in [weight, scale] {
                let n = layout.params()[id].numel();
                all[0][id] = Some(Tensor::from_data(TensorData::new(vec![g; n], [n]), &Default::default()));
            }
            all
        };
        opt.update(&mut nets, grads(0.5), 0.1);
        opt.update(&mut nets, grads(-0.25), 0.05);
        let after = nets.to_host();
        for (id, wd) in [(weight, 0.01), (scale, 0.0)] {
            for (i, &p0) in before[id].iter().enumerate() {
                // TF RMSProp: d = g + wd·p; v = 0.9·v + 0.1·d² from v = 1; buf = 0.9·buf + d/√(v + 1e-3); p -= lr·buf.
                let (mut p, mut v, mut buf) = (p0 as f64, 1.0, 0.0);
                for (g, lr) in [(0.5, 0.1), (-0.25, 0.05)] {
                    let d = g + wd * p;
                    v = 0.9 * v + 0.1 * d * d;
                    buf = 0.9 * buf + d / (v + 1e-3).sqrt();
                    p -= lr * buf;
                }
                assert!((after[0][id][i] as f64 - p).abs() < 1e-5, "param {id}: {} vs {p}", after[0][id][i]);
            }
        }
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert!(LrSchedule::CosineEpoch { base: 0.01, min: 0.1 }.validate().is_err());
        assert!(SgdConfig { nesterov: true, dampening: 0.1, ..Default::default() }.validate().is_err());
        assert!(SgdConfig::default().validate().is_ok());
    }
}
