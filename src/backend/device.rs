//! Choosing the device: `auto` (a hardware GPU adapter when one exists, else the CPU), `cpu` or
//! `gpu`.

use super::{Backend, CpuBackend};
use crate::{Error, GpuError, Result};
use std::sync::Arc;

/// Which device to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A GPU adapter if one exists, else the CPU. A software adapter (Mesa's lavapipe) is
    /// passed over for the CPU backend, which computes the same words many times faster,
    /// unless [`GpuOptions::required`] asks for a GPU whatever it is.
    #[default]
    Auto,
    /// The rayon CPU backend.
    Cpu,
    /// A GPU adapter; an error if none exists.
    Gpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            other => Err(Error::Config(format!(
                "device '{other}' is not one of auto, cpu, gpu"
            ))),
        }
    }
}

impl DeviceChoice {
    /// The choice in `HEGPU_DEVICE` (default `auto`), for command lines and tests.
    pub fn from_env() -> Result<Self> {
        std::env::var("HEGPU_DEVICE").map_or(Ok(Self::Auto), |v| v.parse())
    }
}

/// Whether `HEGPU_REQUIRE_GPU=1` asks that a missing adapter be an error (for command lines
/// and tests; see [`GpuOptions::required`]).
pub fn gpu_required() -> bool {
    std::env::var("HEGPU_REQUIRE_GPU").is_ok_and(|v| v.trim() == "1")
}

/// The backend for a choice, a GPU opened with the default options. `auto` falls back to the
/// CPU when no adapter exists or the only one is a software rasterizer.
pub fn select_backend(choice: DeviceChoice) -> Result<Arc<dyn Backend>> {
    Ok(choose_backend(choice, GpuOptions::default())?.0)
}

/// [`select_backend`] with explicit GPU options (with [`GpuOptions::required`], `auto` does
/// not fall back), and a note when `auto` took the CPU (why: no adapter, or a software one)
/// for the caller to show: the library prints nothing.
pub fn choose_backend(
    choice: DeviceChoice,
    options: GpuOptions,
) -> Result<(Arc<dyn Backend>, Option<String>)> {
    let cpu = || -> Result<Arc<dyn Backend>> { Ok(Arc::new(CpuBackend::new(None)?)) };
    match choice {
        DeviceChoice::Cpu => Ok((cpu()?, None)),
        DeviceChoice::Gpu => Ok((open_gpu(options)?.backend, None)),
        DeviceChoice::Auto => match open_gpu(options) {
            Ok(gpu) if gpu.software && !options.required => {
                let note = format!(
                    "the only GPU adapter, {}, is a software rasterizer; using the CPU, which computes the same faster (--device gpu takes the adapter anyway)",
                    gpu.name
                );
                Ok((cpu()?, Some(note)))
            }
            Ok(gpu) => Ok((gpu.backend, None)),
            Err(Error::Gpu(GpuError::NoAdapter(why))) if !options.required => Ok((
                cpu()?,
                Some(format!("no GPU adapter ({why}); using the CPU")),
            )),
            Err(e) => Err(e),
        },
    }
}

/// A GPU backend as opened, with what choosing a device needs to know of its adapter.
pub struct OpenedGpu {
    pub backend: Arc<dyn Backend>,
    /// A software rasterizer (Mesa's lavapipe), which the CPU outruns.
    pub software: bool,
    pub name: String,
}

/// Opens the GPU backend with `options`.
#[cfg(feature = "gpu")]
pub fn open_gpu(options: GpuOptions) -> Result<OpenedGpu> {
    let gpu = super::GpuBackend::with_options(options)?;
    Ok(OpenedGpu {
        software: gpu.is_software(),
        name: gpu.report().name.clone(),
        backend: Arc::new(gpu),
    })
}

/// Without the `gpu` feature there is no GPU backend: every request for one finds no adapter.
#[cfg(not(feature = "gpu"))]
pub fn open_gpu(_: GpuOptions) -> Result<OpenedGpu> {
    Err(Error::Gpu(GpuError::NoAdapter(
        "this build of hegpu has no GPU backend (the `gpu` feature is off)".into(),
    )))
}

/// Knobs for tests and for running within a memory budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Largest buffer of one chunk, in bytes (default: the adapter's storage binding limit).
    pub max_chunk_bytes: Option<u64>,
    /// Bytes of batches and weights this backend may hold at once (default: whatever the driver
    /// grants; beyond it, allocation fails with [`GpuError::OutOfMemory`](crate::GpuError::OutOfMemory)).
    pub memory_budget: Option<u64>,
    /// Simulates a device loss: the device is destroyed at the end of the operation that makes
    /// this many dispatches in all, as a driver reset would. For testing the fallbacks.
    pub lose_after_dispatches: Option<u64>,
    /// Time every dispatch with GPU timestamps where the adapter offers `TIMESTAMP_QUERY`
    /// (each submission then waits for its timestamps); see [`Backend::kernel_profile`].
    pub profile: bool,
    /// Build the kernels with 16×16 partial products even where the adapter offers
    /// `SHADER_INT64` (as browsers must), e.g. to test that path.
    pub portable_products: bool,
    /// `DeviceChoice::Auto` never passes this GPU over: a missing adapter is an error and a
    /// software one is taken (what `HEGPU_REQUIRE_GPU=1` asks of the command line and tests).
    pub required: bool,
    /// Largest NTT tile in words (default: what the adapter's workgroup storage holds, up to
    /// 2^13), e.g. to test the two-pass transform at small degrees.
    pub max_ntt_tile: Option<usize>,
    /// Record and count every operation (dispatches, their modelled traffic, submissions,
    /// buffers, uploads) but submit nothing: what a workload asks of a GPU, counted in
    /// seconds on any adapter, software ones included. Kernels never run, so results are
    /// meaningless: downloads give zeros.
    pub record_only: bool,
}

impl GpuOptions {
    /// The options in the environment, for command lines and tests (the library itself never
    /// reads the environment): `HEGPU_GPU_MEMORY` (a byte size such as `512M` or `2G`),
    /// `HEGPU_SIMULATE_DEVICE_LOSS` (a dispatch count) and `HEGPU_REQUIRE_GPU=1`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Ok(Self {
            memory_budget: var("HEGPU_GPU_MEMORY")
                .map(|v| parse_bytes(&v))
                .transpose()?,
            lose_after_dispatches: var("HEGPU_SIMULATE_DEVICE_LOSS")
                .map(|v| {
                    v.trim().parse().map_err(|_| {
                        Error::Config(format!(
                            "HEGPU_SIMULATE_DEVICE_LOSS={v} is not a dispatch count"
                        ))
                    })
                })
                .transpose()?,
            required: gpu_required(),
            ..Default::default()
        })
    }
}

/// A byte size: a number with an optional K, M or G suffix (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|v| v.checked_mul(1u64 << shift))
        .filter(|&v| v > 0)
        .ok_or_else(|| {
            Error::Config(format!(
                "'{text}' is not a byte size (a positive number, optionally with K, M or G)"
            ))
        })
}
