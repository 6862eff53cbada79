//! CPU twin of `linear_sparse` (shaders/mac.wgsl): sparse affine layers with lazy 64-bit
//! accumulation.
//!
//! Work is split by limb and coefficient range, so each task reads every input's words there
//! from memory once and computes every output from them (split by outputs, every task read the
//! whole input: 8 times the traffic for the 845→100 layer on 2 threads). A task copies each
//! block of [`BLOCK`] coefficients of every input into a packed buffer that stays in the L2
//! cache, then sums every tile of outputs from it with the register kernel of `tile.rs`.

use super::CpuBackend;
use super::tile::{Kernel, LANES, TileTerms};
use super::wide::Wide;
use crate::Result;
use crate::backend::batch::{PolyBatch, Storage};
use crate::backend::sparse::{SparseRows, SparseStorage, SparseWeights, check_sparse};
use rayon::prelude::*;
use std::collections::HashMap;

/// Coefficients per packed block: 845 inputs take 243 KiB there, within a core's L2.
const BLOCK: usize = 64;
/// Words between packed inputs: a little more than a block, so that consecutive inputs do not
/// map to the same L1 sets.
const STRIDE: usize = BLOCK + 8;
/// Outputs summed together when they read the same inputs (dense layers, the channels of a
/// convolution at one position).
const TILE: usize = 4;
/// Tasks per worker thread, for load balance.
const TASKS_PER_THREAD: usize = 8;

impl CpuBackend {
    /// Twin of `linear_sparse`; with `acc`, of `linear_sparse_add` (the sums added to `acc`'s
    /// words as they are reduced, in its memory).
    pub(super) fn linear_sparse_rows(
        &self,
        w: &SparseWeights,
        x: &PolyBatch,
        acc: Option<PolyBatch>,
    ) -> Result<PolyBatch> {
        check_sparse(w, x)?;
        let into = match acc {
            Some(mut acc) => {
                let same_ring =
                    acc.ring.degree() == x.ring.degree() && acc.ring.primes() == x.ring.primes();
                if !same_ring || acc.batch != w.outputs {
                    return Err(crate::Error::Shape(format!(
                        "sums of {} polynomials over {:?} cannot take a map of {} outputs over \
                         {:?}",
                        acc.batch,
                        acc.ring.primes(),
                        w.outputs,
                        x.ring.primes()
                    )));
                }
                match &mut acc.data {
                    Storage::Host(v) => Some(v.take()),
                    Storage::Device(_) => {
                        return Err(crate::Error::WrongDevice {
                            expected: "the CPU".into(),
                            found: acc.location(),
                        });
                    }
                }
            }
            None => None,
        };
        let rows = match &w.data {
            SparseStorage::Host { rows } => rows,
            SparseStorage::Device(d) => {
                return Err(crate::Error::WrongDevice {
                    expected: "the CPU".into(),
                    found: d.location(),
                });
            }
        };
        self.linear_rows(rows, (w.outputs, into), x)
    }

    /// `outputs` affine maps of `x`, given as compressed rows checked against it, added to
    /// the words of `into` when given: the twin of `linear`, `linear_sparse` and
    /// `linear_sparse_add`.
    pub(super) fn linear_rows(
        &self,
        rows: &SparseRows,
        (outputs, into): (usize, Option<Vec<u32>>),
        x: &PolyBatch,
    ) -> Result<PolyBatch> {
        let input = self.host(x)?;
        let ring = &x.ring;
        let (n, limbs) = (ring.degree(), ring.limbs());
        let tiles = tiles(rows);
        // Only the inputs the rows read are packed (a chunk of a convolution's outputs reads
        // a band of the image), renumbered in ascending order.
        let mut used = rows.columns.clone();
        used.sort_unstable();
        used.dedup();
        let columns: Vec<usize> = rows
            .columns
            .iter()
            .map(|c| used.binary_search(c).expect("a used column"))
            .collect();
        // Coefficient ranges per limb: enough tasks for every thread, whole blocks each.
        let blocks = n.div_ceil(BLOCK);
        let ranges = (TASKS_PER_THREAD * self.threads())
            .div_ceil(limbs)
            .clamp(1, blocks);
        let span = blocks.div_ceil(ranges) * BLOCK;
        let ranges = n.div_ceil(span);
        let accumulate = into.is_some();
        let mut out = into.unwrap_or_else(|| self.buffers.take(outputs * ring.poly_words(), false));
        // Task (l, r) owns coefficients r·span.. of limb l of every output: one slice per
        // output, in output order.
        let mut tasks: Vec<Vec<&mut [u32]>> = (0..limbs * ranges)
            .map(|_| Vec::with_capacity(outputs))
            .collect();
        for (i, row) in out.chunks_mut(n).enumerate() {
            for (r, part) in row.chunks_mut(span).enumerate() {
                tasks[(i % limbs) * ranges + r].push(part);
            }
        }
        let kernel = Kernel::detect();
        let work = |(t, dst): (usize, Vec<&mut [u32]>)| {
            let (l, r) = (t / ranges, t % ranges);
            let task = SparseTask {
                kernel,
                rows,
                columns: &columns,
                tiles: &tiles,
                wide: Wide::new(ring.modulus(l)),
                limb: (l, limbs),
                input: (input, &used, ring.poly_words(), l * n + r * span),
                dst,
                accumulate,
            };
            kernel.run(
                #[inline(always)]
                || task.run(),
            )
        };
        if self.threads() == 1 {
            tasks.into_iter().enumerate().for_each(work);
        } else {
            self.pool
                .install(|| tasks.into_par_iter().enumerate().for_each(work));
        }
        Ok(self.wrap(ring, outputs, out))
    }
}

