//! CPU twin of `linear_sparse` (shaders/mac.wgsl): sparse affine layers with lazy 64-bit
//! accumulation, blocked over coefficients so the blocks of the inputs an output group reads
//! stay in cache while every output of the group is summed from them.

use super::wide::Wide;
use super::{CpuBackend, pool};
use crate::Result;
use crate::backend::batch::PolyBatch;
use crate::backend::sparse::{SparseRows, SparseStorage, SparseWeights, check_sparse};
use rayon::prelude::*;

/// Coefficients summed together: 2 KiB of accumulators, 1 KiB of each input read.
const BLOCK: usize = 256;
/// Groups of outputs per worker thread: enough for load balance, few enough that each group
/// reads its inputs from memory only once per block.
const GROUPS_PER_THREAD: usize = 4;

impl CpuBackend {
    /// Twin of `linear_sparse`.
    pub(super) fn linear_sparse_rows(&self, w: &SparseWeights, x: &PolyBatch) -> Result<PolyBatch> {
        check_sparse(w, x)?;
        let SparseStorage::Host { rows } = &w.data else {
            return Err(crate::Error::WrongDevice {
                expected: "the CPU".into(),
                found: "the GPU".into(),
            });
        };
        let input = self.host(x)?;
        let ring = &x.ring;
        let pw = ring.poly_words();
        let group = w
            .outputs
            .div_ceil(self.threads() * GROUPS_PER_THREAD)
            .max(1);
        let mut out = pool::take(w.outputs * pw, false);
        let work = |(g, dst): (usize, &mut [u32])| {
            pulp::Arch::new().dispatch(SparseGroup {
                ring,
                rows,
                input,
                first: g * group,
                dst,
            })
        };
        if self.threads() == 1 {
            out.chunks_mut(group * pw).enumerate().for_each(work);
        } else {
            self.pool
                .install(|| out.par_chunks_mut(group * pw).enumerate().for_each(work));
        }
        Ok(Self::wrap(ring, w.outputs, out))
    }
}

/// Outputs summed together when consecutive rows read the same inputs (dense layers): each
/// input block loaded feeds this many accumulators.
const TILE: usize = 4;

/// Outputs `first..first + dst.len() / pw` of the layer, every limb and coefficient. A
/// [`pulp::WithSimd`] operation rather than a closure: a large closure body may be left out of
/// line, and then it is compiled without the SIMD features the dispatch found.
struct SparseGroup<'a> {
    ring: &'a crate::backend::Ring,
    rows: &'a SparseRows,
    input: &'a [u32],
    first: usize,
    dst: &'a mut [u32],
}

impl pulp::WithSimd for SparseGroup<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            ring,
            rows,
            input,
            first,
            dst,
        } = self;
        sparse_group(ring, rows, input, first, dst);
    }
}

#[inline(always)]
fn sparse_group(
    ring: &crate::backend::Ring,
    rows: &SparseRows,
    input: &[u32],
    first: usize,
    dst: &mut [u32],
) {
    let (n, limbs, pw) = (ring.degree(), ring.limbs(), ring.poly_words());
    let count = dst.len() / pw;
    let tiles = tiles(rows, first, count);
    let mut acc = [[0u64; BLOCK]; TILE];
    for l in 0..limbs {
        let wide = Wide::new(ring.modulus(l));
        for c0 in (0..n).step_by(BLOCK) {
            let len = BLOCK.min(n - c0);
            for &(j0, t) in &tiles {
                for (i, a) in acc.iter_mut().enumerate().take(t) {
                    let b = rows.bias.get((j0 + i) * limbs + l);
                    a[..len].fill(b.map_or(0, |&b| u64::from(b)));
                }
                let (start, end) = (rows.offsets[j0], rows.offsets[j0 + 1]);
                let mut since_fold = 0;
                for e in start..end {
                    if since_fold == wide.per_fold {
                        for a in acc.iter_mut().take(t) {
                            wide.fold(&mut a[..len]);
                        }
                        since_fold = 0;
                    }
                    let at = rows.columns[e] * pw + l * n + c0;
                    let xs = &input[at..at + len];
                    for (i, a) in acc.iter_mut().enumerate().take(t) {
                        let e_i = rows.offsets[j0 + i] + (e - start);
                        Wide::mac(&mut a[..len], xs, rows.words[e_i * limbs + l]);
                    }
                    since_fold += 1;
                }
                for (i, a) in acc.iter().enumerate().take(t) {
                    let row = (j0 - first + i) * pw + l * n + c0;
                    wide.reduce(&mut dst[row..row + len], &a[..len]);
                }
            }
        }
    }
}

/// Outputs `first..first + count` as runs `(first row, rows)` of at most [`TILE`] consecutive
/// rows with the same columns.
fn tiles(rows: &SparseRows, first: usize, count: usize) -> Vec<(usize, usize)> {
    let columns = |j: usize| &rows.columns[rows.offsets[j]..rows.offsets[j + 1]];
    let mut out: Vec<(usize, usize)> = Vec::new();
    for j in first..first + count {
        match out.last_mut() {
            Some((j0, t)) if *t < TILE && columns(*j0) == columns(j) => *t += 1,
            _ => out.push((j, 1)),
        }
    }
    out
}
