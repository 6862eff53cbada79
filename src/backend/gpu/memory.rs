//! GPU-resident data: batches split into chunks of whole polynomials (each within one storage
//! binding), weight buffers, and counters of every transfer and dispatch.

use super::arena::Tracked;
use std::sync::atomic::{AtomicU64, Ordering};

/// One chunk of a batch: `polys` whole polynomials in one buffer.
pub(crate) struct GpuChunk {
    pub data: Tracked,
    pub polys: usize,
}

/// The GPU side of a [`PolyBatch`](crate::backend::PolyBatch).
pub struct GpuData {
    pub(crate) device_id: u64,
    pub(crate) chunks: Vec<GpuChunk>,
    /// Polynomials per chunk (the last may hold fewer).
    pub(crate) per_chunk: usize,
}

impl GpuData {
    /// The polynomial range `[start, end)` of chunk `c`.
    pub(crate) fn range(&self, c: usize) -> (usize, usize) {
        let start = c * self.per_chunk;
        (start, start + self.chunks[c].polys)
    }
}

/// Counts of what crossed between host and device, of kernel dispatches, and of the host's
/// work around them (the GPU's overhead, which tests can assert without a GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferCounts {
    pub uploads: u64,
    pub upload_bytes: u64,
    pub readbacks: u64,
    pub readback_bytes: u64,
    pub dispatches: u64,
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Buffers created (batches, tables, per-dispatch parameters, readback staging).
    pub buffers_created: u64,
    /// Bytes of new storage buffers that wgpu zero-fills before their first use (outputs; an
    /// upload's buffer is filled by the upload instead).
    pub zeroed_bytes: u64,
    /// Bytes cleared by an explicit command (a reused buffer that must read as zeros).
    pub cleared_bytes: u64,
    /// Bind groups created (cached by the buffers they bind, so reused batches make none).
    pub bind_groups: u64,
    /// Host time recording and submitting operations, in nanoseconds.
    pub host_ns: u64,
    /// GPU time of the dispatches, in nanoseconds (only when profiling with timestamps).
    pub gpu_ns: u64,
    /// Bytes of global memory the dispatches read and wrote, as modelled from each kernel's
    /// access pattern (see [`KernelProfile::bytes_read`](super::KernelProfile::bytes_read)).
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// What a GPU backend holds and has moved: see [`Backend::gpu_stats`](crate::backend::Backend::gpu_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Bytes of batches and weights held now.
    pub live_bytes: u64,
    /// Bytes of buffers kept for reuse (freed when a budget needs the room).
    pub idle_bytes: u64,
    /// The most held at once since the backend opened (or [`reset_peak`](crate::backend::GpuBackend::reset_peak)).
    pub peak_bytes: u64,
    /// The memory budget, when one was set.
    pub budget_bytes: Option<u64>,
    pub counts: TransferCounts,
}

impl TransferCounts {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &TransferCounts) -> TransferCounts {
        TransferCounts {
            uploads: self.uploads - earlier.uploads,
            upload_bytes: self.upload_bytes - earlier.upload_bytes,
            readbacks: self.readbacks - earlier.readbacks,
            readback_bytes: self.readback_bytes - earlier.readback_bytes,
            dispatches: self.dispatches - earlier.dispatches,
            submits: self.submits - earlier.submits,
            buffers_created: self.buffers_created - earlier.buffers_created,
            zeroed_bytes: self.zeroed_bytes - earlier.zeroed_bytes,
            cleared_bytes: self.cleared_bytes - earlier.cleared_bytes,
            bind_groups: self.bind_groups - earlier.bind_groups,
            host_ns: self.host_ns - earlier.host_ns,
            gpu_ns: self.gpu_ns - earlier.gpu_ns,
            bytes_read: self.bytes_read - earlier.bytes_read,
            bytes_written: self.bytes_written - earlier.bytes_written,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &TransferCounts) {
        self.uploads += other.uploads;
        self.upload_bytes += other.upload_bytes;
        self.readbacks += other.readbacks;
        self.readback_bytes += other.readback_bytes;
        self.dispatches += other.dispatches;
        self.submits += other.submits;
        self.buffers_created += other.buffers_created;
        self.zeroed_bytes += other.zeroed_bytes;
        self.cleared_bytes += other.cleared_bytes;
        self.bind_groups += other.bind_groups;
        self.host_ns += other.host_ns;
        self.gpu_ns += other.gpu_ns;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
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
    pub fn traffic(&self, t: super::dispatch::Traffic) {
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
