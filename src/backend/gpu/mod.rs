//! The wgpu backend: WGSL kernels from `shaders/`, data resident on the GPU between operations.
//!
//! A batch larger than one storage binding is split into chunks of whole polynomials; every
//! operation covers all limbs of a chunk in one dispatch per kernel stage. Operations record
//! into one open command buffer, submitted when results are needed (`dispatch.rs`); buffers
//! come from an arena (`arena.rs`).

mod arena;
mod context;
mod dispatch;
mod kernels;
mod linear;
mod memory;
mod ntt;
mod params;
mod profile;
mod rns;
mod sampling;
mod tables;
mod trace;
mod wait;

pub use context::AdapterReport;
pub(crate) use linear::GpuLinear;
pub(crate) use memory::GpuData;
pub use trace::DispatchTrace;
pub use wait::{Blocking, Pending, Wait};

use super::batch::{PolyBatch, Storage, WeightStorage, Weights};
use super::device::GpuOptions;
use super::device_data::DeviceData;
use super::rns_ops::ConversionCache;
use super::sparse::{SparseRows, SparseStorage, SparseWeights, check_sparse};
use super::telemetry::{GpuStats, KernelProfile, TransferCounts};
use super::{Backend, check_linear, mul_acc_terms};
use crate::math::Ring;
use crate::{Error, GpuError, Result};
use arena::{Arena, Taken, Tracked, Use};
use context::Context;
use dispatch::{Binds, DispatchState, Started};
use kernels::{Kernel, Kernels, WORKGROUP};
use memory::{Counters, GpuChunk};
use ntt::Fold;
use params::{ElementwiseParams, PolyMulAccParams, Shape};
use profile::Profiler;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tables::{GpuRingTables, ring_tables};
use wgpu::util::DeviceExt;

/// A ring's identity on the device: its degree and primes.
type RingKey = (usize, Vec<u32>);
/// A base conversion's identity: the source primes of each digit, and the target primes.
type ConversionKey = (Vec<Vec<u32>>, Vec<u32>);

/// Chunks hold a multiple of this many polynomials when at least this many fit.
pub(crate) const CHUNK_GROUP: usize = 6;

/// What first writes a new batch's buffer, which decides whether it must be cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstWrite {
    /// An upload fills every word.
    Upload,
    /// A kernel writes every word (accumulating kernels start from zero on their first
    /// dispatch into a chunk).
    Kernel,
    /// Nothing: it must read as zeros, so a reused buffer is cleared.
    Zeros,
}

static NEXT_DEVICE_ID: AtomicU64 = AtomicU64::new(1);

/// The wgpu implementation of [`Backend`].
pub struct GpuBackend {
    ctx: Context,
    kernels: Kernels,
    /// Words per NTT tile in workgroup memory.
    ntt_tile: usize,
    id: u64,
    max_chunk_bytes: u64,
    /// The adapter's largest storage binding (tables and weights must fit one).
    binding_limit: u64,
    /// Storage buffers in use and idle, and the budget.
    arena: Arc<Arena>,
    /// The parameter buffer and the cached bind groups (held while an operation records).
    dispatch_state: Mutex<DispatchState>,
    lose_after_dispatches: Option<u64>,
    /// See [`GpuOptions::record_only`].
    pub(crate) record_only: bool,
    /// Single-limb NTTs run (see [`Backend::ntt_count`]).
    ntts: AtomicU64,
    rings: Mutex<HashMap<RingKey, Arc<GpuRingTables>>>,
    /// Base-conversion tables by (source primes of each digit, target primes), with the
    /// offset of each digit's table: uploaded once per device.
    conversions: Mutex<HashMap<ConversionKey, Arc<Tracked>>>,
    /// The host tables those are made from.
    conversion_tables: ConversionCache,
    /// Small per-operation tables by their words (see `rns.rs`).
    op_tables: Mutex<HashMap<Vec<u32>, Arc<Tracked>>>,
    /// Timestamps per dispatch, when profiling on an adapter that has them.
    profiler: Option<Profiler>,
    /// Bound where a kernel reads nothing (every binding of the shared layout must be filled).
    placeholder: wgpu::Buffer,
    counters: Counters,
    /// Where every write, dispatch and read is recorded, if anywhere (see [`GpuHooks::trace`]).
    trace: Option<Arc<DispatchTrace>>,
}

