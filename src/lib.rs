//! Homomorphic-encryption arithmetic on any GPU (WGSL through wgpu) with a rayon CPU backend
//! that computes the same words, bit for bit, and RNS-CKKS and encrypted neural-network
//! inference on top.
//!
//! The layers, each using only those before it:
//!
//! - [`math`]: u32 moduli, NTT-friendly primes, RNS bases, negacyclic NTT plans;
//! - [`backend`]: the [`Backend`](backend::Backend) trait over batches of RNS polynomials, with
//!   a CPU and a GPU implementation;
//! - [`ckks`]: the scheme (parameters, encoding, keys, encryption, evaluation, serialization);
//! - [`circuits`]: sparse and diagonal linear maps and power bases, as planned objects;
//! - [`tensor`]: ciphertext tensors, layer plans and the [`Scheduler`](tensor::Scheduler) that
//!   places them on the GPU and the CPU;
//! - [`nn`]: models, training, ONNX import and the two packings' plans;
//! - [`pair`]: one client and one server for a planned network, in either packing, with the
//!   frames their requests and answers travel in (the `hegpu` command's job, split steps,
//!   service and benchmark suite, and the Python package, all use it).
//!
//! Features, both default: `gpu` (the wgpu backend, [`backend::GpuBackend`]; without it a GPU
//! asked for is "no adapter" and everything runs on the CPU backend) and `onnx` (the ONNX
//! importer).
//!
//! A client encrypts, a server holding public keys only computes, the client decrypts:
//!
//! ```
//! use hegpu::backend::{DeviceChoice, select_backend};
//! use hegpu::ckks::*;
//!
//! let params = Parameters::preset(Preset::CryptoNets8192)?;
//! let backend = select_backend(DeviceChoice::Cpu)?;
//! let mut keygen = KeyGenerator::new(&params, Seed::from_u64(1)); // Seed::Os for real keys
//! let sk = keygen.secret_key()?;
//! let keys = EvaluationKeys {
//!     relin: Some(keygen.relin_key(&sk)?),
//!     galois: keygen.galois_keys(&sk, &[1], false)?,
//! };
//! let encoder = Encoder::new(&params);
//! let encryptor = Encryptor::with_secret_key(&params, &sk, backend.clone(), Seed::from_u64(2))?;
//! let x: Vec<f64> = (0..params.slots()).map(|i| (i % 4) as f64 / 4.0).collect();
//! let (level, scale) = (params.max_level(), params.default_scale());
//! let cx = encryptor.encrypt(&encoder.encode(&x, level, scale, &*backend)?)?;
//!
//! let evaluator = Evaluator::new(&params, backend.clone(), &keys)?;
//! let squared = evaluator.rescale(&evaluator.relinearize(&evaluator.square(&cx)?)?)?;
//! let moved = evaluator.rotate(&squared, 1)?; // slot i gets slot i + 1
//!
//! let decryptor = Decryptor::new(&params, &sk)?;
//! let y = encoder.decode(&decryptor.decrypt(&moved, &*backend)?)?;
//! assert!((y[0] - 0.0625).abs() < 1e-3); // x[1]² = (1/4)²
//! # Ok::<(), hegpu::Error>(())
//! ```
//!
//! Every fallible call returns [`Error`]: parameters it cannot use ([`ParamsError`]), the GPU
//! failing or absent ([`GpuError`]; [`Error::is_gpu_failure`] says when the same work can run
//! on the CPU), a model it cannot plan ([`PlanError`]), or bad input (shapes, unreduced words,
//! operands that do not fit together, bytes that are not what they claim). Each enum is
//! non-exhaustive.
//!
//! The repository's `README.md` is the front door; `docs/` holds the design, the packings,
//! security and the measured benchmarks.

#![forbid(unsafe_code)]
// No function over 100 lines (clippy counts code, not blank lines or comments).
#![warn(clippy::too_many_lines)]

pub mod backend;
pub mod circuits;
pub mod ckks;
pub mod data;
mod error;
pub mod files;
pub mod math;
pub mod nn;
pub mod pair;
pub mod tensor;

pub use error::{Error, GpuError, ParamsError, PlanError, Result};

/// The Rust examples of the README and of `docs/`, run as doctests.
#[cfg(doctest)]
mod documents {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/ckks.md")]
    struct Ckks;
    #[doc = include_str!("../docs/job.md")]
    struct Job;
}
