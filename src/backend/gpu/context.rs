//! Opening a GPU: adapter, device, limits, and turning wgpu's errors into [`Error`]s.

use super::wait::{self, Delivery, Wait};
use crate::{Error, GpuError, Result};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What `hegpu info` reports about an adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub max_storage_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_workgroup_storage_bytes: u32,
    pub max_workgroups_per_dimension: u32,
    pub shader_int64: bool,
    pub timestamp_query: bool,
    /// Whether the kernels use native 64-bit products (SHADER_INT64 offered and not declined
    /// with [`GpuOptions::portable_products`](super::GpuOptions::portable_products)).
    pub native_products: bool,
}

impl std::fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "adapter:                {}", self.name)?;
        writeln!(f, "backend:                {}", self.backend)?;
        writeln!(f, "device type:            {}", self.device_type)?;
        writeln!(f, "driver:                 {}", self.driver)?;
        writeln!(
            f,
            "max storage binding:    {} MiB",
            self.max_storage_binding_bytes >> 20
        )?;
        writeln!(
            f,
            "max buffer:             {} MiB",
            self.max_buffer_bytes >> 20
        )?;
        let tile = super::kernels::ntt_tile(self.max_workgroup_storage_bytes, None);
        writeln!(
            f,
            "max workgroup storage:  {} KiB (NTT tiles of {tile} words: one pass up to N = {tile})",
            self.max_workgroup_storage_bytes >> 10
        )?;
        writeln!(
            f,
            "max workgroups per dim: {}",
            self.max_workgroups_per_dimension
        )?;
        writeln!(
            f,
            "TIMESTAMP_QUERY:        {}",
            if self.timestamp_query {
                "yes (used by --profile)"
            } else {
                "no (--profile counts without GPU times)"
            }
        )?;
        write!(
            f,
            "SHADER_INT64:           {}",
            match (self.shader_int64, self.native_products) {
                (true, true) => "yes (the kernels use native 64-bit products)",
                (true, false) => "yes (declined: the kernels use 16×16 partial products)",
                _ => "no (the kernels use 16×16 partial products)",
            }
        )
    }
}

/// An opened device with its queue and the errors wgpu reported outside any scope.
pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub report: AdapterReport,
    pub limits: wgpu::Limits,
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost, once it is: every later operation fails with
    /// [`GpuError::DeviceLost`](crate::GpuError::DeviceLost) without touching it.
    lost: Arc<Mutex<Option<String>>>,
    /// A loss to simulate when the running operation ends (see [`Context::lose_after`]).
    pending_loss: Mutex<Option<String>>,
    /// How every wait for the device is done.
    wait: Arc<dyn Wait>,
}

impl Context {
    /// Opens the first high-performance adapter of the primary backends (Vulkan, Metal, DX12,
    /// WebGPU); Mesa's software Vulkan driver counts. Asks for `TIMESTAMP_QUERY` with
    /// `timestamps` and `SHADER_INT64` with `int64`, each where the adapter offers it; every
    /// wait for the device goes through `wait`.
    pub fn open(timestamps: bool, int64: bool, wait: Arc<dyn Wait>) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = wait::finish(&*wait, None, instance.request_adapter(&options))
            .map_err(|e| Error::Gpu(GpuError::NoAdapter(e.to_string())))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        let mut required_features = wgpu::Features::empty();
        if timestamps {
            required_features |= features & wgpu::Features::TIMESTAMP_QUERY;
        }
        if int64 {
            required_features |= features & wgpu::Features::SHADER_INT64;
        }
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("hegpu"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = wait::finish(&*wait, None, adapter.request_device(&descriptor))
            .map_err(|e| Error::Gpu(GpuError::Driver(format!("cannot open {}: {e}", info.name))))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let on_lost = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut lost = on_lost.lock().unwrap_or_else(|p| p.into_inner());
            lost.get_or_insert(format!("{reason:?}: {message}"));
        });
        let report = AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroup_storage_bytes: limits.max_compute_workgroup_storage_size,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            shader_int64: features.contains(wgpu::Features::SHADER_INT64),
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            native_products: int64 && features.contains(wgpu::Features::SHADER_INT64),
        };
        Ok(Self {
            device,
            queue,
            report,
            limits,
            uncaptured,
            lost,
            pending_loss: Mutex::new(None),
            wait,
        })
    }

    /// `future`'s output; with `polled`, the device is polled meanwhile (readbacks, a drained
    /// queue), else not (error scopes, which a native device answers at once).
    pub fn finish<T>(&self, polled: bool, future: impl Future<Output = T>) -> T {
        let device = polled.then_some(&self.device);
        wait::finish(&*self.wait, device, future)
    }

    /// Fails with [`GpuError::DeviceLost`](crate::GpuError::DeviceLost) once the device is lost.
    pub fn alive(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(Error::Gpu(GpuError::DeviceLost(why.clone()))),
            None => Ok(()),
        }
    }

    /// Asks that the device be destroyed when the running operation ends, as a driver reset
    /// would: the operation and every later one fail with [`GpuError::DeviceLost`](crate::GpuError::DeviceLost).
    pub fn lose_after(&self, why: String) {
        self.pending_loss
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }

    fn apply_pending_loss(&self) -> Result<()> {
        if let Some(why) = self
            .pending_loss
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            self.lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(why);
            self.device.destroy();
        }
        self.alive()
    }

    /// Runs `f` inside error scopes and converts what the GPU reported into an [`Error`].
    pub fn checked<T>(&self, bytes: u64, f: impl FnOnce() -> T) -> Result<T> {
        self.alive()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = self.finish(false, validation.pop());
        let oom = self.finish(false, oom.pop());
        self.apply_pending_loss()?;
        if let Some(e) = oom {
            return Err(Error::Gpu(GpuError::OutOfMemory {
                bytes,
                why: e.to_string(),
            }));
        }
        if let Some(e) = validation {
            return Err(Error::Gpu(GpuError::Driver(e.to_string())));
        }
        self.take_uncaptured()?;
        Ok(value)
    }

    /// Fails with the first error wgpu reported outside a scope, if any.
    pub fn take_uncaptured(&self) -> Result<()> {
        let mut errors = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu(GpuError::Driver(
                errors.drain(..).collect::<Vec<_>>().join("; "),
            )))
        }
    }

    /// Waits until the work submitted so far is done.
    pub fn wait(&self) -> Result<()> {
        self.alive()?;
        let (done, deliver) = Delivery::new();
        self.queue.on_submitted_work_done(move || deliver(()));
        self.finish(true, done);
        self.alive()
    }
}
