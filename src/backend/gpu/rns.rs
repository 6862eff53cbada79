//! The RNS operations of [`Backend`](crate::backend::Backend) on the GPU (`shaders/rns.wgsl`).
//! Operations whose input and output batches differ in ring or count are dispatched once per
//! (output chunk, input chunk) pair; the kernels skip outputs whose inputs lie elsewhere.

use super::arena::Tracked;
use super::dispatch::Started;
use super::kernels::{Kernel, WORKGROUP};
use super::params::{
    AutomorphismParams, BaseConvertParams, CtTensorParams, GatherPolysParams, KernelParams,
    KeyMulAccParams, NO_SOURCE, ScalarAffineParams, ScaledDifferenceParams, Shape,
};
use super::profile::Traffic;
use super::{Binds, GpuBackend, GpuData, shoup_pairs};
use crate::Result;
use crate::backend::batch::PolyBatch;
use crate::backend::rns_ops::{
    check_concat, check_gather, check_key_mul_acc, check_limb_scalars, check_scaled_difference,
    check_tensor, conversion_tables,
};
use crate::math::{Ring, check_galois_element};
use std::ops::Range;
use std::sync::Arc;

/// Operation tables kept (see `op_table`); past this the cache starts again.
const MAX_OP_TABLES: usize = 1024;

fn groups(threads: usize) -> u64 {
    threads.div_ceil(WORKGROUP as usize) as u64
}

impl GpuBackend {
    /// A small read-only table for one operation (an index list, per-limb constants), uploaded
    /// the first time these words are asked for and kept: a network asks for the same tables
    /// batch after batch, and an upload would end the open commands (see `dispatch.rs`).
    pub(super) fn op_table(&self, words: &[u32]) -> Result<Arc<Tracked>> {
        let words = if words.is_empty() { &[0u32][..] } else { words };
        let mut tables = self.op_tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tables.get(words) {
            return Ok(t.clone());
        }
        let table = Arc::new(self.upload_table(words, "an operation's table")?);
        if tables.len() >= MAX_OP_TABLES {
            tables.clear();
        }
        tables.insert(words.to_vec(), table.clone());
        Ok(table)
    }

    /// Calls `f(out_chunk, out_start, in_chunk, in_start, in_count)` for every chunk pair.
    fn chunk_pairs(
        out: &GpuData,
        input: &GpuData,
        mut f: impl FnMut(usize, usize, usize, usize, usize),
    ) {
        for o in 0..out.chunks.len() {
            let (o0, _) = out.range(o);
            for c in 0..input.chunks.len() {
                let (s, e) = input.range(c);
                f(o, o0, c, s, e - s);
            }
        }
    }

    /// Concatenation by buffer copies, split where source or destination chunks end.
    pub(super) fn concat_gpu(&self, parts: &[&PolyBatch]) -> Result<PolyBatch> {
        let (ring, total) = check_concat(parts)?;
        let sources: Vec<&GpuData> = parts.iter().map(|p| self.gpu(p)).collect::<Result<_>>()?;
        let out = self.alloc_batch(&ring, total)?;
        let go = self.gpu(&out)?;
        let poly_bytes = 4 * ring.poly_words() as u64;
        self.run(0, |enc| {
            let mut dst = 0usize; // next output polynomial
            for g in &sources {
                for chunk in &g.chunks {
                    let mut done = 0usize;
                    while done < chunk.polys {
                        let (oc, in_out) = (dst / go.per_chunk, dst % go.per_chunk);
                        let run = (chunk.polys - done).min(go.chunks[oc].polys - in_out);
                        let (from, to) = (&chunk.data.buffer, &go.chunks[oc].data.buffer);
                        let (at, into) = (done as u64 * poly_bytes, in_out as u64 * poly_bytes);
                        let size = run as u64 * poly_bytes;
                        enc.copy_buffer_to_buffer(from, at, to, into, Some(size));
                        if let Some(t) = &self.trace {
                            t.copy(from, at, to, into, size);
                        }
                        done += run;
                        dst += run;
                    }
                }
            }
        })?;
        Ok(out)
    }

