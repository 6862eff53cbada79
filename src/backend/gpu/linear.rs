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
use super::kernels::{Kernel, WORKGROUP};
use super::params::{LinearSparseParams, Shape};
use super::profile::Traffic;
use super::{Binds, GpuBackend};
use crate::backend::batch::PolyBatch;
use crate::backend::device_data::DeviceWords;
use crate::backend::sparse::SparseRows;
use crate::math::Ring;
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;

/// Outputs per tile (`SPARSE_TILE` in mac.wgsl): the sums one thread keeps in registers.
pub(crate) const TILE: usize = 32;
/// Words of a tile's header in the table.
const HEADER: usize = 8;

/// A linear layer resident on one GPU.
pub(crate) struct GpuLinear {
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
    /// Tiles `rows` (checked against `ring`) for output chunks of `per_chunk` polynomials (see
    /// [`group`]) and lays out the table.
    pub fn new(ring: &Ring, rows: &SparseRows, per_chunk: usize) -> Result<Self> {
        let limbs = ring.limbs();
        let groups = group(rows, per_chunk);
        // Tiles open in the order of their first output, so each chunk's are consecutive.
        let mut chunks = vec![0..0; rows.outputs().div_ceil(per_chunk)];
        for (t, g) in groups.iter().enumerate() {
            let c = &mut chunks[g.outputs[0] / per_chunk];
            if c.end == 0 {
                c.start = t;
            }
            c.end = t + 1;
        }
        let col_words: usize = groups.iter().map(|g| g.columns.len()).sum();
        let weight_words: usize = groups
            .iter()
            .map(|g| 2 * g.columns.len() * limbs * g.outputs.len())
            .sum();
        let words = (HEADER * groups.len())
            .checked_add(col_words + rows.outputs() + weight_words + rows.bias.len())
            .filter(|&w| w < u32::MAX as usize)
            .ok_or_else(|| Error::Shape("linear layer: its table exceeds 2^32 words".into()))?;
        let mut table = vec![0u32; HEADER * groups.len()];
        table.reserve(words - table.len());
        let mut firsts = Vec::with_capacity(groups.len());
        for g in &groups {
            firsts.push([table.len(), g.columns.len(), 0, g.outputs.len(), 0]);
            table.extend(g.columns.iter().map(|&c| c as u32));
        }
        for (t, g) in groups.iter().enumerate() {
            firsts[t][2] = table.len();
            table.extend(g.outputs.iter().map(|&j| j as u32));
        }
        for (t, g) in groups.iter().enumerate() {
            firsts[t][4] = table.len();
            table.extend(g.weight_pairs(ring, rows));
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
            columns: groups
                .iter()
                .map(|g| g.columns.iter().map(|&c| c as u32).collect())
                .collect(),
            outputs: groups.iter().map(|g| g.outputs.len()).collect(),
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

    /// Weight words a workgroup of each of tiles `tiles` reads from an input chunk of `count`
    /// polynomials from `start` (its limb's pairs of the columns there; every thread of a
    /// workgroup reads the same ones).
    fn weight_reads(&self, tiles: Range<usize>, start: usize, count: usize) -> u64 {
        let inside = |&&k: &&u32| (start..start + count).contains(&(k as usize));
        tiles
            .map(|t| 2 * (self.columns[t].iter().filter(inside).count() * self.outputs[t]) as u64)
            .sum()
    }
}

/// Outputs summed by one tile and the inputs they read, each once.
#[derive(Debug)]
struct Group {
    outputs: Vec<usize>,
    columns: Vec<usize>,
}

impl Group {
    fn new(j: usize, columns: &[usize]) -> Self {
        let mut g = Self {
            outputs: vec![j],
            columns: Vec::with_capacity(columns.len()),
        };
        g.add_columns(columns);
        g
    }

    /// Adds the columns not yet read, in order.
    fn add_columns(&mut self, columns: &[usize]) {
        for &c in columns {
            if !self.columns.contains(&c) {
                self.columns.push(c);
            }
        }
    }

    /// The (w, Shoup) pairs `[column][limb][output]`: the sum of an output's weights on that
    /// column (none: zero).
    fn weight_pairs(&self, ring: &Ring, rows: &SparseRows) -> Vec<u32> {
        let limbs = ring.limbs();
        let (cols, outs) = (self.columns.len(), self.outputs.len());
        let position: HashMap<usize, usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i))
            .collect();
        let mut w = vec![0u32; cols * limbs * outs];
        for (u, &j) in self.outputs.iter().enumerate() {
            for e in rows.offsets[j]..rows.offsets[j + 1] {
                let c = position[&rows.columns[e]];
                for l in 0..limbs {
                    let at = (c * limbs + l) * outs + u;
                    w[at] = ring.modulus(l).add(w[at], rows.words[e * limbs + l]);
                }
            }
        }
        w.iter()
            .enumerate()
            .flat_map(|(i, &v)| [v, ring.modulus(i / outs % limbs).shoup(v)])
            .collect()
    }
}

