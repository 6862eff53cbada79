//! Linear layers on the GPU (`linear_sparse` in shaders/mac.wgsl), dense and sparse alike.
//!
//! Outputs that read the same inputs (the channels of a convolution at one position, the rows of
//! a dense layer) form tiles of up to [`TILE`]. One thread sums one coefficient of every output of
//! a tile, so each input word it loads feeds up to [`TILE`] products, and each input word is read
//! once per tile rather than once per output; it sums raw lazy products in two words and reduces
//! once. Tiles never straddle the output batch's chunks, so one dispatch per (output chunk, input
//! chunk) pair covers an output chunk's tiles as the rows of its grid.
//! CPU twin: `CpuBackend::linear_rows`, which tiles the same way for its caches.

use super::arena::Tracked;
use super::dispatch::Traffic;
use super::kernels::{Kernel, WORKGROUP};
use super::{Binds, GpuBackend};
use crate::backend::batch::PolyBatch;
use crate::backend::ring::Ring;
use crate::backend::sparse::SparseRows;
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;

/// Outputs per tile (`SPARSE_TILE` in mac.wgsl): the sums one thread keeps in registers.
pub(crate) const TILE: usize = 32;
/// Words of a tile's header in the table.
const HEADER: usize = 8;

/// A linear layer resident on one GPU.
pub struct GpuLinear {
    pub(crate) device_id: u64,
    table: Tracked,
    plan: TilePlan,
}

/// How a layer's outputs are tiled, and the table the kernel reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TilePlan {
    /// Headers, columns, outputs, weight pairs and bias (see mac.wgsl).
    pub table: Vec<u32>,
    /// The tiles of each output chunk.
    pub chunks: Vec<Range<usize>>,
    /// The columns each tile reads (to count the traffic of a dispatch).
    pub columns: Vec<Vec<u32>>,
    /// Outputs per tile.
    pub outputs: Vec<usize>,
    /// Where the bias starts in the table, when there is one.
    pub bias_at: Option<usize>,
}

impl TilePlan {
    /// Tiles `rows` (checked against `ring`) for output chunks of `per_chunk` polynomials: each
    /// tile is up to [`TILE`] outputs of one chunk with the same columns, in output order.
    pub fn new(ring: &Ring, rows: &SparseRows, per_chunk: usize) -> Result<Self> {
        let limbs = ring.limbs();
        let row = |j: usize| rows.offsets[j]..rows.offsets[j + 1];
        let mut open: HashMap<(usize, &[usize]), usize> = HashMap::new();
        let mut tiles: Vec<Vec<usize>> = Vec::new();
        for j in 0..rows.outputs() {
            let key = (j / per_chunk, &rows.columns[row(j)]);
            match open.get(&key) {
                Some(&t) if tiles[t].len() < TILE => tiles[t].push(j),
                _ => {
                    open.insert(key, tiles.len());
                    tiles.push(vec![j]);
                }
            }
        }
        // Tiles open in the order of their first output, so each chunk's are consecutive.
        let chunk_count = rows.outputs().div_ceil(per_chunk);
        let mut chunks = vec![0..0; chunk_count];
        for (t, tile) in tiles.iter().enumerate() {
            let c = &mut chunks[tile[0] / per_chunk];
            if c.end == 0 {
                c.start = t;
            }
            c.end = t + 1;
        }
        let columns: Vec<Vec<u32>> = tiles
            .iter()
            .map(|t| rows.columns[row(t[0])].iter().map(|&c| c as u32).collect())
            .collect();
        let col_words: usize = columns.iter().map(Vec::len).sum();
        let weight_words: usize = tiles
            .iter()
            .zip(&columns)
            .map(|(t, c)| 2 * c.len() * limbs * t.len())
            .sum();
        let words = (HEADER * tiles.len())
            .checked_add(col_words + rows.outputs() + weight_words + rows.bias.len())
            .filter(|&w| w < u32::MAX as usize)
            .ok_or_else(|| Error::Shape("linear layer: its table exceeds 2^32 words".into()))?;
        let mut table = vec![0u32; HEADER * tiles.len()];
        table.reserve(words - table.len());
        let mut firsts = Vec::with_capacity(tiles.len());
        for (t, cols) in tiles.iter().zip(&columns) {
            firsts.push([table.len(), cols.len(), 0, t.len(), 0]);
            table.extend(cols);
        }
        for (t, tile) in tiles.iter().enumerate() {
            firsts[t][2] = table.len();
            table.extend(tile.iter().map(|&j| j as u32));
        }
        for (t, tile) in tiles.iter().enumerate() {
            firsts[t][4] = table.len();
            for c in 0..columns[t].len() {
                for l in 0..limbs {
                    let m = ring.modulus(l);
                    for &j in tile {
                        let w = rows.words[(rows.offsets[j] + c) * limbs + l];
                        table.extend([w, m.shoup(w)]);
                    }
                }
            }
        }
        for (t, f) in firsts.iter().enumerate() {
            for (slot, &v) in table[t * HEADER..].iter_mut().zip(f) {
                *slot = v as u32;
            }
        }
        let bias_at = (!rows.bias.is_empty()).then_some(table.len());
        table.extend(&rows.bias);
        Ok(Self {
            table,
            chunks,
            columns,
            outputs: tiles.iter().map(Vec::len).collect(),
            bias_at,
        })
    }