    pub(super) fn gather_gpu(
        &self,
        x: &PolyBatch,
        sources: &[Option<usize>],
        limbs: Range<usize>,
    ) -> Result<PolyBatch> {
        let ring = check_gather(x, sources, &limbs)?;
        let gx = self.gpu(x)?;
        let tables = self.tables(&ring)?;
        let index: Vec<u32> = sources
            .iter()
            .map(|s| s.map_or(NO_SOURCE, |s| s as u32))
            .collect();
        let table = self.op_table(&index)?;
        let out = self.alloc_batch(&ring, sources.len())?;
        let go = self.gpu(&out)?;
        let pw = ring.poly_words();
        self.run(0, |enc| {
            let mut started = Started::new(go.chunks.len());
            Self::chunk_pairs(go, gx, |o, o0, c, s, count| {
                let (lo, hi) = (o0, o0 + go.chunks[o].polys);
                if !sources[lo..hi]
                    .iter()
                    .flatten()
                    .any(|&v| v >= s && v < s + count)
                {
                    return;
                }
                let words = go.chunks[o].polys * pw;
                let binds = Binds {
                    table: &table.buffer,
                    a: &gx.chunks[c].data.buffer,
                    b: &self.placeholder,
                    out: &go.chunks[o].data.buffer,
                };
                let onto = started.onto(o);
                let p = GatherPolysParams {
                    shape: Shape::of(&ring, words).accumulating(onto),
                    out_first: o0 as u32,
                    first_limb: limbs.start as u32,
                    in_limbs: x.ring.limbs() as u32,
                    in_first: s as u32,
                    in_count: count as u32,
                };
                // It reads the gathered limbs of its sources in this chunk, and writes them (the
                // first dispatch into a chunk also writes zeros where there is no source).
                let sourced = sources[lo..hi]
                    .iter()
                    .flatten()
                    .filter(|&&v| v >= s && v < s + count)
                    .count();
                let moved = 4 * (sourced * pw) as u64;
                let traffic = Traffic {
                    read: moved + 4 * index.len() as u64,
                    written: if onto { moved } else { 4 * words as u64 },
                };
                let grid = [groups(words), 1];
                self.dispatch_grid(enc, &tables, Kernel::GatherPolys, p, grid, binds, traffic);
            });
            enc.clear_untouched(&started, go);
        })?;
        Ok(out)
    }

    /// The conversion tables of `digits` of `x` into `to` on this device (uploaded once).
    pub(super) fn conversion_buffer(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Ring,
    ) -> Result<Arc<Tracked>> {
        let conversions = conversion_tables(x, digits, to, &self.conversion_tables)?;
        let primes = x.ring.primes();
        let key = (
            digits.iter().map(|d| primes[d.clone()].to_vec()).collect(),
            to.primes(),
        );
        let mut cache = self.conversions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(&key) {
            return Ok(hit.clone());
        }
        // A header per digit [offset, first source limb, source limbs, 0], then the tables.
        let mut words = vec![0u32; 4 * digits.len()];
        for (d, (t, digit)) in conversions.iter().zip(digits).enumerate() {
            let offset = words.len() as u32;
            words[4 * d..4 * d + 3].copy_from_slice(&[
                offset,
                digit.start as u32,
                digit.len() as u32,
            ]);
            words.extend(t.gpu_words());
        }
        let entry = self.op_table(&words)?;
        cache.insert(key, entry.clone());
        Ok(entry)
    }

    pub(super) fn base_convert_gpu(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        let gx = self.gpu(x)?;
        let tables = self.tables(to)?;
        let table = self.conversion_buffer(x, digits, to)?;
        let m_count = x.batch;
        let out = self.alloc_batch(to, digits.len() * m_count)?;
        let go = self.gpu(&out)?;
        let n = to.degree();
        let rows = self.max_grid_rows();
        self.run(0, |enc| {
            // Every digit in one dispatch per chunk pair; polynomials whose input lies in
            // another chunk are skipped by whole workgroups.
            Self::chunk_pairs(go, gx, |o, o0, c, s, count| {
                for first in (o0..o0 + go.chunks[o].polys).step_by(rows) {
                    let polys = rows.min(o0 + go.chunks[o].polys - first);
                    let binds = Binds {
                        table: &self.placeholder,
                        a: &gx.chunks[c].data.buffer,
                        b: &table.buffer,
                        out: &go.chunks[o].data.buffer,
                    };
                    let p = BaseConvertParams {
                        shape: Shape::of(to, n),
                        first: first as u32,
                        out_first: o0 as u32,
                        digit_polys: m_count as u32,
                        in_first: s as u32,
                        in_count: count as u32,
                        in_limbs: x.ring.limbs() as u32,
                    };
                    let grid = [groups(n), polys as u64];
                    let traffic = self.footprint(Kernel::BaseConvert, &p, &binds);
                    self.dispatch_grid(enc, &tables, Kernel::BaseConvert, p, grid, binds, traffic);
                }
            });
        })?;
        Ok(out)
    }

