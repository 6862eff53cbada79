//! Ciphertext tensors and where their work runs.
//!
//! - [`CipherTensor`]: an n-d array of ciphertexts in the CryptoNets batch layout.
//! - [`LayerPlan`]: layer work in device-independent form (the circuits of
//!   [`crate::circuits`]: sparse maps, squares, powers), which the encrypted network plans.
//! - [`Scheduler`]: runs a plan on the GPU (resident when it fits, streamed in chunks when it
//!   does not, optionally shared with the CPU) and finishes on the CPU when the GPU fails.

mod cipher;
mod lane;
mod memory;
mod plan;
mod report;
mod schedule;
mod work;

pub use cipher::CipherTensor;
pub use plan::LayerPlan;
pub use report::{Mode, ScheduleReport, StageReport};
pub use schedule::{Devices, ScheduleOptions, Scheduler};
pub use work::Work;
