//! The CPU backend: rayon across polynomials and limbs, SIMD chosen at run time.
//!
//! Each method is the CPU twin of the WGSL entry point of the same name in `shaders/`.

use super::batch::{PolyBatch, Storage, WeightStorage, Weights};
use super::ring::Ring;
use super::{Backend, check_linear, mul_acc_terms};
use crate::math::Modulus;
use crate::{Error, Result};
use rayon::prelude::*;
use std::sync::Arc;

/// Outputs computed together by one pass over the inputs in [`CpuBackend::linear`].
const LINEAR_TILE_OUTPUTS: usize = 4;
/// Coefficients per block in [`CpuBackend::linear`]: a block of every input stays in L2 while all
/// output tiles stream over it.
const LINEAR_BLOCK: usize = 256;

/// Rayon-parallel CPU implementation of [`Backend`].
pub struct CpuBackend {
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// A backend using `threads` worker threads (`None`: one per core).
    pub fn new(threads: Option<usize>) -> Result<Self> {
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(t) = threads {
            if t == 0 {
                return Err(Error::Config(
                    "a CPU backend needs at least one thread".into(),
                ));
            }
            builder = builder.num_threads(t);
        }
        let pool = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot start CPU threads: {e}")))?;
        Ok(Self { pool })
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn host<'a>(&self, x: &'a PolyBatch) -> Result<&'a [u32]> {
        match &x.data {
            Storage::Host(v) => Ok(v),
            Storage::Gpu(_) => Err(Error::WrongDevice {
                expected: "the CPU".into(),
                found: x.location(),
            }),
        }
    }

    fn host_mut<'a>(&self, x: &'a mut PolyBatch) -> Result<&'a mut Vec<u32>> {
        let location = x.location();
        match &mut x.data {
            Storage::Host(v) => Ok(v),
            Storage::Gpu(_) => Err(Error::WrongDevice {
                expected: "the CPU".into(),
                found: location,
            }),
        }
    }

    fn wrap(ring: &Arc<Ring>, batch: usize, words: Vec<u32>) -> PolyBatch {
        PolyBatch {
            ring: ring.clone(),
            batch,
            data: Storage::Host(words),
        }
    }

    /// Applies `f(modulus, a_row, b_row, out_row)` to every limb row of two same-shaped batches.
    fn zip_rows(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        f: impl Fn(&Ring, usize, &[u32], &[u32], &mut [u32]) + Sync,
    ) -> Result<PolyBatch> {
        a.check_same_shape(b)?;
        let (xa, xb) = (self.host(a)?, self.host(b)?);
        let ring = &a.ring;
        let n = ring.degree();
        let mut out = vec![0u32; xa.len()];
        self.pool.install(|| {
            out.par_chunks_mut(n)
                .zip(xa.par_chunks(n).zip(xb.par_chunks(n)))
                .enumerate()
                .for_each(|(row, (o, (ra, rb)))| f(ring, row % ring.limbs(), ra, rb, o))
        });
        Ok(Self::wrap(ring, a.batch, out))
    }

    fn map_rows(
        &self,
        x: &mut PolyBatch,
        f: impl Fn(&Ring, usize, &mut [u32]) + Sync,
    ) -> Result<()> {
        let ring = x.ring.clone();
        let n = ring.degree();
        let data = self.host_mut(x)?;
        self.pool.install(|| {
            data.par_chunks_mut(n)
                .enumerate()
                .for_each(|(row, r)| f(&ring, row % ring.limbs(), r))
        });
        Ok(())
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("CPU ({} threads)", self.threads())
    }

    fn upload(&self, ring: &Arc<Ring>, batch: usize, words: &[u32]) -> Result<PolyBatch> {
        ring.check_words(batch, words)?;
        Ok(Self::wrap(ring, batch, words.to_vec()))
    }

    fn download(&self, x: &PolyBatch) -> Result<Vec<u32>> {
        Ok(self.host(x)?.to_vec())
    }

    fn zeros(&self, ring: &Arc<Ring>, batch: usize) -> Result<PolyBatch> {
        Ok(Self::wrap(ring, batch, vec![0; batch * ring.poly_words()]))
    }

    fn ntt_forward(&self, x: &mut PolyBatch) -> Result<()> {
        self.map_rows(x, |ring, l, row| ring.plans()[l].forward(row))
    }

    fn ntt_inverse(&self, x: &mut PolyBatch) -> Result<()> {
        self.map_rows(x, |ring, l, row| ring.plans()[l].inverse(row))
    }

    fn add(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.zip_rows(a, b, |ring, l, ra, rb, o| {
            let m = ring.modulus(l);
            for ((o, &x), &y) in o.iter_mut().zip(ra).zip(rb) {
                *o = m.add(x, y);
            }
        })
    }

    fn sub(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.zip_rows(a, b, |ring, l, ra, rb, o| {
            let m = ring.modulus(l);
            for ((o, &x), &y) in o.iter_mut().zip(ra).zip(rb) {
                *o = m.sub(x, y);
            }
        })
    }

    fn neg(&self, a: &PolyBatch) -> Result<PolyBatch> {
        let mut out = Self::wrap(&a.ring, a.batch, self.host(a)?.to_vec());
        self.map_rows(&mut out, |ring, l, row| {
            let m = ring.modulus(l);
            row.iter_mut().for_each(|x| *x = m.neg(*x));
        })?;
        Ok(out)
    }

    fn mul(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        // Output starts at zero, so multiply-accumulate is the plain product.
        self.zip_rows(a, b, |ring, l, ra, rb, o| {
            ring.plans()[l].mul_accumulate(o, ra, rb)
        })
    }

    fn mul_acc(&self, a: &PolyBatch, b: &PolyBatch, groups: usize) -> Result<PolyBatch> {
        let terms = mul_acc_terms(a, b, groups)?;
        let (xa, xb) = (self.host(a)?, self.host(b)?);
        let ring = &a.ring;
        let (n, limbs, pw) = (ring.degree(), ring.limbs(), ring.poly_words());
        let mut out = vec![0u32; groups * pw];
        self.pool.install(|| {
            out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
                let (g, l) = (row / limbs, row % limbs);
                for k in 0..terms {
                    let at = (g * terms + k) * pw + l * n;
                    ring.plans()[l].mul_accumulate(o, &xa[at..at + n], &xb[at..at + n]);
                }
            })
        });
        Ok(Self::wrap(ring, groups, out))
    }

    fn upload_weights(
        &self,
        ring: &Arc<Ring>,
        outputs: usize,
        inputs: usize,
        words: &[u32],
    ) -> Result<Weights> {
        Weights::check(ring, outputs, inputs, words)?;
        let limbs = ring.limbs();
        let mut w = vec![0u32; words.len()];
        let mut w_shoup = vec![0u32; words.len()];
        for j in 0..outputs {
            for k in 0..inputs {
                for l in 0..limbs {
                    let word = words[(j * inputs + k) * limbs + l];
                    let at = (l * outputs + j) * inputs + k;
                    w[at] = word;
                    w_shoup[at] = ring.modulus(l).shoup(word);
                }
            }
        }
        Ok(Weights {
            ring: ring.clone(),
            outputs,
            inputs,
            data: WeightStorage::Host { w, w_shoup },
        })
    }

    fn linear(&self, weights: &Weights, x: &PolyBatch) -> Result<PolyBatch> {
        check_linear(weights, x)?;
        let WeightStorage::Host { w, w_shoup } = &weights.data else {
            return Err(Error::WrongDevice {
                expected: "the CPU".into(),
                found: "the GPU".into(),
            });
        };
        let input = self.host(x)?;
        let ring = &x.ring;
        let (n, limbs) = (ring.degree(), ring.limbs());
        let (outputs, inputs) = (weights.outputs, weights.inputs);
        let blocks_per_limb = n.div_ceil(LINEAR_BLOCK);
        // Each task owns one limb and one block of coefficients and computes every output there,
        // so the block of every input is read from memory once and then served from cache.
        let parts: Vec<Vec<u32>> = self.pool.install(|| {
            (0..limbs * blocks_per_limb)
                .into_par_iter()
                .map(|task| {
                    let (l, blk) = (task / blocks_per_limb, task % blocks_per_limb);
                    let c0 = blk * LINEAR_BLOCK;
                    let len = LINEAR_BLOCK.min(n - c0);
                    let m = ring.modulus(l);
                    let wl = &w[l * outputs * inputs..(l + 1) * outputs * inputs];
                    let sl = &w_shoup[l * outputs * inputs..(l + 1) * outputs * inputs];
                    let mut part = vec![0u32; outputs * len];
                    pulp::Arch::new().dispatch(
                        #[inline(always)]
                        || {
                            linear_block(
                                m,
                                wl,
                                sl,
                                input,
                                (ring.poly_words(), l * n + c0, len),
                                inputs,
                                &mut part,
                            )
                        },
                    );
                    part
                })
                .collect()
        });
        let mut out = vec![0u32; outputs * ring.poly_words()];
        self.pool.install(|| {
            out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
                let (j, l) = (row / limbs, row % limbs);
                for blk in 0..blocks_per_limb {
                    let c0 = blk * LINEAR_BLOCK;
                    let len = LINEAR_BLOCK.min(n - c0);
                    o[c0..c0 + len]
                        .copy_from_slice(&parts[l * blocks_per_limb + blk][j * len..(j + 1) * len]);
                }
            })
        });
        Ok(Self::wrap(ring, outputs, out))
    }
}

