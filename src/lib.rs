//! # hegpu
//!
//! Homomorphic-encryption arithmetic on any GPU (WGSL compute shaders through wgpu: Vulkan,
//! Metal, DX12, WebGPU) with a rayon CPU backend that computes the same words bit for bit.
//!
//! Layers, bottom to top: [`math`] (moduli, primes, NTT plans, RNS bases) and [`backend`]
//! (batched negacyclic NTT, RNS arithmetic, multiply-accumulate and linear layers on polynomial
//! batches, on the CPU or a GPU).
//!
//! ```
//! use hegpu::backend::{Backend, CpuBackend, Ring};
//! use hegpu::math::ntt_primes;
//!
//! let n = 1 << 10;
//! let ring = Ring::new(n, &ntt_primes(n, 30, 2, &[])?)?;
//! let cpu = CpuBackend::new(Some(1))?;
//! // X + 1 in both limbs, squared through the NTT: X^2 + 2X + 1.
//! let mut poly = vec![0u32; ring.poly_words()];
//! for limb in 0..2 {
//!     poly[limb * n] = 1;
//!     poly[limb * n + 1] = 1;
//! }
//! let mut x = cpu.upload(&ring, 1, &poly)?;
//! cpu.ntt_forward(&mut x)?;
//! let mut square = cpu.mul(&x, &x)?;
//! cpu.ntt_inverse(&mut square)?;
//! let words = cpu.download(&square)?;
//! assert_eq!(&words[..4], &[1, 2, 1, 0]);
//! # Ok::<(), hegpu::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod backend;
pub mod bench;
mod error;
pub mod math;

pub use error::{Error, Result};
