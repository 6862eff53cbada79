//! The NTT on the GPU (`shaders/ntt.wgsl`): at most two passes over global memory, and the
//! work a forward transform folds into them (the base conversion of the mod-up in its first
//! pass, the scaled difference of a rescale or mod-down in its last).

use super::arena::Tracked;
use super::kernels::Kernel;
use super::memory::GpuChunk;
use super::params::{NTT_CONVERSION, NTT_PLAIN, NTT_SCALED_DIFFERENCE, NttParams, Shape};
use super::{Binds, GpuBackend, GpuData, shoup_pairs};
use crate::Result;
use crate::backend::Backend;
use crate::backend::batch::PolyBatch;
use crate::backend::rns_ops::check_scaled_difference;
use crate::math::Ring;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl GpuBackend {
    /// The NTT of every polynomial of `x` in at most two passes (see ntt.wgsl): the stages
    /// spanning less than a tile in workgroup memory over consecutive words, the others over
    /// column tiles. A forward transform may fold other work into its passes (see [`Fold`]).
    pub(super) fn ntt(&self, x: &mut PolyBatch, forward: bool, fold: Fold<'_>) -> Result<()> {
        let gx = self.gpu(x)?;
        let ring = x.ring.clone();
        let tables = self.tables(&ring)?;
        let n = ring.degree();
        let tile = n.min(self.ntt_tile);
        let (tile_log, n_log) = (tile.trailing_zeros() as usize, n.trailing_zeros() as usize);
        // Column stages: 2^k words a column, tile / 2^k columns a tile.
        let k = n_log - tile_log;
        let width_log = tile_log - k;
        let pass = |size_log: usize, width_log: usize, scale_n_inv: bool| NttParams {
            size_log: size_log as u32,
            width_log: width_log as u32,
            scale_n_inv: u32::from(scale_n_inv),
            mode: NTT_PLAIN,
            ..NttParams::default()
        };
        let columns = |kernel| (kernel, pass(k, width_log, false));
        let local = |kernel, scale: bool| (kernel, pass(tile_log, 0, scale));
        let passes = match (forward, k > 0) {
            (true, true) => vec![
                columns(Kernel::NttForwardColumns),
                local(Kernel::NttForwardLocal, false),
            ],
            (true, false) => vec![local(Kernel::NttForwardLocal, false)],
            (false, true) => vec![
                local(Kernel::NttInverseLocal, false),
                columns(Kernel::NttInverseColumns),
            ],
            (false, false) => vec![local(Kernel::NttInverseLocal, true)],
        };
        self.run(0, |enc| {
            for (o, chunk) in gx.chunks.iter().enumerate() {
                let tiles = chunk.polys * ring.limbs() * (n / tile);
                for &(kernel, pass) in &passes {
                    let mut binds = Binds {
                        table: &tables.twiddles,
                        a: &self.placeholder,
                        b: &self.placeholder,
                        out: &chunk.data.buffer,
                    };
                    let mut p = NttParams {
                        shape: Shape::of(&ring, tiles),
                        ..pass
                    };
                    let mut traffic = self.footprint(kernel, &p, &binds);
                    let (o0, o1) = gx.range(o);
                    let words = 4 * ((o1 - o0) * ring.poly_words()) as u64;
                    match &fold {
                        Fold::Difference(d) if kernel == Kernel::NttForwardLocal => {
                            let (c, s) = d.chunks[o];
                            p.mode = NTT_SCALED_DIFFERENCE;
                            p.out_first = o0 as u32;
                            p.operand_first = s as u32;
                            p.operand_limbs = d.a_limbs as u32;
                            p.operand_first_limb = d.offset as u32;
                            binds.a = &d.a_chunks.chunks[c].data.buffer;
                            binds.b = &d.scale.buffer;
                            // It also reads the matching words of `a`, and the scales.
                            traffic.read += words + 8 * ring.limbs() as u64;
                        }
                        Fold::Conversion(v) if kernel == passes[0].0 => {
                            p.mode = NTT_CONVERSION;
                            p.out_first = o0 as u32;
                            p.operand_limbs = v.x_limbs as u32;
                            p.digit_polys = v.per_digit as u32;
                            binds.a = &v.x_chunk.data.buffer;
                            binds.b = &v.table.buffer;
                            // Instead of its own words it reads, for each, the source words
                            // of its digit.
                            let sources: usize = (o0..o1)
                                .map(|o| v.digit_limbs[o / v.per_digit] * ring.poly_words())
                                .sum();
                            traffic.read =
                                traffic.read - words + 4 * sources as u64 + v.table.buffer.size();
                        }
                        _ => {}
                    }
                    self.dispatch_grid(enc, &tables, kernel, p, [tiles as u64, 1], binds, traffic);
                }
            }
        })
    }
}