/// The outputs grouped into tiles of at most [`TILE`] rows that read the same columns, in
/// output order within a tile.
fn tiles(rows: &SparseRows) -> Vec<Vec<usize>> {
    let columns = |j: usize| &rows.columns[rows.offsets[j]..rows.offsets[j + 1]];
    let mut open: HashMap<&[usize], usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for j in 0..rows.outputs() {
        match open.get(columns(j)) {
            Some(&t) if out[t].len() < TILE => out[t].push(j),
            _ => {
                open.insert(columns(j), out.len());
                out.push(vec![j]);
            }
        }
    }
    out
}

/// One task: every output over one limb and one coefficient range.
struct SparseTask<'a> {
    kernel: Kernel,
    rows: &'a SparseRows,
    /// `rows.columns` as positions among the packed inputs.
    columns: &'a [usize],
    tiles: &'a [Vec<usize>],
    wide: Wide,
    /// The limb and the number of limbs (the stride of `rows.words` per entry).
    limb: (usize, usize),
    /// The input words, the inputs to pack (ascending), the words per input polynomial, and
    /// the word of the range's first coefficient in the first input.
    input: (&'a [u32], &'a [usize], usize, usize),
    /// The range of every output.
    dst: Vec<&'a mut [u32]>,
    /// Whether the sums are added to what `dst` holds.
    accumulate: bool,
}

impl SparseTask<'_> {
    #[inline(always)]
    fn run(self) {
        let Self {
            kernel,
            rows,
            columns,
            tiles,
            wide,
            limb: (l, limbs),
            input: (input, used, pw, start),
            mut dst,
            accumulate,
        } = self;
        let len = dst.first().map_or(0, |d| d.len());
        // The tiles' weights for this limb, `[term][output in tile]`.
        let weights: Vec<Vec<u32>> = tiles
            .iter()
            .map(|tile| {
                let terms = rows.offsets[tile[0] + 1] - rows.offsets[tile[0]];
                (0..terms)
                    .flat_map(|e| {
                        tile.iter()
                            .map(move |&j| rows.words[(rows.offsets[j] + e) * limbs + l])
                    })
                    .collect()
            })
            .collect();
        let bias = |j: usize| rows.bias.get(j * limbs + l).map_or(0, |&b| u64::from(b));
        let mut packed = vec![0u32; used.len() * STRIDE];
        for c0 in (0..len).step_by(BLOCK) {
            let b = BLOCK.min(len - c0);
            for (&k, p) in used.iter().zip(packed.chunks_exact_mut(STRIDE)) {
                p[..b].copy_from_slice(&input[k * pw + start + c0..][..b]);
            }
            for (tile, wt) in tiles.iter().zip(&weights) {
                let j = tile[0];
                let terms = TileTerms {
                    columns: &columns[rows.offsets[j]..rows.offsets[j + 1]],
                    weights: wt,
                    packed: &packed,
                    stride: STRIDE,
                };
                let block = Block {
                    kernel,
                    wide: &wide,
                    terms: &terms,
                    tile,
                    bias: &bias,
                    range: (c0, b),
                    accumulate,
                };
                match tile.len() {
                    1 => block.sums::<1>(&mut dst),
                    2 => block.sums::<2>(&mut dst),
                    3 => block.sums::<3>(&mut dst),
                    _ => block.sums::<TILE>(&mut dst),
                }
            }
        }
    }
}

/// One tile of outputs over one packed block.
struct Block<'a, B: Fn(usize) -> u64> {
    kernel: Kernel,
    wide: &'a Wide,
    terms: &'a TileTerms<'a>,
    tile: &'a [usize],
    bias: &'a B,
    /// The block's first coefficient in the task's range, and its length.
    range: (usize, usize),
    accumulate: bool,
}

impl<B: Fn(usize) -> u64> Block<'_, B> {
    /// Writes the tile's `T` outputs over the block, reduced.
    #[inline(always)]
    fn sums<const T: usize>(&self, dst: &mut [&mut [u32]]) {
        let (c0, len) = self.range;
        let bias: [u64; T] = std::array::from_fn(|i| (self.bias)(self.tile[i]));
        // Rings have at least 2^10 coefficients, so a block is whole lanes.
        debug_assert_eq!(len % LANES, 0);
        for c in (0..len).step_by(LANES) {
            let acc = self.terms.sums::<T>(self.kernel, self.wide, c, bias);
            for (&j, a) in self.tile.iter().zip(&acc) {
                let out = &mut dst[j][c0 + c..][..LANES];
                if self.accumulate {
                    self.wide.reduce_add(out, a);
                } else {
                    self.wide.reduce(out, a);
                }
            }
        }
    }
}
