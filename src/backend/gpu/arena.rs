//! Buffers reused by size. A dropped batch returns its buffers here and the next request of the
//! same size and usage takes one back, so a steady stream of equal batches creates no buffers
//! after the first, and wgpu zero-fills none (it clears only buffers never written before).
//! Bytes in use count against the backend's budget; the backend releases the idle buffers when
//! a new buffer would not fit beside them.

use crate::{Error, GpuError, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a buffer of the arena is used for: its usage flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Use {
    /// Batches, weights and operation tables: storage, copied to and from.
    Storage,
    /// Readback staging: mapped for reading, copied into.
    Readback,
}

impl Use {
    fn flags(self) -> wgpu::BufferUsages {
        match self {
            Use::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
            }
            Use::Readback => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        }
    }
}

/// A buffer taken from the arena: `fresh` when it was just created (wgpu zero-fills it before
/// its first read), otherwise it holds whatever its last user left. `serial` orders the
/// arena's buffers by creation.
pub(crate) struct Taken {
    pub buffer: wgpu::Buffer,
    pub fresh: bool,
    pub serial: u64,
}

/// The arena of one device. Idle buffers are taken oldest first, so a batch that repeats the
/// one before it gets the same buffers in the same roles, and its bind groups are found cached.
pub(crate) struct Arena {
    idle: Mutex<HashMap<(Use, u64), BTreeMap<u64, wgpu::Buffer>>>,
    created: AtomicU64,
    idle_bytes: AtomicU64,
    /// Bytes of storage buffers in use (batches, weights, tables).
    live: AtomicU64,
    /// The most `live` has been since the backend opened or the peak was reset.
    peak: AtomicU64,
    budget: Option<u64>,
}

impl Arena {
    pub fn new(budget: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            created: AtomicU64::new(0),
            idle_bytes: AtomicU64::new(0),
            live: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            budget,
        })
    }

    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// Bytes held by buffers waiting to be reused.
    pub fn idle_bytes(&self) -> u64 {
        self.idle_bytes.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::Relaxed);
    }

    /// The oldest idle buffer of exactly `size` bytes and this use, if there is one.
    fn reuse(&self, what: Use, size: u64) -> Option<Taken> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let (serial, buffer) = idle.get_mut(&(what, size))?.pop_first()?;
        self.idle_bytes.fetch_sub(size, Ordering::Relaxed);
        Some(Taken {
            buffer,
            fresh: false,
            serial,
        })
    }

    /// Takes back a buffer nobody uses any more.
    pub fn give_back(&self, what: Use, taken: Taken) {
        let size = taken.buffer.size();
        self.idle_bytes.fetch_add(size, Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let class = idle.entry((what, size)).or_default();
        class.insert(taken.serial, taken.buffer);
    }

    /// Calls `f` with every idle storage buffer.
    pub fn each_idle_storage(&self, mut f: impl FnMut(&wgpu::Buffer)) {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        for ((what, _), class) in idle.iter() {
            if *what == Use::Storage {
                class.values().for_each(&mut f);
            }
        }
    }

    /// Releases every idle buffer (the driver frees them once no submitted work uses them).
    pub fn release_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.clear();
        self.idle_bytes.store(0, Ordering::Relaxed);
    }

    /// Whether the bytes in use and the idle ones together exceed the budget.
    pub fn crowded(&self) -> bool {
        self.budget
            .is_some_and(|limit| self.live() + self.idle_bytes() > limit)
    }

    /// Reserves `bytes` of storage against the budget and notes the peak; [`Tracked`] releases
    /// them.
    pub fn reserve(&self, bytes: u64) -> Result<()> {
        let before = self.live.fetch_add(bytes, Ordering::Relaxed);
        if let Some(limit) = self.budget
            && before + bytes > limit
        {
            self.live.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Error::Gpu(GpuError::OutOfMemory {
                bytes,
                why: format!("the GPU memory budget is {limit} bytes and {before} are in use"),
            }));
        }
        self.peak.fetch_max(before + bytes, Ordering::Relaxed);
        Ok(())
    }

    pub fn unreserve(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A buffer of `size` bytes for `what`: an idle one, or a new one from `create`.
    pub fn take(
        &self,
        what: Use,
        size: u64,
        create: impl FnOnce(&wgpu::BufferDescriptor<'_>) -> Result<wgpu::Buffer>,
    ) -> Result<Taken> {
        if let Some(taken) = self.reuse(what, size) {
            return Ok(taken);
        }
        let buffer = create(&wgpu::BufferDescriptor {
            label: Some(match what {
                Use::Storage => "hegpu storage",
                Use::Readback => "hegpu readback",
            }),
            size,
            usage: what.flags(),
            mapped_at_creation: false,
        })?;
        Ok(Taken {
            buffer,
            fresh: true,
            serial: self.created.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// A storage buffer whose bytes count against the budget while it is in use; dropped, it
/// goes back to the arena.
pub(crate) struct Tracked {
    pub buffer: wgpu::Buffer,
    /// Whether wgpu created it for this use (and zero-fills it before its first read).
    pub fresh: bool,
    serial: u64,
    bytes: u64,
    arena: Arc<Arena>,
}

impl Tracked {
    pub fn new(taken: Taken, bytes: u64, arena: Arc<Arena>) -> Self {
        Self {
            buffer: taken.buffer,
            fresh: taken.fresh,
            serial: taken.serial,
            bytes,
            arena,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.arena.unreserve(self.bytes);
        let taken = Taken {
            buffer: self.buffer.clone(),
            fresh: false,
            serial: self.serial,
        };
        self.arena.give_back(Use::Storage, taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_bytes_in_use() {
        let arena = Arena::new(Some(100));
        arena.reserve(60).unwrap();
        assert!(matches!(
            arena.reserve(50),
            Err(Error::Gpu(GpuError::OutOfMemory { bytes: 50, .. }))
        ));
        assert_eq!((arena.live(), arena.peak()), (60, 60));
        assert!(!arena.crowded() && !Arena::new(None).crowded());
        arena.unreserve(60);
        arena.reserve(30).unwrap();
        assert_eq!((arena.live(), arena.peak()), (30, 60));
        arena.reset_peak();
        assert_eq!(arena.peak(), 30);
    }
}
