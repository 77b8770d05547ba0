//! Compute backends and device selection.
//!
//! The engine is generic over burn's `Backend`; [`EngineBackend`] is the set of backends this
//! build can run on: the pure-Rust `flex` CPU backend with fewshot's own kernels (the default);
//! the `reference` CPU backend (burn's ndarray with the generic kernels every GPU backend uses,
//! so the GPU's code path can be trained and checked on any machine); CUDA with the `cuda`
//! cargo feature.
//! Code that trains or evaluates is written once as a [`BackendJob`] and run on the device the
//! user picked with [`run_on`], which instantiates it for the matching backend.
//!
//! burn-cuda panics on its first tensor operation when no CUDA driver can be loaded, so
//! [`run_on`] first probes the driver (`dlopen libcuda.so.1`) and returns a clear error instead.

use std::{fmt, str::FromStr};

use crate::engine::{
    kernels::{Kernels, SupernetOps},
    EngineError,
};

/// The CPU backend: burn-flex (gemm + rayon + SIMD).
pub type CpuBackend = burn::backend::Flex;

/// The reference CPU backend: burn's ndarray, computing every supernet op with the generic
/// kernels (the code path of the GPU backends), for checks rather than speed.
pub type ReferenceBackend = burn::backend::NdArray;

/// The CUDA backend (cargo feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// A backend this build can run the engine on: it has the supernet kernels, directly and
/// under autodiff.
pub trait EngineBackend: Kernels + SupernetOps {
    /// Short name for messages and logs (`flex`, `cuda`).
    const NAME: &'static str;
}

impl EngineBackend for CpuBackend {
    const NAME: &'static str = "flex";
}

impl EngineBackend for ReferenceBackend {
    const NAME: &'static str = "reference";
}

/// The reference backend computes with the generic kernels, on the CPU (the GPU's code path,
/// checked in CI).
impl Kernels for ReferenceBackend {}

/// burn's ndarray in double precision, with the generic kernels: for computations whose values
/// leave `f32`'s range (synflow's products of absolute weights).
pub type DoubleBackend = burn::backend::NdArray<f64>;

/// The double-precision backend computes with the generic kernels.
impl Kernels for DoubleBackend {}

#[cfg(feature = "cuda")]
impl EngineBackend for CudaBackend {
    const NAME: &'static str = "cuda";
}

/// CUDA computes with the generic kernels.
#[cfg(feature = "cuda")]
impl Kernels for CudaBackend {}

/// Where to compute, as given on the command line: `cpu`, `reference`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU (flex backend).
    #[default]
    Cpu,
    /// The CPU through the generic kernels (reference backend): the GPU's code path, slowly.
    Reference,
    /// The CUDA GPU with this index.
    Cuda(usize),
}

impl FromStr for Device {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Device, EngineError> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "cpu" => Ok(Device::Cpu),
            "reference" => Ok(Device::Reference),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => match text.strip_prefix("cuda:") {
                Some(index) => index
                    .parse()
                    .map(Device::Cuda)
                    .map_err(|_| EngineError::DeviceIndex(text.clone())),
                None => Err(EngineError::UnknownDevice(text)),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Reference => write!(f, "reference"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Work generic over the backend: [`run_on`] calls `run` with the backend of the chosen device.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs the job on backend `B` and its device.
    fn run<B: EngineBackend>(self, device: B::Device) -> Self::Output;
}

/// Runs `job` on `device`. Fails with a clear message when the device is not usable: CUDA asked
/// for in a build without the `cuda` feature, or no CUDA driver on this machine.
pub fn run_on<J: BackendJob>(device: Device, job: J) -> Result<J::Output, EngineError> {
    match device {
        Device::Cpu => Ok(job.run::<CpuBackend>(Default::default())),
        Device::Reference => Ok(job.run::<ReferenceBackend>(Default::default())),
        Device::Cuda(index) => run_cuda(index, job),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda<J: BackendJob>(index: usize, job: J) -> Result<J::Output, EngineError> {
    probe_cuda()?;
    Ok(job.run::<CudaBackend>(burn::backend::cuda::CudaDevice::new(index)))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda<J: BackendJob>(index: usize, _job: J) -> Result<J::Output, EngineError> {
    Err(EngineError::NoCudaSupport(index))
}

/// Sets the number of CPU threads the flex backend (rayon's global pool) uses. Must be called
/// before the first tensor operation; fails when the pool already exists.
pub fn set_cpu_threads(threads: usize) -> Result<(), EngineError> {
    if threads == 0 {
        return Err(EngineError::NoThreads);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|source| EngineError::Threads { threads, source })
}

/// The number of CPU threads the flex backend uses.
pub fn cpu_threads() -> usize {
    rayon::current_num_threads()
}

/// Checks that the CUDA driver library can be loaded, so that burn-cuda does not panic on its
/// first operation.
#[cfg(feature = "cuda")]
pub fn probe_cuda() -> Result<(), EngineError> {
    // SAFETY: loading the CUDA driver library runs its initialisers, which is what burn-cuda
    // itself does next; nothing is called through the handle.
    match unsafe { libloading::Library::new("libcuda.so.1") } {
        Ok(_) => Ok(()),
        Err(e) => Err(EngineError::NoCudaDriver(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("Reference".parse::<Device>().unwrap(), Device::Reference);
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert!("cuda:x".parse::<Device>().unwrap_err().to_string().contains("number"));
        assert!("tpu".parse::<Device>().unwrap_err().to_string().contains("unknown device"));
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        struct Nothing;
        impl BackendJob for Nothing {
            type Output = ();
            fn run<B: EngineBackend>(self, _device: B::Device) {}
        }
        let err = run_on(Device::Cuda(0), Nothing).unwrap_err().to_string();
        assert!(err.contains("without CUDA support"), "{err}");
        assert!(run_on(Device::Cpu, Nothing).is_ok());
    }
}
