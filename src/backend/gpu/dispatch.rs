//! Recording kernels. Operations are recorded one after another into one open command buffer,
//! submitted when its results are needed (a readback, a sync: the scheduler syncs once per
//! stage), before the host writes a buffer (a write lands before anything still unsubmitted),
//! or when it holds [`PARAM_SLOTS`] dispatches. Every dispatch's parameters go to one uniform
//! buffer, written once per submission and bound at a dynamic offset, and bind groups are
//! cached by the buffers they bind. With the arena's reused buffers, a repeated operation
//! creates neither buffers nor bind groups.

use super::kernels::{Kernel, PARAM_BYTES};
use super::params::KernelParams;
use super::profile::{Pending, Traffic};
use super::tables::GpuRingTables;
use super::{GpuBackend, GpuData};
use crate::Result;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// Dispatches one submission can hold before it is split (the uniform buffer's slots).
pub(crate) const PARAM_SLOTS: u64 = 1024;
/// Bind groups kept; beyond this the cache starts again (buffers of past shapes).
const MAX_CACHED_BIND_GROUPS: usize = 8192;

/// The buffers one dispatch binds besides its parameters and the ring's limb table.
pub(crate) struct Binds<'a> {
    pub table: &'a wgpu::Buffer,
    pub a: &'a wgpu::Buffer,
    pub b: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
}

/// The uniform buffer of parameters, the bind groups made so far, and the commands recorded
/// but not yet submitted.
pub(crate) struct DispatchState {
    params: wgpu::Buffer,
    open: Option<Open>,
    /// Bytes between two dispatches' parameters (the adapter's uniform offset alignment).
    stride: u64,
    bind_groups: HashMap<[wgpu::Buffer; 6], wgpu::BindGroup>,
}

impl DispatchState {
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> Self {
        let stride = u64::from(limits.min_uniform_buffer_offset_alignment).max(PARAM_BYTES as u64);
        Self {
            params: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("hegpu params"),
                size: stride * PARAM_SLOTS,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            stride,
            bind_groups: HashMap::new(),
            open: None,
        }
    }
}

/// Commands recorded and not yet submitted.
struct Open {
    encoder: wgpu::CommandEncoder,
    /// The parameters of the dispatches recorded so far, `stride` bytes apart.
    params: Vec<u8>,
    dispatches: u64,
    /// The recorded dispatches, when profiling.
    pending: Vec<Pending>,
}

/// Access to the open command buffer while an operation records into it.
pub(crate) struct Recorder<'a> {
    backend: &'a GpuBackend,
    state: MutexGuard<'a, DispatchState>,
    /// Time spent waiting for timestamps (not host recording time).
    waited: Duration,
}

impl Deref for Recorder<'_> {
    type Target = wgpu::CommandEncoder;
    fn deref(&self) -> &wgpu::CommandEncoder {
        &self
            .state
            .open
            .as_ref()
            .expect("a recorder has open commands")
            .encoder
    }
}

impl DerefMut for Recorder<'_> {
    fn deref_mut(&mut self) -> &mut wgpu::CommandEncoder {
        &mut self.open().encoder
    }
}

