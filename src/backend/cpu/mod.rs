//! The CPU backend: rayon across polynomials and limbs, SIMD chosen at run time.
//!
//! Each method is the CPU twin of the WGSL entry point of the same name in `shaders/`.

use super::batch::HostWords;
use super::batch::{PolyBatch, Storage, WeightStorage, Weights};
use super::pool::BufferPool;
use super::rns_ops::ConversionCache;
use super::sparse::{SparseRows, SparseStorage, SparseWeights};
use super::{Backend, check_linear, mul_acc_terms};
use crate::math::Ring;

mod lanes;
mod rns;
pub(crate) mod sampling;
mod sparse;
mod tile;
mod wide;
use crate::{Error, Result};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Arc;

/// Rayon-parallel CPU implementation of [`Backend`].
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    ntts: std::sync::atomic::AtomicU64,
    /// Base-conversion tables by source and target primes.
    conversions: ConversionCache,
    /// Host buffers its batches give back when dropped, for its next outputs.
    buffers: Arc<BufferPool>,
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
        Ok(Self {
            pool,
            ntts: Default::default(),
            conversions: ConversionCache::default(),
            buffers: Arc::default(),
        })
    }

    fn count_ntts(&self, x: &PolyBatch) {
        self.ntts
            .fetch_add(x.rows() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn host<'a>(&self, x: &'a PolyBatch) -> Result<&'a [u32]> {
        match &x.data {
            Storage::Host(v) => Ok(v),
            Storage::Device(_) => Err(Error::WrongDevice {
                expected: "the CPU".into(),
                found: x.location(),
            }),
        }
    }

    fn host_mut<'a>(&self, x: &'a mut PolyBatch) -> Result<&'a mut Vec<u32>> {
        let location = x.location();
        match &mut x.data {
            Storage::Host(v) => Ok(v),
            Storage::Device(_) => Err(Error::WrongDevice {
                expected: "the CPU".into(),
                found: location,
            }),
        }
    }

    /// Host words as a CPU batch, after checking their shape and that every word is reduced.
    pub(crate) fn host_batch(ring: &Arc<Ring>, batch: usize, words: Vec<u32>) -> Result<PolyBatch> {
        ring.check_words(batch, &words)?;
        Ok(PolyBatch {
            ring: ring.clone(),
            batch,
            data: Storage::Host(HostWords::new(words, None)),
        })
    }

    /// `words` as a batch whose buffer comes back to this backend's pool when dropped.
    fn wrap(&self, ring: &Arc<Ring>, batch: usize, words: Vec<u32>) -> PolyBatch {
        PolyBatch {
            ring: ring.clone(),
            batch,
            data: Storage::Host(HostWords::new(words, Some(self.buffers.clone()))),
        }
    }

    /// Whether work of `words` words is better done on the calling thread: a one-thread pool,
    /// or a single row, would only add the cost of handing the work to a worker.
    fn inline(&self, words: usize, n: usize) -> bool {
        self.threads() == 1 || words <= n
    }

    /// `f(row, row_words)` for every row of `n` words of `data`, in parallel where it pays.
    fn rows_mut(&self, data: &mut [u32], n: usize, f: impl Fn(usize, &mut [u32]) + Sync + Send) {
        if self.inline(data.len(), n) {
            data.chunks_mut(n)
                .enumerate()
                .for_each(|(row, r)| f(row, r));
        } else {
            self.pool.install(|| {
                data.par_chunks_mut(n)
                    .enumerate()
                    .for_each(|(row, r)| f(row, r))
            });
        }
    }

    /// `f(ring, limb, a_row, b_row, out_row)` for every limb row of two same-shaped batches.
    fn zip_rows(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        f: impl Fn(&Ring, usize, &[u32], &[u32], &mut [u32]) + Sync + Send,
    ) -> Result<PolyBatch> {
        a.check_same_shape(b)?;
        let (xa, xb) = (self.host(a)?, self.host(b)?);
        let ring = &a.ring;
        let n = ring.degree();
        let mut out = self.buffers.take(xa.len(), true);
        self.rows_mut(&mut out, n, |row, o| {
            let at = row * n..(row + 1) * n;
            f(ring, row % ring.limbs(), &xa[at.clone()], &xb[at], o)
        });
        Ok(self.wrap(ring, a.batch, out))
    }

    /// `f(ring, limb, row)` in place for every limb row of a batch.
    fn map_rows(
        &self,
        x: &mut PolyBatch,
        f: impl Fn(&Ring, usize, &mut [u32]) + Sync + Send,
    ) -> Result<()> {
        let ring = x.ring.clone();
        let n = ring.degree();
        let data = self.host_mut(x)?;
        self.rows_mut(data, n, |row, r| f(&ring, row % ring.limbs(), r));
        Ok(())
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        match self.threads() {
            1 => "CPU (1 thread)".to_string(),
            t => format!("CPU ({t} threads)"),
        }
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, ring: &Arc<Ring>, batch: usize, words: &[u32]) -> Result<PolyBatch> {
        ring.check_words(batch, words)?;
        let n = ring.degree();
        let mut v = self.buffers.take(words.len(), false);
        self.rows_mut(&mut v, n, |row, o| {
            o.copy_from_slice(&words[row * n..][..n])
        });
        Ok(self.wrap(ring, batch, v))
    }

    fn upload_vec(&self, ring: &Arc<Ring>, batch: usize, words: Vec<u32>) -> Result<PolyBatch> {
        ring.check_words(batch, &words)?;
        Ok(self.wrap(ring, batch, words))
    }

    fn host_buffer(&self, words: usize) -> Vec<u32> {
        self.buffers.take(words, false)
    }

    fn download(&self, x: &PolyBatch) -> Result<Vec<u32>> {
        Ok(self.host(x)?.to_vec())
    }

    fn zeros(&self, ring: &Arc<Ring>, batch: usize) -> Result<PolyBatch> {
        Ok(self.wrap(ring, batch, vec![0; batch * ring.poly_words()]))
    }

    fn ntt_count(&self) -> u64 {
        self.ntts.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn ntt_forward(&self, x: &mut PolyBatch) -> Result<()> {
        self.count_ntts(x);
        self.map_rows(x, |ring, l, row| ring.plans()[l].forward(row))
    }

    fn ntt_inverse(&self, x: &mut PolyBatch) -> Result<()> {
        self.count_ntts(x);
        self.map_rows(x, |ring, l, row| ring.plans()[l].inverse(row))
    }

    fn add(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.zip_rows(a, b, |ring, l, ra, rb, o| {
            let p = ring.modulus(l).value();
            lanes::add(o, ra, rb, p);
        })
    }

    fn sub(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.zip_rows(a, b, |ring, l, ra, rb, o| {
            let p = ring.modulus(l).value();
            lanes::sub(o, ra, rb, p);
        })
    }

    fn neg(&self, a: &PolyBatch) -> Result<PolyBatch> {
        let src = self.host(a)?;
        let mut v = self.buffers.take(src.len(), false);
        v.copy_from_slice(src);
        let mut out = self.wrap(&a.ring, a.batch, v);
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
        let mut out = self.buffers.take(groups * pw, true);
        self.rows_mut(&mut out, n, |row, o| {
            let (g, l) = (row / limbs, row % limbs);
            for k in 0..terms {
                let at = (g * terms + k) * pw + l * n;
                ring.plans()[l].mul_accumulate(o, &xa[at..at + n], &xb[at..at + n]);
            }
        });
        Ok(self.wrap(ring, groups, out))
    }

    fn upload_weights(
        &self,
        ring: &Arc<Ring>,
        outputs: usize,
        inputs: usize,
        words: &[u32],
    ) -> Result<Weights> {
        Weights::check(ring, outputs, inputs, words)?;
        let rows = SparseRows::dense(outputs, inputs, words);
        Ok(Weights {
            ring: ring.clone(),
            outputs,
            inputs,
            data: WeightStorage::Host { rows },
        })
    }

    fn linear(&self, weights: &Weights, x: &PolyBatch) -> Result<PolyBatch> {
        check_linear(weights, x)?;
        let rows = match &weights.data {
            WeightStorage::Host { rows } => rows,
            WeightStorage::Device(d) => {
                return Err(Error::WrongDevice {
                    expected: "the CPU".into(),
                    found: d.location(),
                });
            }
        };
        self.linear_rows(rows, (weights.outputs, None), x)
    }

    fn upload_sparse(
        &self,
        ring: &Arc<Ring>,
        inputs: usize,
        rows: &SparseRows,
    ) -> Result<SparseWeights> {
        SparseWeights::prepare(ring, inputs, rows, || {
            Ok(SparseStorage::Host { rows: rows.clone() })
        })
    }

    fn linear_sparse(&self, w: &SparseWeights, x: &PolyBatch) -> Result<PolyBatch> {
        self.linear_sparse_rows(w, x, None)
    }

    fn linear_sparse_add(
        &self,
        w: &SparseWeights,
        x: &PolyBatch,
        acc: PolyBatch,
    ) -> Result<PolyBatch> {
        self.linear_sparse_rows(w, x, Some(acc))
    }

    fn concat(&self, parts: &[&PolyBatch]) -> Result<PolyBatch> {
        self.concat_rows(parts)
    }

    fn gather(
        &self,
        x: &PolyBatch,
        sources: &[Option<usize>],
        limbs: Range<usize>,
    ) -> Result<PolyBatch> {
        self.gather_rows(x, sources, limbs)
    }

    fn base_convert(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        self.base_convert_rows(x, digits, to)
    }

    fn automorphism(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch> {
        self.automorphism_rows(x, g)
    }

    fn scalar_affine(&self, x: &PolyBatch, mul: &[u32], add: &[u32]) -> Result<PolyBatch> {
        self.scalar_affine_rows(x, mul, add)
    }
    fn seeded_masks(
        &self,
        ring: &Arc<Ring>,
        seed: &[u8; 32],
        streams: Range<u64>,
    ) -> Result<PolyBatch> {
        let count = super::check_streams(&streams)?;
        let pw = ring.poly_words();
        let mut out = self.buffers.take(count * pw, false);
        // One polynomial per task: each is its own stream.
        self.rows_mut(&mut out, pw, |k, poly| {
            sampling::seeded_mask_into(seed, streams.start + k as u64, ring, poly)
        });
        Ok(self.wrap(ring, count, out))
    }

    fn small_polys(&self, ring: &Arc<Ring>, coeffs: &[i8]) -> Result<PolyBatch> {
        let count = super::check_small(ring, coeffs)?;
        let (n, pw) = (ring.degree(), ring.poly_words());
        let mut out = self.buffers.take(count * pw, false);
        self.rows_mut(&mut out, pw, |k, poly| {
            sampling::small_into(ring, &coeffs[k * n..(k + 1) * n], poly)
        });
        Ok(self.wrap(ring, count, out))
    }

    fn tensor(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        self.tensor_rows(a, b)
    }

    fn key_mul_acc(&self, ext: &PolyBatch, key: &PolyBatch, digits: usize) -> Result<PolyBatch> {
        self.key_mul_acc_rows(ext, key, digits)
    }

    fn scaled_difference(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        self.scaled_difference_rows(a, b, offset, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host batch's buffer goes back to the pool of the backend that made it when the batch
    /// is dropped, and that backend's next `host_buffer` takes it; another backend's does not.
    #[test]
    fn buffers_return_to_the_pool_of_their_backend() {
        let (mine, other) = (
            CpuBackend::new(Some(1)).unwrap(),
            CpuBackend::new(Some(1)).unwrap(),
        );
        let ring = Ring::new(
            1 << 12,
            &crate::math::ntt_primes(1 << 12, 30, 2, &[]).unwrap(),
        )
        .unwrap();
        let words = 3 * ring.poly_words();
        let batch = mine.upload_vec(&ring, 3, vec![0; words]).unwrap();
        let at = batch.host_words().unwrap().as_ptr();
        drop(batch);
        let theirs = other.host_buffer(words);
        assert_ne!(theirs.as_ptr(), at);
        let again = mine.host_buffer(words);
        assert_eq!((again.as_ptr(), again.len()), (at, words));
    }
}