/// The outputs of `rows` in tiles of up to [`TILE`], never across chunks of `per_chunk`
/// outputs. An output joins a tile that reads exactly its columns; or the last tile opened, if
/// it reads at least half of the output's columns and the tile then reads at most twice as
/// many inputs as its first output (a convolution's neighbouring positions: their windows
/// overlap, so three positions of 5×5 windows at stride 2 read 45 inputs, not 75, at the price
/// of products by zero); or it opens a tile.
fn group(rows: &SparseRows, per_chunk: usize) -> Vec<Group> {
    let row = |j: usize| &rows.columns[rows.offsets[j]..rows.offsets[j + 1]];
    let mut groups: Vec<Group> = Vec::new();
    let mut exact: HashMap<(usize, &[usize]), usize> = HashMap::new();
    for j in 0..rows.outputs() {
        let (chunk, cols) = (j / per_chunk, row(j));
        let room = |t: usize| groups[t].outputs.len() < TILE;
        let joins = exact.get(&(chunk, cols)).copied().filter(|&t| room(t));
        let joins = joins.or_else(|| {
            let t = groups.len().checked_sub(1)?;
            let g = &groups[t];
            let new = cols.iter().filter(|c| !g.columns.contains(c)).count();
            let first = row(g.outputs[0]).len();
            let fits = g.outputs[0] / per_chunk == chunk
                && room(t)
                && 2 * new <= cols.len()
                && g.columns.len() + new <= 2 * first;
            fits.then_some(t)
        });
        match joins {
            Some(t) => {
                groups[t].outputs.push(j);
                if exact.insert((chunk, cols), t) != Some(t) {
                    groups[t].add_columns(cols);
                }
            }
            None => {
                exact.insert((chunk, cols), groups.len());
                groups.push(Group::new(j, cols));
            }
        }
    }
    groups
}

impl DeviceWords for GpuLinear {
    fn location(&self) -> String {
        super::device_name(self.device_id)
    }

    fn regroup(&mut self, _: bool, _: usize) -> Result<()> {
        Err(Error::Shape(
            "prepared weights are not polynomials to regroup".into(),
        ))
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
                found: w.location(),
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
                        let p = LinearSparseParams {
                            shape: Shape::of(ring, pw).accumulating(onto),
                            first_tile: t0 as u32,
                            in_first: s as u32,
                            in_count: (e - s) as u32,
                            out_first: o0 as u32,
                            bias_at: plan.bias_at.unwrap_or(0) as u32,
                            has_bias: u32::from(plan.bias_at.is_some()),
                        };
                        let written: u64 = plan.outputs[tiles.clone()].iter().sum::<usize>() as u64
                            * 4
                            * pw as u64;
                        let read = 4 * plan.input_reads(tiles.clone(), s, e - s) * pw as u64
                            + 4 * plan.weight_reads(tiles.clone(), s, e - s) * x_groups
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

    /// Checks that every output is in one tile of its chunk, that a tile reads each input
    /// once, and its weights: per column the sum of each output's weights there, else zero.
    fn check_plan(ring: &Ring, rows: &SparseRows, plan: &TilePlan, per_chunk: usize) {
        let limbs = ring.limbs();
        let mut seen = vec![0; rows.outputs()];
        for (t, &n) in plan.outputs.iter().enumerate() {
            let h = &plan.table[t * HEADER..][..HEADER];
            assert_eq!(h[3] as usize, n);
            assert!(n <= TILE);
            let cols = &plan.columns[t];
            let mut unique = cols.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), cols.len(), "tile {t} reads an input twice");
            let outs = &plan.table[h[2] as usize..][..n];
            for (u, &j) in outs.iter().enumerate() {
                let j = j as usize;
                seen[j] += 1;
                assert_eq!(
                    j / per_chunk,
                    chunk_of(plan, t),
                    "tile {t} leaves its chunk"
                );
                for (c, &k) in cols.iter().enumerate() {
                    for l in 0..limbs {
                        let m = ring.modulus(l);
                        let expected = (rows.offsets[j]..rows.offsets[j + 1])
                            .filter(|&e| rows.columns[e] == k as usize)
                            .fold(0, |acc, e| m.add(acc, rows.words[e * limbs + l]));
                        let at = h[4] as usize + 2 * ((c * limbs + l) * n + u);
                        assert_eq!(plan.table[at], expected);
                        assert_eq!(plan.table[at + 1], m.shoup(expected));
                    }
                }
                for &k in &rows.columns[rows.offsets[j]..rows.offsets[j + 1]] {
                    assert!(
                        cols.contains(&(k as u32)),
                        "output {j} reads {k} outside its tile"
                    );
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "every output in one tile");
    }

    #[test]
    fn tiles_hold_outputs_that_share_inputs_within_a_chunk() {
        let ring = ring();
        let rows = convolution(ring.limbs());
        for per_chunk in [48, 20, 7] {
            check_plan(
                &ring,
                &rows,
                &TilePlan::new(&ring, &rows, per_chunk).unwrap(),
                per_chunk,
            );
        }
        // One chunk, outputs channel-major: neighbouring positions (3×3 windows at stride 1,
        // 6 of 9 inputs shared) share a tile while it reads at most 18 inputs, so the 4
        // positions of an output row do; the other channels at those positions join it.
        let plan = TilePlan::new(&ring, &rows, 48).unwrap();
        assert_eq!(plan.outputs, vec![12; 4]);
        let first: Vec<u32> = vec![0, 1, 2, 6, 7, 8, 12, 13, 14, 3, 9, 15, 4, 10, 16, 5, 11, 17];
        assert_eq!(plan.columns[0], first);
        // 18 reads per coefficient for 12 outputs, where each output alone reads 9.
        assert_eq!(plan.input_reads(0..4, 0, 36), 4 * 18);
        // The image's first row is read by the first tile only.
        assert_eq!(plan.input_reads(0..4, 0, 6), 6);
        // Rows with a repeated column and disjoint rows (pooling) are not merged.
        let pool = SparseRows {
            offsets: vec![0, 3, 5, 7],
            columns: vec![0, 1, 0, 2, 3, 4, 5],
            words: (1..=7 * ring.limbs() as u32).collect(),
            bias: vec![],
        };
        let plan = TilePlan::new(&ring, &pool, 3).unwrap();
        assert_eq!(plan.outputs, vec![1, 1, 1]);
        check_plan(&ring, &pool, &plan, 3);
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