impl Recorder<'_> {
    /// Clears the output chunks of `out` that no dispatch of an accumulating kernel started.
    pub fn clear_untouched(&mut self, started: &Started, out: &GpuData) {
        for o in started.untouched() {
            let buffer = &out.chunks[o].data.buffer;
            self.open().encoder.clear_buffer(buffer, 0, None);
            if let Some(t) = &self.backend.trace {
                t.clear(buffer);
            }
            self.backend.counters.cleared(buffer.size());
        }
    }

    /// The open commands, opened now if there are none.
    fn open(&mut self) -> &mut Open {
        let device = &self.backend.ctx.device;
        self.state.open.get_or_insert_with(|| Open {
            encoder: device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("hegpu"),
            }),
            params: Vec::new(),
            dispatches: 0,
            pending: Vec::new(),
        })
    }

    /// Writes the parameters and submits the open commands, if any. When profiling, waits
    /// for the dispatches' timestamps.
    fn submit(&mut self) {
        let Some(mut open) = self.state.open.take() else {
            return;
        };
        let ctx = &self.backend.ctx;
        if self.backend.record_only {
            self.backend.counters.submit();
            return;
        }
        if !open.params.is_empty() {
            ctx.queue.write_buffer(&self.state.params, 0, &open.params);
        }
        let profiler = self.backend.profiler.as_ref();
        if let Some(p) = profiler.filter(|_| !open.pending.is_empty()) {
            p.resolve(&mut open.encoder, open.pending.len());
        }
        ctx.queue.submit([open.encoder.finish()]);
        self.backend.counters.submit();
        if let Some(p) = profiler.filter(|_| !open.pending.is_empty()) {
            let t = Instant::now();
            let ns = p.collect(ctx, &open.pending);
            self.backend.counters.gpu_time(ns);
            self.waited += t.elapsed();
        }
    }

    /// The bind group of `buffers` (parameters, limb table, table, a, b, out), made once.
    fn bind_group(&mut self, buffers: [&wgpu::Buffer; 6], label: &str) -> wgpu::BindGroup {
        if self.state.bind_groups.len() >= MAX_CACHED_BIND_GROUPS {
            self.state.bind_groups.clear();
        }
        let key = buffers.map(Clone::clone);
        if let Some(group) = self.state.bind_groups.get(&key) {
            return group.clone();
        }
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: if i == 0 {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAM_BYTES as u64),
                    })
                } else {
                    b.as_entire_binding()
                },
            })
            .collect();
        let group = self
            .backend
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &self.backend.kernels.layout,
                entries: &entries,
            });
        self.backend.counters.bind_group();
        self.state.bind_groups.insert(key, group.clone());
        group
    }
}

impl GpuBackend {
    /// Frees the arena's idle buffers and the cached bind groups, which hold references to
    /// them (the driver frees a buffer once nothing, submitted work included, uses it).
    pub(crate) fn release_idle(&self) {
        self.arena.release_idle();
        let mut state = self
            .dispatch_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        state.bind_groups.clear();
    }

