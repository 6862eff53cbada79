//! The process allocator's settings for a long-running server.
//!
//! glibc raises its mmap threshold each time a large mapped block is freed (up to 32 MiB), so a
//! server that receives evaluation keys and request bodies of tens of megabytes on several
//! threads soon serves them from per-thread heap arenas, each of which keeps what it once held.
//! With 32 concurrent clients under `--key-memory 256M --body-memory 256M` the server peaked at
//! 1,284 MiB; with the threshold fixed at 128 KiB (large blocks mapped and unmapped, every time)
//! at 793 MiB, the settings' sum and the model, at the same request latency (2026-12-06,
//! `scripts/service-burst`).

/// Large blocks (128 KiB and more) come from and go back to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks() {
    // SAFETY: mallopt only sets a parameter of glibc's allocator (under its own lock); it
    // touches no memory of ours. Called once, before the server's threads start.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Other allocators keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks() {}