    /// Words of global memory that the threads of tiles `tiles` read from an input chunk of
    /// `count` polynomials from `start`, per word of a polynomial.
    fn input_reads(&self, tiles: Range<usize>, start: usize, count: usize) -> u64 {
        let inside = |&&k: &&u32| (start..start + count).contains(&(k as usize));
        self.columns[tiles]
            .iter()
            .map(|c| c.iter().filter(inside).count() as u64)
            .sum()
    }

    /// Weight words a workgroup of tiles `tiles` reads (its limb's pairs; every thread of a
    /// workgroup reads the same ones).
    fn weight_reads(&self, tiles: Range<usize>) -> u64 {
        tiles
            .map(|t| 2 * (self.columns[t].len() * self.outputs[t]) as u64)
            .sum()
    }
}

impl GpuBackend {
    /// Prepares `rows` (checked by the caller) as a tiled layer for inputs of `ring`.
    pub(super) fn upload_linear(&self, ring: &Ring, rows: &SparseRows) -> Result<GpuLinear> {
        let plan = TilePlan::new(ring, rows, self.per_chunk(ring)?)?;
        let table = self.upload_table(&plan.table, "the linear layer")?;
        Ok(GpuLinear {
            device_id: self.id,
            table,
            plan,
        })
    }

    /// The layer `w` (of `outputs` outputs) applied to `x` (checked by the caller).
    pub(super) fn linear_tiles(
        &self,
        w: &GpuLinear,
        outputs: usize,
        x: &PolyBatch,
    ) -> Result<PolyBatch> {
        if w.device_id != self.id {
            return Err(Error::WrongDevice {
                expected: self.where_(),
                found: format!("GPU device #{}", w.device_id),
            });
        }
        let gx = self.gpu(x)?;
        let ring = &x.ring;
        let tables = self.tables(ring)?;
        let out = self.alloc_batch(ring, outputs)?;
        let go = self.gpu(&out)?;
        let pw = ring.poly_words();
        let plan = &w.plan;
        let x_groups = pw.div_ceil(WORKGROUP as usize) as u64;
        let table_bytes = 4 * plan.table.len() as u64;
        let rows = self.max_grid_rows();
        self.run(0, |enc| {
            for (o, chunk_tiles) in plan.chunks.iter().enumerate() {
                let (o0, _) = go.range(o);
                for (c, in_chunk) in gx.chunks.iter().enumerate() {
                    let (s, e) = gx.range(c);
                    // Every output of the chunk is written by each input chunk's dispatch: the
                    // first starts from zero, the next add to it.
                    let onto = c > 0;
                    for t0 in chunk_tiles.clone().step_by(rows) {
                        let tiles = t0..chunk_tiles.end.min(t0 + rows);
                        let args = [
                            t0,
                            s,
                            e - s,
                            o0,
                            plan.bias_at.unwrap_or(0),
                            usize::from(plan.bias_at.is_some()),
                        ];
                        let p = Self::accumulate(Self::params(ring, pw, &args), onto);
                        let written: u64 = plan.outputs[tiles.clone()].iter().sum::<usize>() as u64
                            * 4
                            * pw as u64;
                        let read = 4 * plan.input_reads(tiles.clone(), s, e - s) * pw as u64
                            + 4 * plan.weight_reads(tiles.clone()) * x_groups
                            + if onto { written } else { 0 };
                        let traffic = Traffic {
                            read: read.max(table_bytes),
                            written,
                        };
                        let binds = Binds {
                            table: &w.table.buffer,
                            a: &in_chunk.data.buffer,
                            b: &self.placeholder,
                            out: &go.chunks[o].data.buffer,
                        };
                        let grid = [x_groups, tiles.len() as u64];
                        self.dispatch_grid(
                            enc,
                            &tables,
                            Kernel::LinearSparse,
                            p,
                            grid,
                            binds,
                            traffic,
                        );
                    }
                }
            }
        })?;
        Ok(out)
    }
}

