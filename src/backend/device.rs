//! Choosing the device: `auto` (a hardware GPU adapter when one exists, else the CPU), `cpu` or
//! `gpu`.

use super::{Backend, CpuBackend, GpuBackend, GpuOptions};
use crate::{Error, Result};
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
    select_backend_with(choice, GpuOptions::default())
}

/// [`select_backend`] with explicit GPU options (with [`GpuOptions::required`], `auto` does
/// not fall back).
pub fn select_backend_with(choice: DeviceChoice, options: GpuOptions) -> Result<Arc<dyn Backend>> {
    match choice {
        DeviceChoice::Cpu => Ok(Arc::new(CpuBackend::new(None)?)),
        DeviceChoice::Gpu => Ok(Arc::new(GpuBackend::with_options(options)?)),
        DeviceChoice::Auto => match GpuBackend::with_options(options) {
            Ok(gpu) if gpu.is_software() && !options.required => {
                eprintln!(
                    "hegpu: the only GPU adapter, {}, is a software rasterizer; using the CPU, which computes the same faster (--device gpu takes the adapter anyway)",
                    gpu.report().name
                );
                Ok(Arc::new(CpuBackend::new(None)?))
            }
            Ok(gpu) => Ok(Arc::new(gpu)),
            Err(Error::NoAdapter(why)) if !options.required => {
                eprintln!("hegpu: no GPU adapter ({why}); using the CPU");
                Ok(Arc::new(CpuBackend::new(None)?))
            }
            Err(e) => Err(e),
        },
    }
}
