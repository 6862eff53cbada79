//! How many GPU bytes a plan needs: the estimates the scheduler places work by. They err on
//! the large side; an allocation that still fails makes the streamed path retry smaller.

use super::plan::LayerPlan;
use super::work::{CHUNK, Work};
use crate::circuits::{DiagonalWork, LinearWork};
use crate::ckks::{Parameters, key_switch_chunk};

pub(crate) struct Footprint {
    n: u64,
    special: u64,
    params: std::sync::Arc<Parameters>,
}

impl Footprint {
    pub fn new(params: &std::sync::Arc<Parameters>) -> Self {
        Self {
            n: params.degree() as u64,
            special: params.special_primes() as u64,
            params: params.clone(),
        }
    }

    /// One two-polynomial ciphertext over `limbs` primes.
    pub fn ciphertext(&self, limbs: usize) -> u64 {
        self.ciphertext_of(2, limbs)
    }

    /// One ciphertext of `size` polynomials over `limbs` primes.
    pub fn ciphertext_of(&self, size: usize, limbs: usize) -> u64 {
        size as u64 * limbs as u64 * self.n * 4
    }

    /// Temporaries of finishing `outputs` linear outputs: the map's result, its rescale, the
    /// three-polynomial square and the key-switching decomposition (one digit per prime).
    pub fn finish(&self, outputs: usize, limbs: usize) -> u64 {
        let chunk = key_switch_chunk(&self.params, limbs.saturating_sub(1));
        let m = outputs.min(chunk) as u64;
        let key_switch = m * (limbs as u64 + self.special) * self.n * 4 * (limbs as u64 + 3);
        6 * outputs as u64 * self.ciphertext(limbs) + key_switch
    }

    /// A linear stage's weights on the device: (word, Shoup) pairs, columns, and per output
    /// at most a tile's header and its index (see `backend/gpu/linear.rs`).
    fn weights(work: &LinearWork) -> u64 {
        4 * (2 * work.rows.words.len() + work.rows.columns.len() + 9 * work.rows.offsets.len())
            as u64
            + 4 * work.rows.bias.len() as u64
    }

    /// A diagonal map's encoded diagonals (one polynomial over its level's primes each, with
    /// room for a companion word).
    fn diagonals(&self, work: &DiagonalWork) -> u64 {
        2 * work.map.products() as u64 * self.ciphertext_of(1, work.level + 1)
    }

    /// What a diagonal map holds while it runs on `groups` groups, besides its input and
    /// output: its rotations and sums (three polynomials at most before the rescale).
    fn diagonal_held(&self, work: &DiagonalWork, groups: usize, limbs: usize) -> u64 {
        (work.held_per_group() * groups) as u64 * self.ciphertext_of(3, limbs)
    }

    /// The most a plan holds at once with every tensor on the GPU (input of `count`
    /// ciphertexts at `level`), the weights of every stage included.
    pub fn resident(&self, plan: &LayerPlan, mut count: usize, mut level: usize) -> u64 {
        let weights: u64 = plan
            .stages
            .iter()
            .map(|w| match w {
                Work::Linear(l) => Self::weights(l),
                Work::Diagonal(d) => self.diagonals(d),
                Work::Square | Work::Powers(_) | Work::Polynomial(_) => 0,
            })
            .sum();
        let mut peak = 0;
        for work in &plan.stages {
            let (outputs, drop, size_in, size_out) = match work {
                Work::Linear(w) => (w.outputs(), w.levels(), w.input_size(), w.output_size()),
                Work::Square => (count, 1, 2, 2),
                Work::Powers(p) => (count * p.degree, p.levels(), 2, 3),
                Work::Polynomial(p) => (count, p.cost.levels, 2, 2),
                // Its rotations and sums are held beside the input (see `diagonal_held`).
                Work::Diagonal(d) => (count / d.inputs().max(1), 1, 2, 2),
            };
            // The powers are held twice at their end: as made, and rearranged.
            let copies = if matches!(work, Work::Powers(_)) {
                2
            } else {
                1
            };
            let limbs = level + 1;
            let held = match work {
                Work::Diagonal(d) => self.diagonal_held(d, outputs, limbs),
                // Its basis, beside the input (a piece at a time would hold less).
                Work::Polynomial(p) => {
                    (count * p.basis_len()) as u64 * self.ciphertext_of(2, limbs)
                }
                _ => 0,
            };
            let here = count as u64 * self.ciphertext_of(size_in, limbs)
                + copies * outputs as u64 * self.ciphertext_of(size_out, limbs)
                + self.finish(outputs.min(CHUNK), limbs)
                + held;
            peak = peak.max(here);
            count = outputs;
            level = level.saturating_sub(drop);
        }
        peak + weights
    }

    /// (outputs per chunk, inputs per upload block) for streaming `work` within `free` bytes:
    /// the largest chunk whose temporaries take at most half, and input blocks (two in flight,
    /// one computing and one uploading) in the rest.
    pub fn stream_sizes(&self, free: Option<u64>, work: &LinearWork) -> (usize, usize) {
        let limbs = work.level + 1;
        let Some(free) = free else {
            return (CHUNK, work.inputs.max(1));
        };
        let usable = free / 10 * 9;
        let mut outputs = CHUNK.min(work.outputs()).max(1);
        while outputs > 1 && self.finish(outputs, limbs) > usable / 2 {
            outputs /= 2;
        }
        let rest = usable.saturating_sub(self.finish(outputs, limbs));
        let block = (rest / (2 * self.ciphertext_of(work.input_size(), limbs))) as usize;
        (outputs, block.clamp(1, work.inputs.max(1)))
    }

    /// Ciphertexts squared together when a square stage streams within `free` bytes: the
    /// chunk's upload and its temporaries in nine tenths of it.
    pub fn square_chunk(&self, free: Option<u64>, limbs: usize) -> usize {
        let Some(free) = free else { return CHUNK };
        let mut size = CHUNK;
        while size > 1
            && self.finish(size, limbs) + size as u64 * self.ciphertext(limbs) > free / 10 * 9
        {
            size /= 2;
        }
        size
    }

    /// Groups a diagonal map runs on together when it streams within `free` bytes: their
    /// input, rotations, sums and key switching in nine tenths of it.
    pub fn diagonal_chunk(&self, free: Option<u64>, work: &DiagonalWork, groups: usize) -> usize {
        let Some(free) = free else { return groups };
        let limbs = work.level + 1;
        let need = |g: usize| {
            (g * work.inputs()) as u64 * self.ciphertext(limbs)
                + self.diagonal_held(work, g, limbs)
                + self.finish(g, limbs)
        };
        let mut size = groups.max(1);
        while size > 1 && need(size) > free / 10 * 9 {
            size /= 2;
        }
        size
    }
}
