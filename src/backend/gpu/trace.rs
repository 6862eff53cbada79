//! A record of what a GPU backend asks of its device, for replaying the kernels on another
//! WebGPU implementation: every buffer write, clear and copy, every dispatch (kernel, parameter
//! bytes, bound buffers, grid) and every read with the words it returned, in program order, and
//! the WGSL modules as compiled. `scripts/dawn-check` writes traces with `examples/dawn_trace.rs`
//! (which checks each read against the CPU twin) and replays them on Dawn, comparing every read
//! word for word.

use super::kernels::Kernel;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// The record; attach one with [`GpuHooks::trace`](super::GpuHooks::trace).
#[derive(Default)]
pub struct DispatchTrace {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each buffer seen, held so that no later buffer can take its identity.
    ids: HashMap<wgpu::Buffer, usize>,
    manifest: Manifest,
    /// Bytes of writes and expected reads, at the offsets their events name.
    blob: Vec<u8>,
}

/// What `trace.json` holds (its bytes are in `trace.bin`).
#[derive(Default, Serialize)]
struct Manifest {
    /// WGSL source per shader file.
    modules: BTreeMap<String, String>,
    /// Largest NTT tile in words: the workgroup storage the replay needs is 4 bytes each.
    ntt_tile: usize,
    /// Size of each buffer, by id.
    buffers: Vec<u64>,
    events: Vec<Event>,
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Event {
    /// `len` bytes from `at` in the blob into `buffer` at `offset`.
    Write {
        buffer: usize,
        offset: u64,
        at: usize,
        len: usize,
    },
    Clear {
        buffer: usize,
    },
    Copy {
        src: usize,
        src_offset: u64,
        dst: usize,
        dst_offset: u64,
        size: u64,
    },
    /// `bindings`: the buffers at bindings 1 to 5.
    Dispatch {
        module: &'static str,
        entry: &'static str,
        params: Vec<u32>,
        bindings: [usize; 5],
        grid: [u32; 2],
    },
    /// The first `len` bytes of `buffer` must equal the blob's from `at`.
    Read {
        buffer: usize,
        at: usize,
        len: usize,
    },
}

impl DispatchTrace {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Events recorded so far.
    pub fn events(&self) -> usize {
        self.with(|s| s.manifest.events.len())
    }

    /// Writes `trace.json` and `trace.bin` into `dir` (created if missing).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        self.with(|s| {
            let json = serde_json::to_vec(&s.manifest).map_err(std::io::Error::other)?;
            std::fs::write(dir.join("trace.json"), json)?;
            std::fs::write(dir.join("trace.bin"), &s.blob)
        })
    }

    pub(super) fn modules(&self, modules: BTreeMap<String, String>, ntt_tile: usize) {
        self.with(|s| {
            s.manifest.modules = modules;
            s.manifest.ntt_tile = ntt_tile;
        });
    }

    pub(super) fn write(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        self.with(|s| {
            let buffer = s.id(buffer);
            let at = s.append(bytes);
            s.manifest.events.push(Event::Write {
                buffer,
                offset,
                at,
                len: bytes.len(),
            });
        });
    }

    pub(super) fn clear(&self, buffer: &wgpu::Buffer) {
        self.with(|s| {
            let buffer = s.id(buffer);
            s.manifest.events.push(Event::Clear { buffer });
        });
    }

    pub(super) fn copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.with(|s| {
            let (src, dst) = (s.id(src), s.id(dst));
            s.manifest.events.push(Event::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                size,
            });
        });
    }

    pub(super) fn dispatch(
        &self,
        kernel: Kernel,
        params: &[u8],
        bindings: [&wgpu::Buffer; 5],
        grid: [u32; 2],
    ) {
        self.with(|s| {
            let bindings = bindings.map(|b| s.id(b));
            s.manifest.events.push(Event::Dispatch {
                module: kernel.family(),
                entry: kernel.entry(),
                params: bytemuck::pod_collect_to_vec(params),
                bindings,
                grid,
            });
        });
    }

    pub(super) fn read(&self, buffer: &wgpu::Buffer, words: &[u32]) {
        self.with(|s| {
            let buffer = s.id(buffer);
            let at = s.append(bytemuck::cast_slice(words));
            s.manifest.events.push(Event::Read {
                buffer,
                at,
                len: 4 * words.len(),
            });
        });
    }
}

impl State {
    fn id(&mut self, buffer: &wgpu::Buffer) -> usize {
        let next = self.ids.len();
        let id = *self.ids.entry(buffer.clone()).or_insert(next);
        if id == next {
            self.manifest.buffers.push(buffer.size());
        }
        id
    }

    fn append(&mut self, bytes: &[u8]) -> usize {
        let at = self.blob.len();
        self.blob.extend_from_slice(bytes);
        at
    }
}