/// What a caller may attach to a GPU backend besides its [`GpuOptions`] (see
/// [`GpuBackend::with_hooks`]).
#[derive(Clone, Default)]
pub struct GpuHooks {
    /// Record everything the backend asks of its device into this trace, to replay elsewhere
    /// (see [`DispatchTrace`]).
    pub trace: Option<Arc<DispatchTrace>>,
    /// How to wait for the device (default: [`Blocking`]).
    pub wait: Option<Arc<dyn Wait>>,
}

/// `[word, Shoup companion]` for every word of a `[…][limb]` layout.
pub(crate) fn shoup_pairs(ring: &Ring, words: &[u32]) -> Vec<u32> {
    let limbs = ring.limbs();
    words
        .iter()
        .enumerate()
        .flat_map(|(i, &w)| [w, ring.modulus(i % limbs).shoup(w)])
        .collect()
}

/// How messages name GPU device `id` (a backend, and the data it holds).
pub(crate) fn device_name(id: u64) -> String {
    format!("GPU device #{id}")
}

impl GpuBackend {
    /// Opens the default adapter; [`GpuError::NoAdapter`](crate::GpuError::NoAdapter) when there is none.
    pub fn new() -> Result<Self> {
        Self::with_options(GpuOptions::default())
    }

    /// Opens the default adapter with explicit options.
    pub fn with_options(options: GpuOptions) -> Result<Self> {
        Self::with_hooks(options, GpuHooks::default())
    }

    /// Opens the default adapter with explicit options and `hooks`.
    pub fn with_hooks(options: GpuOptions, hooks: GpuHooks) -> Result<Self> {
        let wait = hooks.wait.unwrap_or_else(|| Arc::new(Blocking));
        let ctx = Context::open(options.profile, !options.portable_products, wait)?;
        let binding_limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        let max_chunk_bytes = options
            .max_chunk_bytes
            .map_or(binding_limit, |b| b.min(binding_limit))
            & !3;
        let native = ctx.report.native_products;
        let ntt_tile = kernels::ntt_tile(
            ctx.limits.max_compute_workgroup_storage_size,
            options.max_ntt_tile,
        );
        let kernels = ctx.checked(0, || Kernels::compile(&ctx.device, native, ntt_tile))?;
        let placeholder = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let dispatch_state = DispatchState::new(&ctx.device, &ctx.limits);
        if let Some(t) = &hooks.trace {
            let modules = kernels::FAMILIES
                .iter()
                .map(|f| (f.0.to_string(), kernels::source(f.0, native, ntt_tile)))
                .collect();
            t.modules(modules, ntt_tile);
        }
        let profiler = if options.profile {
            Profiler::new(&ctx.device, &ctx.queue, dispatch::PARAM_SLOTS)
        } else {
            None
        };
        Ok(Self {
            ctx,
            kernels,
            ntt_tile,
            id: NEXT_DEVICE_ID.fetch_add(1, Ordering::Relaxed),
            max_chunk_bytes,
            binding_limit,
            arena: Arena::new(options.memory_budget),
            dispatch_state: Mutex::new(dispatch_state),
            lose_after_dispatches: options.lose_after_dispatches,
            record_only: options.record_only,
            rings: Mutex::new(HashMap::new()),
            conversions: Mutex::new(HashMap::new()),
            conversion_tables: ConversionCache::default(),
            op_tables: Mutex::new(HashMap::new()),
            profiler,
            placeholder,
            counters: Counters::default(),
            ntts: AtomicU64::new(0),
            trace: hooks.trace,
        })
    }

