//! What running a plan reports: where it ran, and per stage its pieces, time and GPU traffic.

use crate::backend::TransferCounts;

/// Where a batch ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On the CPU only (no GPU, a lost one, or after a GPU failure in resident mode).
    Cpu,
    /// Every tensor on the GPU.
    Resident,
    /// Tensors on the host, chunks streamed through the GPU (and the CPU when splitting).
    Streamed,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Cpu => "cpu",
            Mode::Resident => "gpu-resident",
            Mode::Streamed => "gpu-streamed",
        })
    }
}

/// What one stage did.
#[derive(Clone, Debug, Default)]
pub struct StageReport {
    pub what: String,
    /// Chunks of outputs run on each device.
    pub gpu_chunks: usize,
    pub cpu_chunks: usize,
    pub seconds: f64,
    /// Uploads, readbacks and dispatches of the GPU during the stage.
    pub counts: TransferCounts,
}

impl StageReport {
    /// Adds another batch's figures for the same stage.
    pub fn add(&mut self, other: &StageReport) {
        self.gpu_chunks += other.gpu_chunks;
        self.cpu_chunks += other.cpu_chunks;
        self.seconds += other.seconds;
        self.counts.add(&other.counts);
    }
}

/// What a batch did, stage by stage.
#[derive(Clone, Debug)]
pub struct ScheduleReport {
    pub mode: Mode,
    pub stages: Vec<StageReport>,
    /// Why the GPU's work went to the CPU, when it did.
    pub fallback: Option<String>,
    /// Ciphertexts key-switched (relinearized) during the run, on every device.
    pub key_switches: u64,
    /// Single-limb NTTs run during the run, on every device.
    pub ntts: u64,
}
