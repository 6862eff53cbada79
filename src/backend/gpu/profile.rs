//! GPU time per kernel, from timestamps the GPU writes at the start and end of each dispatch's
//! compute pass (`TIMESTAMP_QUERY`), with the bytes each dispatch moves (its modelled traffic,
//! see [`Traffic`]). Profiling
//! waits for every submission to read its timestamps back, so it measures the kernels, not the
//! overlap of host and GPU; it is off unless asked for.

use super::context::Context;
use super::kernels::Kernel;
use super::wait;
use crate::backend::telemetry::KernelProfile;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Bytes of global memory one dispatch reads and writes, modelled from its kernel's access
/// pattern (caches aside): see `GpuBackend::footprint` and the kernels that count their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub read: u64,
    pub written: u64,
}

/// One dispatch waiting for its timestamps.
pub(crate) struct Pending {
    pub kernel: Kernel,
    pub traffic: Traffic,
}

/// The query set and buffers timestamps pass through, and the totals by kernel.
pub(crate) struct Profiler {
    pub queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    totals: Mutex<BTreeMap<&'static str, KernelProfile>>,
}

impl Profiler {
    /// A profiler for `device` when it was opened with `TIMESTAMP_QUERY`, timing up to
    /// `slots` dispatches per submission.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, slots: u64) -> Option<Self> {
        if !device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let count = 2 * slots as u32;
        let bytes = 8 * u64::from(count);
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(Self {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("hegpu timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: buffer(
                "hegpu timestamps resolved",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "hegpu timestamps readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            period_ns: f64::from(queue.get_timestamp_period()),
            totals: Mutex::new(BTreeMap::new()),
        })
    }

    /// Records the copy of `count` dispatches' timestamps into the readback buffer.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder, count: usize) {
        let queries = 2 * count as u32;
        encoder.resolve_query_set(&self.queries, 0..queries, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(
            &self.resolve,
            0,
            &self.readback,
            0,
            Some(8 * u64::from(queries)),
        );
    }

    /// After the submission that resolved them: reads the timestamps of `pending` and adds
    /// them to the totals. Returns their GPU time in nanoseconds.
    pub fn collect(&self, ctx: &Context, pending: &[Pending]) -> u64 {
        let bytes = 16 * pending.len() as u64;
        let slice = self.readback.slice(..bytes);
        let mapped = ctx.finish(true, wait::mapped(slice)).is_ok();
        let mut total = 0;
        if mapped {
            if let Ok(view) = slice.get_mapped_range() {
                let ticks: &[u64] = bytemuck::cast_slice(&view);
                let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
                for (d, p) in pending.iter().enumerate() {
                    let elapsed = ticks[2 * d + 1].saturating_sub(ticks[2 * d]);
                    let ns = (elapsed as f64 * self.period_ns).round() as u64;
                    total += ns;
                    let name = p.kernel.entry();
                    let k = totals.entry(name).or_insert_with(|| KernelProfile {
                        kernel: name.to_string(),
                        ..Default::default()
                    });
                    k.dispatches += 1;
                    k.gpu_ns += ns;
                    k.bytes_read += p.traffic.read;
                    k.bytes_written += p.traffic.written;
                }
            }
            self.readback.unmap();
        }
        total
    }

    /// The totals so far, by kernel name.
    pub fn totals(&self) -> Vec<KernelProfile> {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.values().cloned().collect()
    }
}
