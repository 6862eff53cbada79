//! Recycled host buffers. Every CPU operation returns a new batch; allocating it fresh costs a
//! page fault per 4 KiB (glibc maps large blocks anew), which was a quarter of a key switch.
//! Each CPU backend owns a pool: the host batches it makes give their buffers back to it when
//! dropped, and its new outputs take them.

use std::sync::Mutex;

/// Buffers kept at most, and their total size in words (512 MiB). Room for four of the
/// largest buffers a deep batch plan cycles through (a degree-8 MLP at N = 2^14 takes and drops
/// 120 MB buffers 33 times a batch; with room for two, 32 of those were fresh mappings and the
/// page faults took a quarter of the evaluation).
const MAX_BUFFERS: usize = 64;
const MAX_WORDS: usize = 128 << 20;

/// Free buffers, oldest first.
#[derive(Default)]
pub(crate) struct BufferPool {
    free: Mutex<Vec<Vec<u32>>>,
}

impl BufferPool {
    /// A buffer of `len` words: zeroed when `zero`, else with unspecified (stale) contents that the
    /// caller overwrites entirely.
    pub(crate) fn take(&self, len: usize, zero: bool) -> Vec<u32> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            // The smallest buffer that fits, so large ones stay for large requests.
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len && v.capacity() <= 2 * len.max(1024))
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| free.remove(i))
        };
        match reused {
            Some(mut v) => {
                if !zero && v.len() >= len {
                    // Stale words are never read: the caller writes all of them.
                    v.truncate(len);
                } else {
                    v.clear();
                    v.resize(len, 0);
                }
                v
            }
            None => vec![0u32; len],
        }
    }

    /// Gives a buffer back; when the pool is full the oldest buffers make room, so the pool
    /// follows the sizes in use now.
    pub(crate) fn give(&self, v: Vec<u32>) {
        if v.capacity() < 1024 || v.capacity() > MAX_WORDS {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let mut held: usize = free.iter().map(Vec::capacity).sum();
        while !free.is_empty() && (free.len() >= MAX_BUFFERS || held + v.capacity() > MAX_WORDS) {
            held -= free.remove(0).capacity();
        }
        free.push(v);
    }
}