    /// Records `record(recorder)` into the open commands (submitted later: see the module
    /// documentation) and reports any GPU error.
    pub(crate) fn run(&self, bytes: u64, record: impl FnOnce(&mut Recorder<'_>)) -> Result<()> {
        self.with_recorder(bytes, |rec| {
            rec.open();
            record(rec);
        })
    }

    /// Submits the commands recorded so far, if any.
    pub(crate) fn flush(&self) -> Result<()> {
        self.with_recorder(0, |rec| rec.submit())
    }

    /// Runs `f` with the recorder inside error scopes, counting the host's time.
    fn with_recorder(&self, bytes: u64, f: impl FnOnce(&mut Recorder<'_>)) -> Result<()> {
        self.ctx.checked(bytes, || {
            let start = Instant::now();
            let state = self
                .dispatch_state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut recorder = Recorder {
                backend: self,
                state,
                waited: Duration::ZERO,
            };
            f(&mut recorder);
            let host = start.elapsed().saturating_sub(recorder.waited);
            self.counters.host_time(host.as_nanos() as u64);
        })
    }

    /// Records one dispatch of `kernel` over `workgroups` workgroups (a grid-stride loop covers
    /// the rest), counting its bindings' footprint as its traffic.
    pub(crate) fn dispatch<P: KernelParams>(
        &self,
        rec: &mut Recorder<'_>,
        ring: &GpuRingTables,
        kernel: Kernel,
        params: P,
        workgroups: u64,
        binds: Binds<'_>,
    ) {
        let traffic = self.footprint(kernel, &params, &binds);
        self.dispatch_grid(rec, ring, kernel, params, [workgroups, 1], binds, traffic);
    }

    /// What a dispatch reads and writes when it touches every word it binds once: its
    /// inputs and table, and its output (read too by in-place and accumulating kernels).
    pub(crate) fn footprint<P: KernelParams>(
        &self,
        kernel: Kernel,
        params: &P,
        binds: &Binds<'_>,
    ) -> Traffic {
        let size = |b: &wgpu::Buffer| if *b == self.placeholder { 0 } else { b.size() };
        let written = size(binds.out);
        let reads_out = params.shape().accumulate == 1 || kernel.in_place();
        let read = size(binds.table)
            + size(binds.a)
            + if binds.b == binds.a { 0 } else { size(binds.b) }
            + if reads_out { written } else { 0 };
        Traffic { read, written }
    }

    /// Records one dispatch of `kernel` over a `[x, y]` grid of workgroups (`x` clamped to the
    /// adapter's limit: kernels loop over the rest), which moves `traffic`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dispatch_grid<P: KernelParams>(
        &self,
        rec: &mut Recorder<'_>,
        ring: &GpuRingTables,
        kernel: Kernel,
        params: P,
        grid: [u64; 2],
        binds: Binds<'_>,
        traffic: Traffic,
    ) {
        debug_assert!(
            P::KERNELS.contains(&kernel),
            "{kernel:?} does not read {}",
            P::NAME
        );
        if rec.open().dispatches == PARAM_SLOTS {
            rec.submit();
        }
        let stride = rec.state.stride;
        let open = rec.open();
        let slot = open.dispatches;
        let offset = slot * stride;
        open.params.resize(offset as usize, 0);
        open.params.extend_from_slice(bytemuck::bytes_of(&params));
        open.dispatches += 1;
        let uniform = rec.state.params.clone();
        let group = rec.bind_group(
            [
                &uniform,
                &ring.limb_info,
                binds.table,
                binds.a,
                binds.b,
                binds.out,
            ],
            kernel.entry(),
        );
        self.counters.traffic(traffic);
        let profiler = self.profiler.as_ref();
        if profiler.is_some() {
            rec.open().pending.push(Pending { kernel, traffic });
        }
        let slot = slot as u32;
        let timestamps = profiler.map(|p| wgpu::ComputePassTimestampWrites {
            query_set: &p.queries,
            beginning_of_pass_write_index: Some(2 * slot),
            end_of_pass_write_index: Some(2 * slot + 1),
        });
        let mut pass = rec
            .open()
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry()),
                timestamp_writes: timestamps,
            });
        pass.set_pipeline(self.kernels.get(kernel));
        pass.set_bind_group(0, &group, &[offset as u32]);
        let limit = u64::from(self.ctx.limits.max_compute_workgroups_per_dimension);
        debug_assert!(
            grid[1] <= limit,
            "callers split grids taller than the limit"
        );
        let [x, y] = grid.map(|g| g.clamp(1, limit) as u32);
        if let Some(t) = &self.trace {
            let bound = [&ring.limb_info, binds.table, binds.a, binds.b, binds.out];
            t.dispatch(kernel, bytemuck::bytes_of(&params), bound, [x, y]);
        }
        pass.dispatch_workgroups(x, y, 1);
        let dispatches = self.counters.dispatch();
        if self.lose_after_dispatches == Some(dispatches) {
            self.ctx
                .lose_after(format!("simulated loss after {dispatches} dispatches"));
        }
    }
}

/// Which output chunks of an accumulating operation have had their first dispatch.
pub(crate) struct Started(Vec<bool>);

impl Started {
    pub fn new(chunks: usize) -> Self {
        Self(vec![false; chunks])
    }

    /// Whether a dispatch into chunk `o` adds to earlier ones (and notes that it starts it).
    pub fn onto(&mut self, o: usize) -> bool {
        std::mem::replace(&mut self.0[o], true)
    }

    /// The chunks no dispatch wrote: they must be cleared.
    pub fn untouched(&self) -> impl Iterator<Item = usize> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, s)| !**s)
            .map(|(o, _)| o)
    }
}
