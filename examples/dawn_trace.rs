//! Writes the traces `scripts/dawn-check` replays on Dawn (Chrome's WebGPU): every backend
//! operation, so every WGSL entry point, run on this machine's GPU adapter with the kernels a
//! browser gets (16×16 partial products), each result checked word for word against the CPU
//! twin before it is recorded as what the replay must read back.
//!
//! Two traces, one per set of limits the replay asks for:
//! - `adapter/`: the largest NTT tile the adapter's workgroup storage holds (up to 2^13 words)
//!   and whole batches in one binding;
//! - `default/`: WebGPU's default limits (16 KiB of workgroup storage: tiles of 2^12 words, so
//!   the two-pass NTT from N = 2^13) and chunks of at most 192 KiB, so that operations run
//!   over several chunks of odd sizes.
//!
//! Seeded inputs with the edge words 0 and p − 1, N from 2^10 to 2^14, 1 to 4 limbs, odd
//! batches. Run: `cargo run --example dawn_trace -- DIR`.

use hegpu::backend::{Backend, CpuBackend, GpuBackend, GpuOptions, PolyBatch, SparseRows};
use hegpu::backend::{DispatchTrace, GpuHooks};
use hegpu::math::Ring;
use hegpu::math::ntt_primes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::Arc;

type Outcome = Result<(), Box<dyn std::error::Error>>;

fn main() -> Outcome {
    let dir: PathBuf = match std::env::args().nth(1).as_deref() {
        None | Some("-h" | "--help") => {
            eprintln!("usage: dawn_trace DIR   (writes DIR/adapter and DIR/default)");
            std::process::exit(2);
        }
        Some(d) => d.into(),
    };
    for (name, options) in [
        (
            "adapter",
            GpuOptions {
                portable_products: true,
                required: true,
                ..Default::default()
            },
        ),
        (
            "default",
            GpuOptions {
                portable_products: true,
                required: true,
                max_ntt_tile: Some(1 << 12),
                max_chunk_bytes: Some(192 << 10),
                ..Default::default()
            },
        ),
    ] {
        let trace = Arc::new(DispatchTrace::new());
        let hooks = GpuHooks {
            trace: Some(trace.clone()),
            ..Default::default()
        };
        let gpu = GpuBackend::with_hooks(options, hooks)?;
        let checks = Checks {
            gpu: &gpu,
            cpu: &CpuBackend::new(None)?,
            done: 0,
        };
        let done = checks.run_all()?;
        trace.write_to(&dir.join(name))?;
        println!(
            "{name}: {done} results equal to the CPU twin's, {} events, {} dispatches",
            trace.events(),
            gpu.counts().dispatches
        );
    }
    Ok(())
}

struct Checks<'a> {
    gpu: &'a GpuBackend,
    cpu: &'a CpuBackend,
    done: usize,
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A ring of `limbs` primes of mixed sizes (31 to 20 bits), avoiding `avoid`.
fn ring(n: usize, limbs: usize, avoid: &[u32]) -> Arc<Ring> {
    let sizes = [31u32, 20, 30, 24, 28, 26];
    let mut primes: Vec<u32> = Vec::new();
    for i in 0..limbs {
        let taken: Vec<u32> = avoid.iter().chain(&primes).copied().collect();
        primes.push(ntt_primes(n, sizes[i % sizes.len()], 1, &taken).unwrap()[0]);
    }
    Ring::new(n, &primes).unwrap()
}

/// `batch` random polynomials of `ring` with 0 and p − 1 planted in every row.
fn words(ring: &Ring, batch: usize, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    let n = ring.degree();
    let mut words = vec![0u32; batch * ring.poly_words()];
    for (row, chunk) in words.chunks_exact_mut(n).enumerate() {
        let p = ring.modulus(row % ring.limbs()).value();
        chunk.iter_mut().for_each(|w| *w = r.random_range(0..p));
        chunk[0] = 0;
        chunk[1] = p - 1;
        chunk[n - 1] = p - 1;
    }
    words
}