/// `part[j][i] = Σ_k w[j][k] · x_k[start + i] mod p` for every output `j` and `i < len`, where
/// `x_k` starts at word `k · stride` of `input`. Outputs go in tiles of
/// [`LINEAR_TILE_OUTPUTS`] so each input word loaded feeds several accumulators.
#[inline(always)]
fn linear_block(
    m: Modulus,
    w: &[u32],
    w_shoup: &[u32],
    input: &[u32],
    (stride, start, len): (usize, usize, usize),
    inputs: usize,
    part: &mut [u32],
) {
    let p = m.value();
    let outputs = part.len() / len;
    let mut acc = [[0u64; LINEAR_BLOCK]; LINEAR_TILE_OUTPUTS];
    for j0 in (0..outputs).step_by(LINEAR_TILE_OUTPUTS) {
        let tile = LINEAR_TILE_OUTPUTS.min(outputs - j0);
        for a in acc.iter_mut().take(tile) {
            a[..len].fill(0);
        }
        for k in 0..inputs {
            let xs = &input[k * stride + start..k * stride + start + len];
            for t in 0..tile {
                let (wk, sk) = (w[(j0 + t) * inputs + k], w_shoup[(j0 + t) * inputs + k]);
                for (a, &x) in acc[t][..len].iter_mut().zip(xs) {
                    let q = ((u64::from(x) * u64::from(sk)) >> 32) as u32;
                    *a += u64::from(x.wrapping_mul(wk).wrapping_sub(q.wrapping_mul(p)));
                }
            }
        }
        for t in 0..tile {
            for (o, &a) in part[(j0 + t) * len..(j0 + t + 1) * len]
                .iter_mut()
                .zip(&acc[t][..len])
            {
                *o = m.reduce_u64(a);
            }
        }
    }
}