    pub(super) fn automorphism_gpu(&self, x: &PolyBatch, g: usize) -> Result<PolyBatch> {
        check_galois_element(x.ring.degree(), g)?;
        self.same_layout_map(Kernel::AutomorphismNtt, x, &self.placeholder, |shape| {
            AutomorphismParams {
                shape,
                galois: g as u32,
            }
        })
    }

    pub(super) fn scalar_affine_gpu(
        &self,
        x: &PolyBatch,
        mul: &[u32],
        add: &[u32],
    ) -> Result<PolyBatch> {
        check_limb_scalars(&x.ring, mul, "multiplier")?;
        check_limb_scalars(&x.ring, add, "addend")?;
        // Per limb: [m, Shoup(m), a, 0].
        let table: Vec<u32> = shoup_pairs(&x.ring, mul)
            .chunks(2)
            .zip(add)
            .flat_map(|(m, &a)| [m[0], m[1], a, 0])
            .collect();
        let table = self.op_table(&table)?;
        self.same_layout_map(Kernel::ScalarAffine, x, &table.buffer, |shape| {
            ScalarAffineParams { shape }
        })
    }

    /// One dispatch per chunk of a kernel that maps `x` to a batch of the same shape, with the
    /// parameters `params` makes of each chunk's shape.
    fn same_layout_map<P: KernelParams>(
        &self,
        kernel: Kernel,
        x: &PolyBatch,
        table: &wgpu::Buffer,
        params: impl Fn(Shape) -> P,
    ) -> Result<PolyBatch> {
        let gx = self.gpu(x)?;
        let tables = self.tables(&x.ring)?;
        let out = self.alloc_batch(&x.ring, x.batch)?;
        let go = self.gpu(&out)?;
        self.run(0, |enc| {
            for (c, chunk) in go.chunks.iter().enumerate() {
                let words = chunk.polys * x.ring.poly_words();
                let binds = Binds {
                    table,
                    a: &gx.chunks[c].data.buffer,
                    b: &self.placeholder,
                    out: &chunk.data.buffer,
                };
                let p = params(Shape::of(&x.ring, words));
                self.dispatch(enc, &tables, kernel, p, groups(words), binds);
            }
        })?;
        Ok(out)
    }