    /// Writes `bytes` into `buffer` at `offset` through the queue (the write lands before
    /// anything submitted after it), recorded in the trace if there is one.
    fn write_buffer(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        self.ctx.queue.write_buffer(buffer, offset, bytes);
        if let Some(t) = &self.trace {
            t.write(buffer, offset, bytes);
        }
    }

    /// What the adapter is and what it allows.
    pub fn report(&self) -> &AdapterReport {
        &self.ctx.report
    }

    /// Whether the adapter is a software rasterizer running on the CPU (Mesa's lavapipe).
    pub fn is_software(&self) -> bool {
        self.ctx.report.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }

    /// Uploads, readbacks and dispatches so far.
    pub fn counts(&self) -> TransferCounts {
        self.counters.snapshot()
    }

    /// Fills every idle buffer of the arena with `word`, as a buffer's earlier user might have
    /// left it: tests run kernels on such buffers to show that none reads what it did not
    /// write.
    #[doc(hidden)]
    pub fn scribble_idle_buffers(&self, word: u32) -> Result<()> {
        self.flush()?;
        self.ctx.checked(0, || {
            self.arena.each_idle_storage(|buffer| {
                let words = vec![word; buffer.size() as usize / 4];
                self.write_buffer(buffer, 0, bytemuck::cast_slice(&words));
            })
        })
    }

    /// Bytes of batches and weights currently held on the device.
    pub fn live_bytes(&self) -> u64 {
        self.arena.live()
    }

    /// Starts the peak of [`GpuStats::peak_bytes`] again from what is held now.
    pub fn reset_peak(&self) {
        self.arena.reset_peak();
    }

