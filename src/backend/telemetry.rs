//! What a device reports about its work, in types every backend and report shares whether or
//! not the GPU backend is built: transfer and dispatch counts, a GPU's memory, and the time
//! and traffic per kernel.

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
    /// access pattern (see [`KernelProfile::bytes_read`]).
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// What a GPU backend holds and has moved: see [`Backend::gpu_stats`](super::Backend::gpu_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Bytes of batches and weights held now.
    pub live_bytes: u64,
    /// Bytes of buffers kept for reuse (freed when a budget needs the room).
    pub idle_bytes: u64,
    /// The most held at once since the backend opened (or `GpuBackend::reset_peak`).
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

/// What one kernel cost over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelProfile {
    pub kernel: String,
    pub dispatches: u64,
    /// GPU time between the start and end timestamps of its dispatches.
    pub gpu_ns: u64,
    /// Bytes of global memory its dispatches read and write, modelled from each kernel's
    /// access pattern with no cache: the words a dispatch binds, once each (in-place and
    /// accumulating kernels also read their output; a table is counted whole, though a kernel
    /// may use part of it), except where a kernel counts what it touches: the linear layers
    /// (each input word once per tile of outputs that reads it, and the weights once per
    /// workgroup; see `gpu/linear.rs`), gathers and scaled differences (the limbs they use).
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl KernelProfile {
    /// Bytes moved per second of GPU time, in GB/s (0 without timestamps).
    pub fn gb_per_second(&self) -> f64 {
        if self.gpu_ns == 0 {
            return 0.0;
        }
        (self.bytes_read + self.bytes_written) as f64 / self.gpu_ns as f64
    }
}
