//! GPU-resident data: batches split into chunks of whole polynomials (each within one storage
//! binding), weight buffers, and counters of every transfer and dispatch.

use super::arena::Tracked;
use crate::backend::device_data::DeviceWords;
use crate::backend::telemetry::TransferCounts;
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// One chunk of a batch: `polys` whole polynomials in one buffer.
pub(crate) struct GpuChunk {
    pub data: Tracked,
    pub polys: usize,
}

/// The GPU side of a [`PolyBatch`](crate::backend::PolyBatch).
pub(crate) struct GpuData {
    pub(crate) device_id: u64,
    pub(crate) chunks: Vec<GpuChunk>,
    /// Polynomials per chunk (the last may hold fewer).
    pub(crate) per_chunk: usize,
}

impl DeviceWords for GpuData {
    fn location(&self) -> String {
        super::device_name(self.device_id)
    }

    /// Every chunk must hold whole groups (true unless bindings hold fewer than six
    /// polynomials).
    fn regroup(&mut self, grouping: bool, factor: usize) -> Result<()> {
        if grouping
            && (!self.per_chunk.is_multiple_of(factor)
                || self.chunks.iter().any(|c| !c.polys.is_multiple_of(factor)))
        {
            return Err(Error::Shape(format!(
                "GPU chunks of {} polynomials split groups of {factor}",
                self.per_chunk
            )));
        }
        let resize = |polys: usize| {
            if grouping {
                polys / factor
            } else {
                polys * factor
            }
        };
        self.per_chunk = resize(self.per_chunk);
        for c in &mut self.chunks {
            c.polys = resize(c.polys);
        }
        Ok(())
    }
}

impl GpuData {
    /// The polynomial range `[start, end)` of chunk `c`.
    pub(crate) fn range(&self, c: usize) -> (usize, usize) {
        let start = c * self.per_chunk;
        (start, start + self.chunks[c].polys)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    readbacks: AtomicU64,
    readback_bytes: AtomicU64,
    dispatches: AtomicU64,
    submits: AtomicU64,
    buffers_created: AtomicU64,
    zeroed_bytes: AtomicU64,
    cleared_bytes: AtomicU64,
    bind_groups: AtomicU64,
    host_ns: AtomicU64,
    gpu_ns: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

impl Counters {
    pub fn submit(&self) {
        self.submits.fetch_add(1, Ordering::Relaxed);
    }
    /// A buffer created; `zeroed_bytes` of it wgpu will clear before first use.
    pub fn buffer(&self, zeroed_bytes: u64) {
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.zeroed_bytes.fetch_add(zeroed_bytes, Ordering::Relaxed);
    }
    pub fn cleared(&self, bytes: u64) {
        self.cleared_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn host_time(&self, ns: u64) {
        self.host_ns.fetch_add(ns, Ordering::Relaxed);
    }
    pub fn traffic(&self, t: super::profile::Traffic) {
        self.bytes_read.fetch_add(t.read, Ordering::Relaxed);
        self.bytes_written.fetch_add(t.written, Ordering::Relaxed);
    }
    pub fn gpu_time(&self, ns: u64) {
        self.gpu_ns.fetch_add(ns, Ordering::Relaxed);
    }
    pub fn bind_group(&self) {
        self.bind_groups.fetch_add(1, Ordering::Relaxed);
    }
    pub fn upload(&self, bytes: u64) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn readback(&self, bytes: u64) {
        self.readbacks.fetch_add(1, Ordering::Relaxed);
        self.readback_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Counts a dispatch; returns how many there have been, this one included.
    pub fn dispatch(&self) -> u64 {
        self.dispatches.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn snapshot(&self) -> TransferCounts {
        TransferCounts {
            uploads: self.uploads.load(Ordering::Relaxed),
            upload_bytes: self.upload_bytes.load(Ordering::Relaxed),
            readbacks: self.readbacks.load(Ordering::Relaxed),
            readback_bytes: self.readback_bytes.load(Ordering::Relaxed),
            dispatches: self.dispatches.load(Ordering::Relaxed),
            submits: self.submits.load(Ordering::Relaxed),
            buffers_created: self.buffers_created.load(Ordering::Relaxed),
            zeroed_bytes: self.zeroed_bytes.load(Ordering::Relaxed),
            cleared_bytes: self.cleared_bytes.load(Ordering::Relaxed),
            bind_groups: self.bind_groups.load(Ordering::Relaxed),
            host_ns: self.host_ns.load(Ordering::Relaxed),
            gpu_ns: self.gpu_ns.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
        }
    }
}