/// Work a forward NTT folds into its passes.
pub(crate) enum Fold<'a> {
    None,
    /// In the last pass (see [`Difference`]).
    Difference(Difference<'a>),
    /// In the first pass (see [`Conversion`]).
    Conversion(Conversion<'a>),
}

/// What a forward NTT's first pass computes instead of loading: the base conversion of the
/// digits of `x` (`base_convert`), output polynomial `d · per_digit + m` being digit `d` of
/// polynomial `m`.
pub(crate) struct Conversion<'a> {
    /// Limbs of a polynomial of the converted batch.
    x_limbs: usize,
    /// `x`'s one chunk.
    x_chunk: &'a GpuChunk,
    per_digit: usize,
    /// Source limbs of each digit.
    digit_limbs: Vec<usize>,
    /// The conversion table (see `conversion_buffer`).
    table: Arc<Tracked>,
}

/// What a forward NTT's last pass subtracts its result from: `out = (a − NTT(x)) · scale` over
/// `x`'s ring, whose primes are `a`'s limbs from `offset` (see `scaled_difference`).
pub(crate) struct Difference<'a> {
    /// Limbs of a polynomial of `a`.
    a_limbs: usize,
    a_chunks: &'a GpuData,
    offset: usize,
    /// Per limb of `x`'s ring: (scale, Shoup).
    scale: Arc<Tracked>,
    /// For each chunk of `x`: the chunk of `a` holding all its polynomials, and where it starts.
    chunks: Vec<(usize, usize)>,
}

impl GpuBackend {
    /// The fused transform and difference, or the two operations where a chunk of `b` spans
    /// two chunks of `a` (their rings differ, so their chunks may not line up).
    pub(super) fn ntt_forward_difference(
        &self,
        a: &PolyBatch,
        mut b: PolyBatch,
        offset: usize,
        scale: &[u32],
    ) -> Result<PolyBatch> {
        check_scaled_difference(a, &b, offset, scale)?;
        let (ga, gb) = (self.gpu(a)?, self.gpu(&b)?);
        let chunks: Option<Vec<(usize, usize)>> = (0..gb.chunks.len())
            .map(|o| {
                let (o0, o1) = gb.range(o);
                (0..ga.chunks.len()).find_map(|c| {
                    let (s, e) = ga.range(c);
                    (s <= o0 && o1 <= e).then_some((c, s))
                })
            })
            .collect();
        let Some(chunks) = chunks else {
            self.ntt_forward(&mut b)?;
            return self.scaled_difference_gpu(a, &b, offset, scale);
        };
        let then = Difference {
            a_limbs: a.ring.limbs(),
            a_chunks: ga,
            offset,
            scale: self.op_table(&shoup_pairs(&b.ring, scale))?,
            chunks,
        };
        self.ntts.fetch_add(b.rows() as u64, Ordering::Relaxed);
        self.ntt(&mut b, true, Fold::Difference(then))?;
        Ok(b)
    }

    /// `base_convert` with the forward NTT's first pass computing the conversion, where `x`
    /// lies in one chunk (else the two operations).
    pub(super) fn base_convert_forward(
        &self,
        x: &PolyBatch,
        digits: &[Range<usize>],
        to: &Arc<Ring>,
    ) -> Result<PolyBatch> {
        let gx = self.gpu(x)?;
        let [x_chunk] = &gx.chunks[..] else {
            let mut out = self.base_convert_gpu(x, digits, to)?;
            self.ntt_forward(&mut out)?;
            return Ok(out);
        };
        let fold = Conversion {
            x_limbs: x.ring.limbs(),
            x_chunk,
            per_digit: x.batch,
            digit_limbs: digits.iter().map(|d| d.len()).collect(),
            table: self.conversion_buffer(x, digits, to)?,
        };
        let mut out = self.alloc_batch(to, digits.len() * x.batch)?;
        self.ntts.fetch_add(out.rows() as u64, Ordering::Relaxed);
        self.ntt(&mut out, true, Fold::Conversion(fold))?;
        Ok(out)
    }
}