    pub(super) fn tensor_gpu(&self, a: &PolyBatch, b: &PolyBatch) -> Result<PolyBatch> {
        let pairs = check_tensor(a, b)?;
        let (ga, gb) = (self.gpu(a)?, self.gpu(b)?);
        let ring = &a.ring;
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, 3 * pairs)?;
        let go = self.gpu(&out)?;
        let pw = ring.poly_words();
        self.run(0, |enc| {
            let mut started = Started::new(go.chunks.len());
            for (o, out_chunk) in go.chunks.iter().enumerate() {
                let (o0, o1) = go.range(o);
                // Input polynomials this output chunk reads: pairs o0/3 … (o1-1)/3.
                let (lo, hi) = (2 * (o0 / 3), 2 * ((o1 - 1) / 3) + 2);
                for ca in 0..ga.chunks.len() {
                    let (a0, a1) = ga.range(ca);
                    for cb in 0..gb.chunks.len() {
                        let (b0, b1) = gb.range(cb);
                        if a1 <= lo || a0 >= hi || b1 <= lo || b0 >= hi {
                            continue;
                        }
                        let words = out_chunk.polys * pw;
                        let binds = Binds {
                            table: &self.placeholder,
                            a: &ga.chunks[ca].data.buffer,
                            b: &gb.chunks[cb].data.buffer,
                            out: &out_chunk.data.buffer,
                        };
                        let p = CtTensorParams {
                            shape: Shape::of(ring, words).accumulating(started.onto(o)),
                            out_first: o0 as u32,
                            a_first: a0 as u32,
                            a_count: (a1 - a0) as u32,
                            b_first: b0 as u32,
                            b_count: (b1 - b0) as u32,
                        };
                        self.dispatch(enc, &tables, Kernel::CtTensor, p, groups(words), binds);
                    }
                }
            }
            enc.clear_untouched(&started, go);
        })?;
        Ok(out)
    }

    pub(super) fn key_mul_acc_gpu(
        &self,
        ext: &PolyBatch,
        key: &PolyBatch,
        digits: usize,
    ) -> Result<PolyBatch> {
        let (c_count, m_count) = check_key_mul_acc(ext, key, digits)?;
        let (ge, gk) = (self.gpu(ext)?, self.gpu(key)?);
        let ring = &ext.ring;
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, m_count * c_count)?;
        let go = self.gpu(&out)?;
        let pw = ring.poly_words();
        self.run(0, |enc| {
            let mut started = Started::new(go.chunks.len());
            Self::chunk_pairs(go, ge, |o, o0, c, s, count| {
                let polys = go.chunks[o].polys;
                let (m_lo, m_hi) = (o0 / c_count, (o0 + polys - 1) / c_count);
                for (kc, key_chunk) in gk.chunks.iter().enumerate() {
                    let (k0, k1) = gk.range(kc);
                    // Whether some term (m, c, d) of this output chunk has both factors here.
                    let feeds = (m_lo..=m_hi).any(|m| {
                        (0..digits).any(|d| {
                            let e = d * m_count + m;
                            e >= s
                                && e < s + count
                                && (0..c_count).any(|cc| {
                                    let k = cc * digits + d;
                                    k >= k0 && k < k1
                                })
                        })
                    });
                    if !feeds {
                        continue;
                    }
                    let words = polys * pw;
                    let binds = Binds {
                        table: &self.placeholder,
                        a: &ge.chunks[c].data.buffer,
                        b: &key_chunk.data.buffer,
                        out: &go.chunks[o].data.buffer,
                    };
                    let p = KeyMulAccParams {
                        shape: Shape::of(ring, words).accumulating(started.onto(o)),
                        out_first: o0 as u32,
                        outputs: c_count as u32,
                        digits: digits as u32,
                        digit_polys: m_count as u32,
                        ext_first: s as u32,
                        ext_count: count as u32,
                        key_first: k0 as u32,
                        key_count: (k1 - k0) as u32,
                    };
                    self.dispatch(enc, &tables, Kernel::KeyMulAcc, p, groups(words), binds);
                }
            });
            enc.clear_untouched(&started, go);
        })?;
        Ok(out)
    }

    pub(super) fn scaled_difference_gpu(
        &self,
        a: &PolyBatch,
        b: &PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        check_scaled_difference(a, b, offset, scale)?;
        let (ga, gb) = (self.gpu(a)?, self.gpu(b)?);
        let ring = &b.ring;
        let tables = self.tables(ring)?;
        let table = self.op_table(&shoup_pairs(ring, scale))?;
        let out = self.alloc_batch(ring, b.batch)?;
        let go = self.gpu(&out)?;
        self.run(0, |enc| {
            Self::chunk_pairs(go, ga, |o, o0, c, s, count| {
                let polys = go.chunks[o].polys;
                if o0 + polys <= s || o0 >= s + count {
                    return;
                }
                let words = polys * ring.poly_words();
                let binds = Binds {
                    table: &table.buffer,
                    a: &ga.chunks[c].data.buffer,
                    b: &gb.chunks[o].data.buffer,
                    out: &go.chunks[o].data.buffer,
                };
                let p = ScaledDifferenceParams {
                    shape: Shape::of(ring, words),
                    out_first: o0 as u32,
                    a_first: s as u32,
                    a_count: count as u32,
                    a_limbs: a.ring.limbs() as u32,
                    a_first_limb: offset as u32,
                };
                // It reads the output's limbs of `a` (from `offset`) and all of `b`.
                let bytes = 4 * words as u64;
                let traffic = Traffic {
                    read: 2 * bytes + 8 * scale.len() as u64,
                    written: bytes,
                };
                let grid = [groups(words), 1];
                let kernel = Kernel::ScaledDifference;
                self.dispatch_grid(enc, &tables, kernel, p, grid, binds, traffic);
            });
        })?;
        Ok(out)
    }
}