    fn gpu<'a>(&self, x: &'a PolyBatch) -> Result<&'a GpuData> {
        let data = match &x.data {
            Storage::Device(d) => d.get::<GpuData>(),
            Storage::Host(_) => None,
        };
        match data {
            Some(g) if g.device_id == self.id => Ok(g),
            _ => Err(Error::WrongDevice {
                expected: self.where_(),
                found: x.location(),
            }),
        }
    }

    /// Weights prepared on a GPU (`linear_tiles` checks it is this one).
    fn prepared<'a>(&self, w: Option<&'a GpuLinear>) -> Result<&'a GpuLinear> {
        w.ok_or_else(|| Error::WrongDevice {
            expected: self.where_(),
            found: "the CPU".into(),
        })
    }

    fn where_(&self) -> String {
        device_name(self.id)
    }

    fn tables(&self, ring: &Ring) -> Result<Arc<GpuRingTables>> {
        let key = (ring.degree(), ring.primes());
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = rings.get(&key) {
            return Ok(t.clone());
        }
        let (info, twiddles) = ring_tables(ring);
        let bytes = 4 * twiddles.len() as u64;
        if bytes > self.binding_limit {
            return Err(Error::Gpu(GpuError::OutOfMemory {
                bytes,
                why: "the ring's twiddle tables exceed one storage binding".into(),
            }));
        }
        let make = |label, words: &[u32]| {
            self.counters.upload(4 * words.len() as u64);
            self.counters.buffer(0);
            let buffer = self
                .ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytemuck::cast_slice(words),
                    usage: wgpu::BufferUsages::STORAGE,
                });
            if let Some(t) = &self.trace {
                t.write(&buffer, 0, bytemuck::cast_slice(words));
            }
            buffer
        };
        let t = self.ctx.checked(bytes, || {
            Arc::new(GpuRingTables {
                limb_info: make("limb info", &info),
                twiddles: make("twiddles", &twiddles),
            })
        })?;
        rings.insert(key, t.clone());
        Ok(t)
    }

    /// A tracked storage buffer from the arena, ready for `first`.
    fn alloc(&self, bytes: u64, first: FirstWrite) -> Result<Tracked> {
        self.arena.reserve(bytes)?;
        let size = bytes.max(4);
        // A new buffer: first free the idle ones if it would not fit beside them under the
        // budget, and once more if the driver refuses it.
        let create = |desc: &wgpu::BufferDescriptor<'_>| {
            if self.arena.crowded() {
                self.release_idle();
            }
            let make = || {
                self.ctx
                    .checked(bytes, || self.ctx.device.create_buffer(desc))
            };
            match make() {
                Err(Error::Gpu(GpuError::OutOfMemory { .. })) if self.arena.idle_bytes() > 0 => {
                    self.release_idle();
                    make()
                }
                other => other,
            }
        };
        let taken = self.arena.take(Use::Storage, size, create);
        let taken = match taken {
            Ok(t) => t,
            Err(e) => {
                self.arena.unreserve(bytes);
                return Err(e);
            }
        };
        if taken.fresh {
            // wgpu clears a new buffer before its first read unless a write fills it.
            let zeroed = if first == FirstWrite::Upload { 0 } else { size };
            self.counters.buffer(zeroed);
        }
        let tracked = Tracked::new(taken, bytes, self.arena.clone());
        if first == FirstWrite::Zeros && !tracked.fresh {
            self.run(0, |enc| enc.clear_buffer(&tracked.buffer, 0, None))?;
            if let Some(t) = &self.trace {
                t.clear(&tracked.buffer);
            }
            self.counters.cleared(size);
        }
        Ok(tracked)
    }

    /// Rows a dispatch's grid may have (kernels that give each workgroup row one output
    /// polynomial or tile split taller grids over several dispatches).
    fn max_grid_rows(&self) -> usize {
        self.ctx.limits.max_compute_workgroups_per_dimension as usize
    }

    /// How many polynomials of `ring` one chunk holds.
    fn per_chunk(&self, ring: &Ring) -> Result<usize> {
        let poly_bytes = 4 * ring.poly_words() as u64;
        let per = self.max_chunk_bytes / poly_bytes;
        if per == 0 {
            return Err(Error::Gpu(GpuError::OutOfMemory {
                bytes: poly_bytes,
                why: format!(
                    "one polynomial exceeds the {} bytes of a storage binding",
                    self.max_chunk_bytes
                ),
            }));
        }
        // Whole ciphertexts per chunk (groups of 2 or 3 polynomials) where the binding allows,
        // so a batch can be regrouped (`PolyBatch::regroup`) without moving data.
        let per = per as usize;
        Ok(if per >= CHUNK_GROUP {
            per - per % CHUNK_GROUP
        } else {
            per
        })
    }

    /// A read-only table (a layer's weights, an operation's indices) in one tracked storage
    /// binding; `what` names it in errors.
    fn upload_table(&self, table: &[u32], what: &str) -> Result<Tracked> {
        let bytes = 4 * table.len() as u64;
        if bytes > self.binding_limit {
            return Err(Error::Gpu(GpuError::OutOfMemory {
                bytes,
                why: format!("{what} exceeds one storage binding"),
            }));
        }
        let data = self.alloc(bytes, FirstWrite::Upload)?;
        // The write lands before anything unsubmitted, which may still use this buffer.
        self.flush()?;
        self.ctx.checked(bytes, || {
            self.write_buffer(&data.buffer, 0, bytemuck::cast_slice(table))
        })?;
        self.counters.upload(bytes);
        Ok(data)
    }

    /// Chunks for `batch` polynomials of `ring` that kernels will write.
    fn alloc_batch(&self, ring: &Arc<Ring>, batch: usize) -> Result<PolyBatch> {
        self.alloc_chunks(ring, batch, FirstWrite::Kernel)
    }

    /// Chunks for `batch` polynomials of `ring`, ready for `first`.
    fn alloc_chunks(&self, ring: &Arc<Ring>, batch: usize, first: FirstWrite) -> Result<PolyBatch> {
        let per_chunk = self.per_chunk(ring)?;
        let poly_bytes = 4 * ring.poly_words() as u64;
        let mut chunks = Vec::new();
        let mut left = batch;
        while left > 0 {
            let polys = left.min(per_chunk);
            chunks.push(GpuChunk {
                data: self.alloc(polys as u64 * poly_bytes, first)?,
                polys,
            });
            left -= polys;
        }
        Ok(PolyBatch {
            ring: ring.clone(),
            batch,
            data: Storage::Device(DeviceData::new(GpuData {
                device_id: self.id,
                chunks,
                per_chunk,
            })),
        })
    }

    fn elementwise(&self, kernel: Kernel, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        a.check_same_shape(b)?;
        let (ga, gb) = (self.gpu(a)?, self.gpu(b)?);
        let tables = self.tables(&a.ring)?;
        let out = self.alloc_batch(&a.ring, a.batch)?;
        let go = self.gpu(&out)?;
        self.run(0, |enc| {
            for (c, chunk) in go.chunks.iter().enumerate() {
                let words = chunk.polys * a.ring.poly_words();
                let binds = Binds {
                    table: &self.placeholder,
                    a: &ga.chunks[c].data.buffer,
                    b: &gb.chunks[c].data.buffer,
                    out: &chunk.data.buffer,
                };
                let groups = words.div_ceil(WORKGROUP as usize) as u64;
                self.dispatch(
                    enc,
                    &tables,
                    kernel,
                    ElementwiseParams {
                        shape: Shape::of(&a.ring, words),
                    },
                    groups,
                    binds,
                );
            }
        })?;
        Ok(out)
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!(
            "GPU ({}, {})",
            self.ctx.report.name, self.ctx.report.backend
        )
    }

    fn sync(&self) -> Result<()> {
        self.flush()?;
        self.ctx.wait()?;
        self.ctx.take_uncaptured()
    }

    /// Since the device opened; `None` unless it was opened with [`GpuOptions::profile`] on
    /// an adapter with timestamps.
    fn kernel_profile(&self) -> Option<Vec<KernelProfile>> {
        self.profiler.as_ref().map(Profiler::totals)
    }

    fn gpu_stats(&self) -> Option<GpuStats> {
        Some(GpuStats {
            live_bytes: self.live_bytes(),
            idle_bytes: self.arena.idle_bytes(),
            peak_bytes: self.arena.peak(),
            budget_bytes: self.arena.budget(),
            counts: self.counts(),
        })
    }

    fn upload(&self, ring: &Arc<Ring>, batch: usize, words: &[u32]) -> Result<PolyBatch> {
        ring.check_words(batch, words)?;
        let out = self.alloc_chunks(ring, batch, FirstWrite::Upload)?;
        let g = self.gpu(&out)?;
        let pw = ring.poly_words();
        // The writes land before anything unsubmitted, which may still use these buffers.
        self.flush()?;
        self.ctx.checked(4 * words.len() as u64, || {
            for (c, chunk) in g.chunks.iter().enumerate() {
                let (s, e) = g.range(c);
                let bytes = bytemuck::cast_slice(&words[s * pw..e * pw]);
                self.write_buffer(&chunk.data.buffer, 0, bytes);
            }
        })?;
        self.counters.upload(4 * words.len() as u64);
        Ok(out)
    }

    fn download(&self, x: &PolyBatch) -> Result<Vec<u32>> {
        self.ctx.alive()?;
        let g = self.gpu(x)?;
        if self.record_only {
            self.flush()?;
            self.counters.readback(4 * x.words() as u64);
            return Ok(vec![0; x.words()]);
        }
        let taken: Vec<Taken> = g
            .chunks
            .iter()
            .map(|c| {
                let size = c.data.buffer.size();
                let taken = self.arena.take(Use::Readback, size, |desc| {
                    Ok(self.ctx.device.create_buffer(desc))
                })?;
                if taken.fresh {
                    self.counters.buffer(0);
                }
                Ok(taken)
            })
            .collect::<Result<_>>()?;
        let staging: Vec<&wgpu::Buffer> = taken.iter().map(|t| &t.buffer).collect();
        self.run(4 * x.words() as u64, |enc| {
            for (c, s) in g.chunks.iter().zip(&staging) {
                enc.copy_buffer_to_buffer(&c.data.buffer, 0, s, 0, None);
            }
        })?;
        self.flush()?;
        let maps: Vec<_> = staging.iter().map(|s| wait::mapped(s.slice(..))).collect();
        let mapped = self.ctx.finish(true, async {
            let mut all = Vec::with_capacity(maps.len());
            for m in maps {
                all.push(m.await);
            }
            all
        });
        self.ctx.alive()?;
        for r in mapped {
            r.map_err(|e| Error::Gpu(GpuError::Driver(format!("readback failed: {e}"))))?;
        }
        let mut words = Vec::with_capacity(x.words());
        for (c, s) in g.chunks.iter().zip(&staging) {
            let view = s
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu(GpuError::Driver(format!("readback failed: {e:?}"))))?;
            let used = c.polys * x.ring.poly_words();
            let chunk = &bytemuck::cast_slice::<u8, u32>(&view)[..used];
            if let Some(t) = &self.trace {
                t.read(&c.data.buffer, chunk);
            }
            words.extend_from_slice(chunk);
            drop(view);
            s.unmap();
        }
        for t in taken {
            self.arena.give_back(Use::Readback, t);
        }
        self.counters.readback(4 * words.len() as u64);
        Ok(words)
    }

    fn zeros(&self, ring: &Arc<Ring>, batch: usize) -> Result<PolyBatch> {
        self.alloc_chunks(ring, batch, FirstWrite::Zeros)
    }

    fn ntt_count(&self) -> u64 {
        self.ntts.load(Ordering::Relaxed)
    }

    fn ntt_forward(&self, x: &mut PolyBatch) -> Result<()> {
        self.ntts.fetch_add(x.rows() as u64, Ordering::Relaxed);
        self.ntt(x, true, Fold::None)
    }

    fn ntt_inverse(&self, x: &mut PolyBatch) -> Result<()> {
        self.ntts.fetch_add(x.rows() as u64, Ordering::Relaxed);
        self.ntt(x, false, Fold::None)
    }

    fn add(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.elementwise(Kernel::PolyAdd, a, b)
    }

    fn sub(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.elementwise(Kernel::PolySub, a, b)
    }

    fn neg(&self, a: &PolyBatch) -> Result<PolyBatch> {
        self.elementwise(Kernel::PolyNeg, a, a)
    }

    fn mul(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.elementwise(Kernel::PolyMul, a, b)
    }

    fn mul_acc(&self, a: &PolyBatch, b: &PolyBatch, groups: usize) -> Result<PolyBatch> {
        let terms = mul_acc_terms(a, b, groups)?;
        let (ga, gb) = (self.gpu(a)?, self.gpu(b)?);
        let ring = &a.ring;
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, groups)?;
        let go = self.gpu(&out)?;
        self.run(0, |enc| {
            let mut started = Started::new(go.chunks.len());
            for (o, out_chunk) in go.chunks.iter().enumerate() {
                let (g0, g1) = go.range(o);
                for c in 0..ga.chunks.len() {
                    let (s, e) = ga.range(c);
                    if g1 * terms <= s || e <= g0 * terms {
                        continue; // no term of these groups lies in this input chunk
                    }
                    let words = (g1 - g0) * ring.poly_words();
                    let binds = Binds {
                        table: &self.placeholder,
                        a: &ga.chunks[c].data.buffer,
                        b: &gb.chunks[c].data.buffer,
                        out: &out_chunk.data.buffer,
                    };
                    let p = PolyMulAccParams {
                        shape: Shape::of(ring, words).accumulating(started.onto(o)),
                        terms: terms as u32,
                        out_first: g0 as u32,
                        in_first: s as u32,
                        in_count: (e - s) as u32,
                    };
                    self.dispatch(
                        enc,
                        &tables,
                        Kernel::PolyMulAcc,
                        p,
                        words.div_ceil(WORKGROUP as usize) as u64,
                        binds,
                    );
                }
            }
            enc.clear_untouched(&started, go);
        })?;
        Ok(out)
    }

    fn upload_weights(
        &self,
        ring: &Arc<Ring>,
        outputs: usize,
        inputs: usize,
        words: &[u32],
    ) -> Result<Weights> {
        Weights::check(ring, outputs, inputs, words)?;
        let data = self.upload_linear(ring, &SparseRows::dense(outputs, inputs, words))?;
        Ok(Weights {
            ring: ring.clone(),
            outputs,
            inputs,
            data: WeightStorage::Device(DeviceData::new(data)),
        })
    }

    fn linear(&self, w: &Weights, x: &PolyBatch) -> Result<PolyBatch> {
        check_linear(w, x)?;
        let gw = match &w.data {
            WeightStorage::Device(d) => d.get::<GpuLinear>(),
            WeightStorage::Host { .. } => None,
        };
        self.linear_tiles(self.prepared(gw)?, w.outputs, x)
    }

    fn upload_sparse(
        &self,
        ring: &Arc<Ring>,
        inputs: usize,
        rows: &SparseRows,
    ) -> Result<SparseWeights> {
        SparseWeights::prepare(ring, inputs, rows, || {
            Ok(SparseStorage::Device(DeviceData::new(
                self.upload_linear(ring, rows)?,
            )))
        })
    }

    fn linear_sparse(&self, w: &SparseWeights, x: &PolyBatch) -> Result<PolyBatch> {
        check_sparse(w, x)?;
        let gw = match &w.data {
            SparseStorage::Device(d) => d.get::<GpuLinear>(),
            SparseStorage::Host { .. } => None,
        };
        self.linear_tiles(self.prepared(gw)?, w.outputs, x)
    }

    fn concat(&self, parts: &[&PolyBatch]) -> Result<PolyBatch> {
        self.concat_gpu(parts)
    }

    fn gather(
        &self,
        x: &PolyBatch,
        sources: &[Option<usize>],
        limbs: Range<usize>,
    ) -> Result<PolyBatch> {
        self.gather_gpu(x, sources, limbs)
    }

    fn base_convert(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        self.base_convert_gpu(x, digits, to)
    }

    fn automorphism(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch> {
        self.automorphism_gpu(x, g)
    }

    fn scalar_affine(&self, x: &PolyBatch, mul: &[u32], add: &[u32]) -> Result<PolyBatch> {
        self.scalar_affine_gpu(x, mul, add)
    }
    fn seeded_masks(
        &self,
        ring: &Arc<Ring>,
        seed: &[u8; 32],
        streams: Range<u64>,
    ) -> Result<PolyBatch> {
        self.seeded_masks_gpu(ring, seed, streams)
    }

    fn small_polys(&self, ring: &Arc<Ring>, coeffs: &[i8]) -> Result<PolyBatch> {
        self.small_polys_gpu(ring, coeffs)
    }

    fn tensor(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.tensor_gpu(a, b)
    }

    fn key_mul_acc(&self, ext: &PolyBatch, key: &PolyBatch, digits: usize) -> Result<PolyBatch> {
        self.key_mul_acc_gpu(ext, key, digits)
    }

    fn scaled_difference(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        self.scaled_difference_gpu(a, b, offset, scale)
    }

    fn ntt_forward_scaled_difference(
        &self,
        a: &PolyBatch,
        b: PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        self.ntt_forward_difference(a, b, offset, scale)
    }

    fn base_convert_ntt(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        self.base_convert_forward(x, digits, to)
    }
}