/// One word per limb below its prime.
fn limb_words(ring: &Ring, seed: u64) -> Vec<u32> {
    let mut r = rng(seed);
    (0..ring.limbs())
        .map(|l| r.random_range(1..ring.modulus(l).value()))
        .collect()
}

impl Checks<'_> {
    /// Runs `op` on both devices (on inputs each uploads itself) and compares the results.
    fn check(
        &mut self,
        what: &str,
        op: impl Fn(&dyn Backend) -> hegpu::Result<PolyBatch>,
    ) -> Outcome {
        let want = self.cpu.download(&op(self.cpu)?)?;
        let got = self.gpu.download(&op(self.gpu)?)?;
        if got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
            return Err(format!(
                "{what}: word {at} is {} on the GPU, {} on the CPU",
                got[at], want[at]
            )
            .into());
        }
        self.done += 1;
        Ok(())
    }

    fn run_all(mut self) -> Result<usize, Box<dyn std::error::Error>> {
        for (i, &(n, limbs, batch)) in [
            (1 << 10, 3, 1),
            (1 << 12, 2, 3),
            (1 << 13, 3, 1),
            (1 << 14, 2, 3),
        ]
        .iter()
        .enumerate()
        {
            self.coefficient_wise(n, limbs, batch, 10 * i as u64)?;
        }
        self.ciphertext_products(1 << 12, 3)?;
        self.conversions(1 << 12)?;
        self.layers(1 << 10, 2)?;
        self.sampling(1 << 12, 3)?;
        Ok(self.done)
    }

    /// The element-wise kernels, the NTT both ways, automorphisms and affine maps.
    fn coefficient_wise(&mut self, n: usize, limbs: usize, batch: usize, seed: u64) -> Outcome {
        let r = ring(n, limbs, &[]);
        let (a, b) = (words(&r, batch, seed), words(&r, batch, seed + 1));
        let up = |d: &dyn Backend, w: &[u32]| d.upload(&r, batch, w);
        let tag = format!("N={n} limbs={limbs} batch={batch}");
        self.check(&format!("add {tag}"), |d| d.add(&up(d, &a)?, &up(d, &b)?))?;
        self.check(&format!("sub {tag}"), |d| d.sub(&up(d, &a)?, &up(d, &b)?))?;
        self.check(&format!("neg {tag}"), |d| d.neg(&up(d, &a)?))?;
        self.check(&format!("mul {tag}"), |d| d.mul(&up(d, &a)?, &up(d, &b)?))?;
        self.check(&format!("ntt_forward {tag}"), |d| {
            let mut x = up(d, &a)?;
            d.ntt_forward(&mut x)?;
            Ok(x)
        })?;
        self.check(&format!("ntt_inverse {tag}"), |d| {
            let mut x = up(d, &b)?;
            d.ntt_inverse(&mut x)?;
            Ok(x)
        })?;
        for g in [5, 2 * n - 1] {
            self.check(&format!("automorphism {g} {tag}"), |d| {
                d.automorphism(&up(d, &a)?, g)
            })?;
        }
        let (mul, add) = (limb_words(&r, seed + 2), limb_words(&r, seed + 3));
        self.check(&format!("scalar_affine {tag}"), |d| {
            d.scalar_affine(&up(d, &a)?, &mul, &add)
        })?;
        self.check(&format!("concat {tag}"), |d| {
            d.concat(&[&up(d, &a)?, &up(d, &b)?, &up(d, &a)?])
        })?;
        if batch > 1 {
            self.check(&format!("mul_acc {tag}"), |d| {
                d.mul_acc(&up(d, &a)?, &up(d, &b)?, 1)
            })?;
        }
        Ok(())
    }

    /// The tensor product and the key-switching inner product.
    fn ciphertext_products(&mut self, n: usize, limbs: usize) -> Outcome {
        let r = ring(n, limbs, &[]);
        let (pairs, digits, m, c) = (3, 2, 3, 2);
        let (a, b) = (words(&r, 2 * pairs, 40), words(&r, 2 * pairs, 41));
        self.check("ct_tensor", |d| {
            d.tensor(&d.upload(&r, 2 * pairs, &a)?, &d.upload(&r, 2 * pairs, &b)?)
        })?;
        let (ext, key) = (words(&r, digits * m, 42), words(&r, c * digits, 43));
        self.check("key_mul_acc", |d| {
            let ext = d.upload(&r, digits * m, &ext)?;
            d.key_mul_acc(&ext, &d.upload(&r, c * digits, &key)?, digits)
        })
    }

    /// Gathers, base conversions (alone and folded into the NTT's first pass) and scaled
    /// differences (alone and folded into its last).
    fn conversions(&mut self, n: usize) -> Outcome {
        let from = ring(n, 4, &[]);
        let to = ring(n, 3, &from.primes());
        let x = words(&from, 3, 50);
        let digits = [0..2, 2..4];
        let sources = [Some(2), None, Some(0), Some(1), None];
        self.check("gather", |d| {
            d.gather(&d.upload(&from, 3, &x)?, &sources, 1..3)
        })?;
        self.check("base_convert", |d| {
            d.base_convert(&d.upload(&from, 3, &x)?, &digits, &to)
        })?;
        self.check("base_convert_ntt", |d| {
            d.base_convert_ntt(&d.upload(&from, 3, &x)?, &digits, &to)
        })?;
        let low = from.sub_ring(1..4)?;
        let y = words(&low, 3, 51);
        let scale = limb_words(&low, 52);
        self.check("scaled_difference", |d| {
            d.scaled_difference(&d.upload(&from, 3, &x)?, &d.upload(&low, 3, &y)?, 1, &scale)
        })?;
        self.check("ntt_forward_scaled_difference", |d| {
            let b = d.upload(&low, 3, &y)?;
            d.ntt_forward_scaled_difference(&d.upload(&from, 3, &x)?, b, 1, &scale)
        })
    }

    /// Dense and sparse linear layers, with and without a bias.
    fn layers(&mut self, n: usize, limbs: usize) -> Outcome {
        let r = ring(n, limbs, &[]);
        let (inputs, outputs) = (5, 3);
        let x = words(&r, inputs, 60);
        let mut g = rng(61);
        let dense: Vec<u32> = (0..outputs * inputs * limbs)
            .map(|i| {
                let p = r.modulus(i % limbs).value();
                if i % 7 == 0 {
                    p - 1
                } else {
                    g.random_range(0..p)
                }
            })
            .collect();
        self.check("linear", |d| {
            let w = d.upload_weights(&r, outputs, inputs, &dense)?;
            d.linear(&w, &d.upload(&r, inputs, &x)?)
        })?;
        let mut rows = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for j in 0..outputs {
            for k in (j % 2..inputs).step_by(2) {
                rows.columns.push(k);
                rows.words
                    .extend((0..limbs).map(|l| r.modulus(l).value() - 1 - j as u32));
            }
            rows.offsets.push(rows.columns.len());
            rows.bias.extend(limb_words(&r, 62 + j as u64));
        }
        self.check("linear_sparse", |d| {
            let w = d.upload_sparse(&r, inputs, &rows)?;
            d.linear_sparse(&w, &d.upload(&r, inputs, &x)?)
        })?;
        self.check("linear_sparse_add", |d| {
            let w = d.upload_sparse(&r, inputs, &rows)?;
            let acc = d.upload(&r, outputs, &words(&r, outputs, 63))?;
            d.linear_sparse_add(&w, &d.upload(&r, inputs, &x)?, acc)
        })
    }

    /// Seeded masks and small polynomials.
    fn sampling(&mut self, n: usize, limbs: usize) -> Outcome {
        let r = ring(n, limbs, &[]);
        let seed = [7u8; 32];
        self.check("seeded_masks", |d| {
            d.seeded_masks(&r, &seed, (u32::MAX as u64 - 1)..(u32::MAX as u64 + 2))
        })?;
        let mut g = rng(70);
        let coeffs: Vec<i8> = (0..3 * n).map(|_| g.random_range(-20..=20)).collect();
        self.check("small_polys", |d| d.small_polys(&r, &coeffs))
    }
}