/// The output chunk each tile of `plan` belongs to, for tests of the tiling.
#[cfg(test)]
fn chunk_of(plan: &TilePlan, t: usize) -> usize {
    plan.chunks.iter().position(|r| r.contains(&t)).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::ntt_primes;
    use std::sync::Arc;

    fn ring() -> Arc<Ring> {
        Ring::new(1024, &ntt_primes(1024, 30, 2, &[]).unwrap()).unwrap()
    }

    /// A 3×3 convolution with 3 channels over a 6×6 image, no padding: 48 outputs.
    fn convolution(limbs: usize) -> SparseRows {
        let mut rows = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for ch in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    for dy in 0..3 {
                        for dx in 0..3 {
                            rows.columns.push((y + dy) * 6 + x + dx);
                            for l in 0..limbs {
                                rows.words.push((ch * 100 + dy * 3 + dx + l) as u32);
                            }
                        }
                    }
                    rows.offsets.push(rows.columns.len());
                }
            }
        }
        // Outputs are channel-major: output ch·16 + position.
        rows
    }

    #[test]
    fn tiles_group_outputs_with_the_same_columns_within_a_chunk() {
        let ring = ring();
        let rows = convolution(ring.limbs());
        for per_chunk in [48, 20, 7] {
            let plan = TilePlan::new(&ring, &rows, per_chunk).unwrap();
            let mut seen = [0; 48];
            for (t, &n) in plan.outputs.iter().enumerate() {
                let h = &plan.table[t * HEADER..][..HEADER];
                assert_eq!(h[3] as usize, n);
                assert!(n <= TILE);
                let outs = &plan.table[h[2] as usize..][..n];
                for &j in outs {
                    let j = j as usize;
                    seen[j] += 1;
                    assert_eq!(
                        j / per_chunk,
                        chunk_of(&plan, t),
                        "tile {t} leaves its chunk"
                    );
                    let cols = &rows.columns[rows.offsets[j]..rows.offsets[j + 1]];
                    let tile_cols: Vec<usize> =
                        plan.columns[t].iter().map(|&c| c as usize).collect();
                    assert_eq!(cols, &tile_cols[..]);
                }
                // Weights: pair (w, w') for column c, limb l, output u.
                for c in 0..plan.columns[t].len() {
                    for l in 0..ring.limbs() {
                        for (u, &j) in outs.iter().enumerate() {
                            let at = h[4] as usize + 2 * ((c * ring.limbs() + l) * n + u);
                            let w = rows.words[(rows.offsets[j as usize] + c) * ring.limbs() + l];
                            assert_eq!(plan.table[at], w);
                            assert_eq!(plan.table[at + 1], ring.modulus(l).shoup(w));
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "every output in one tile");
        }
        // One chunk: the three channels at each of the 16 positions share a tile.
        let plan = TilePlan::new(&ring, &rows, 48).unwrap();
        assert_eq!(plan.outputs, vec![3; 16]);
        assert_eq!(plan.input_reads(0..16, 0, 36), 16 * 9);
        // The image's first row: read by the 4 positions of the first output row, 3 words each.
        assert_eq!(plan.input_reads(0..16, 0, 6), 4 * 3);
    }

    #[test]
    fn dense_rows_fill_whole_tiles() {
        let ring = ring();
        let limbs = ring.limbs();
        let rows = SparseRows::dense(70, 5, &vec![1; 70 * 5 * limbs]);
        let plan = TilePlan::new(&ring, &rows, 1000).unwrap();
        assert_eq!(plan.outputs, vec![TILE, TILE, 70 - 2 * TILE]);
        assert_eq!(plan.chunks, vec![0..3]);
        assert_eq!(plan.bias_at, None);
        // 3 tiles read the 5 inputs each: 15 words per coefficient, not 350.
        assert_eq!(plan.input_reads(0..3, 0, 5), 15);
    }
}
