//! Layer work in device-independent form, and the pieces of it one device runs: rows of a
//! linear map for a range of outputs, restricted to a block of inputs when they are streamed.

use crate::backend::SparseRows;
use crate::ckks::{Ciphertext, Evaluator};
use crate::{Error, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// A linear map with integer weights on ciphertexts at `level`, then its rescales, and the x²
/// after it when `square`.
///
/// Lazy relinearization: a square followed by another linear map is left as it is (three
/// polynomials, not rescaled; `lazy`), and that map runs on the three-polynomial ciphertexts
/// (the map is linear in each polynomial), so only its outputs are relinearized and rescaled
/// (`input_size` 3, `rescales` 2). In the CryptoNets network that is 110 key switches per batch
/// instead of 945.
#[derive(Clone, Debug)]
pub struct LinearWork {
    /// One row per output over the level's primes taken `input_size` times (each ciphertext is
    /// one polynomial of that ring); the bias, when there is one, is in the first part.
    pub rows: SparseRows,
    pub inputs: usize,
    pub level: usize,
    /// Polynomials per input ciphertext: 2, or 3 after a lazy square.
    pub input_size: usize,
    /// The factor the integer weights carry: outputs are at the input scale times this.
    pub weight_scale: f64,
    /// Rescales after the map (after relinearizing three-polynomial outputs): 1, or 2 when the
    /// input is a lazy square, whose rescale moved here.
    pub rescales: usize,
    pub square: bool,
    /// The square is left unrelinearized and unrescaled, for the next linear map.
    pub lazy: bool,
}

/// One stage of a [`LayerPlan`].
#[derive(Clone, Debug)]
pub enum Work {
    Linear(LinearWork),
    /// x² of every ciphertext (relinearized, rescaled) where no linear map precedes it.
    Square,
    /// The powers u¹ … u^d of every ciphertext, in ⌈log2 d⌉ levels: see [`powers`].
    Powers(PowersWork),
}

/// The powers u¹ … u^`degree` of each of `inputs` ciphertexts at `level`: u^i is u^h · u^(i−h)
/// for h the largest power of two below i (relinearized, rescaled), so u^i is ⌈log2 i⌉ levels
/// down and every power is at most ⌈log2 d⌉. All end at that level, value-major (value k's
/// u^i is ciphertext k·d + i − 1). Their scales differ a little (each rescale divides by a
/// prime near, not at, the scale): the output carries `scale`, and the next linear map's
/// weights for power i are multiplied by `scale / s_i` so that its sums are exact.
#[derive(Clone, Debug, PartialEq)]
pub struct PowersWork {
    pub inputs: usize,
    pub level: usize,
    pub degree: usize,
    /// The scale the output is labelled with.
    pub scale: f64,
}

/// Stages run in order on a tensor; `id` tells prepared weights of different plans apart.
#[derive(Debug)]
pub struct LayerPlan {
    pub(crate) id: u64,
    pub stages: Vec<Work>,
}

static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);

impl LayerPlan {
    /// A plan of `stages`, with intermediate outputs reordered so that outputs reading the
    /// same inputs are neighbours (see `order.rs`); the last linear map keeps its order.
    pub fn new(mut stages: Vec<Work>) -> Self {
        super::order::group_shared_inputs(&mut stages);
        Self {
            id: NEXT_PLAN.fetch_add(1, Ordering::Relaxed),
            stages,
        }
    }
}

impl Work {
    /// A short description for reports ("linear 784→845, x²").
    pub fn describe(&self, inputs: usize) -> String {
        match self {
            Work::Linear(w) => format!(
                "linear {}→{}{}",
                w.inputs,
                w.outputs(),
                match (w.square, w.lazy) {
                    (false, _) => "",
                    (true, false) => ", x²",
                    (true, true) => ", x² (lazy)",
                }
            ),
            Work::Square => format!("x² of {inputs}"),
            Work::Powers(p) => format!("powers 1..{} of {inputs}", p.degree),
        }
    }
}

impl PowersWork {
    /// Levels the stage uses: ⌈log2 degree⌉.
    pub fn levels(&self) -> usize {
        self.degree.next_power_of_two().trailing_zeros() as usize
    }

    /// The level and scale of every power u¹ … u^d for an input at `(level, scale)`, as
    /// [`powers`] computes them (`q`: the ciphertext primes).
    pub fn trace(degree: usize, level: usize, scale: f64, q: &[u32]) -> Vec<(usize, f64)> {
        let mut out: Vec<(usize, f64)> = vec![(level, scale)];
        for i in 2..=degree {
            let h = i.next_power_of_two() / 2;
            let ((la, sa), (lb, sb)) = (out[h - 1], out[i - h - 1]);
            let at = la.min(lb);
            out.push((at - 1, sa * sb / f64::from(q[at])));
        }
        out
    }

    /// Checks that the work fits `x`.
    pub(crate) fn check_input(&self, x: &Ciphertext) -> Result<()> {
        if x.count() != self.inputs || x.level() != self.level || x.size() != 2 {
            return Err(Error::Shape(format!(
                "a powers stage over {} ciphertexts at level {} was given {} of {} polynomials \
                 at level {}",
                self.inputs,
                self.level,
                x.count(),
                x.size(),
                x.level()
            )));
        }
        Ok(())
    }
}

/// u¹ … u^d of every ciphertext of `x` (see [`PowersWork`]), value-major, at the stage's last
/// level, labelled with `work.scale`.
pub(crate) fn powers(ev: &Evaluator, work: &PowersWork, x: &Ciphertext) -> Result<Ciphertext> {
    let d = work.degree;
    // higher[i - 2] is u^i.
    let mut higher: Vec<Ciphertext> = Vec::with_capacity(d.saturating_sub(1));
    for i in 2..=d {
        let h = i.next_power_of_two() / 2;
        let power = |j: usize| if j == 1 { x } else { &higher[j - 2] };
        let (a, b) = (power(h), power(i - h));
        let at = a.level().min(b.level());
        let product = ev.mul_relin(&ev.drop_level(a, at)?, &ev.drop_level(b, at)?)?;
        higher.push(ev.rescale(&product)?);
    }
    let last = work.level - work.levels();
    let dropped = std::iter::once(x)
        .chain(&higher)
        .map(|c| ev.drop_level(c, last))
        .collect::<Result<Vec<_>>>()?;
    drop(higher);
    let n = x.count();
    let refs: Vec<&crate::backend::PolyBatch> = dropped.iter().map(|c| &c.polys).collect();
    let all = ev.backend().concat(&refs)?;
    let stacked = dropped[0].with_polys(all, n * d)?;
    drop(dropped);
    // Power-major (u^i of value k at (i − 1)·n + k) to value-major.
    let order: Vec<usize> = (0..n * d).map(|j| (j % d) * n + j / d).collect();
    let mut y = ev.select(&stacked, &order)?;
    y.scale = work.scale;
    Ok(y)
}

impl LinearWork {
    pub fn outputs(&self) -> usize {
        self.rows.offsets.len().saturating_sub(1)
    }

    /// Words per weight: the limbs of the level's ring taken `input_size` times.
    fn word_len(&self) -> usize {
        self.input_size * (self.level + 1)
    }

    /// The ring each input ciphertext is one polynomial of: the level's primes taken
    /// `input_size` times.
    pub(crate) fn input_ring(
        &self,
        params: &crate::ckks::Parameters,
    ) -> Result<std::sync::Arc<crate::backend::Ring>> {
        params.ring_q(self.level)?.repeat(self.input_size)
    }

    /// Polynomials per output ciphertext: 3 after a lazy square, else 2.
    pub fn output_size(&self) -> usize {
        if self.square && self.lazy { 3 } else { 2 }
    }

    /// Levels the stage uses: its rescales, and the square's when it is not lazy.
    pub fn levels(&self) -> usize {
        self.rescales + usize::from(self.square && !self.lazy)
    }

    /// The distinct inputs (ascending) that rows `range` read.
    pub(crate) fn columns(&self, range: &Range<usize>) -> Vec<usize> {
        let entries = self.rows.offsets[range.start]..self.rows.offsets[range.end];
        let mut columns = self.rows.columns[entries].to_vec();
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Rows `range`, over all inputs (`block` = None) or over the inputs `block` (ascending),
    /// renumbered to their positions there; the bias only when `bias`.
    pub(crate) fn restrict(
        &self,
        range: &Range<usize>,
        block: Option<&[usize]>,
        bias: bool,
    ) -> SparseRows {
        let wl = self.word_len();
        let mut out = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for j in range.clone() {
            for e in self.rows.offsets[j]..self.rows.offsets[j + 1] {
                let column = self.rows.columns[e];
                let local = match block {
                    None => Some(column),
                    Some(b) => b.binary_search(&column).ok(),
                };
                if let Some(local) = local {
                    out.columns.push(local);
                    out.words
                        .extend_from_slice(&self.rows.words[e * wl..(e + 1) * wl]);
                }
            }
            out.offsets.push(out.columns.len());
        }
        if bias && !self.rows.bias.is_empty() {
            out.bias = self.rows.bias[range.start * wl..range.end * wl].to_vec();
        }
        out
    }

    /// Checks that the work fits `x`: its count, level and polynomials per ciphertext.
    pub(crate) fn check_input(&self, x: &Ciphertext) -> Result<()> {
        let (count, level, size) = (x.count(), x.level(), x.size());
        if count != self.inputs || level != self.level || size != self.input_size {
            return Err(Error::Shape(format!(
                "a linear stage over {} ciphertexts of {} polynomials at level {} was given \
                 {count} of {size} at level {level}",
                self.inputs, self.input_size, self.level
            )));
        }
        Ok(())
    }
}

/// Output ranges of at most `size` outputs covering `0..outputs`.
pub(crate) fn ranges(outputs: usize, size: usize) -> Vec<Range<usize>> {
    (0..outputs)
        .step_by(size.max(1))
        .map(|s| s..(s + size.max(1)).min(outputs))
        .collect()
}

/// A linear map's output (`linear`, at the input's level and the input scale times the
/// weight scale) relinearized when it has three polynomials, rescaled, and squared when the
/// work asks for it (left unrelinearized and unrescaled when the square is lazy).
pub(crate) fn finish_linear(
    ev: &Evaluator,
    work: &LinearWork,
    linear: Ciphertext,
) -> Result<Ciphertext> {
    let linear = if linear.size() == 3 {
        ev.relinearize(&linear)?
    } else {
        linear
    };
    let y = ev.rescale_by(&linear, work.rescales)?;
    drop(linear);
    match (work.square, work.lazy) {
        (false, _) => Ok(y),
        (true, false) => square_relin_rescale(ev, &y),
        (true, true) => ev.square(&y),
    }
}

/// x², relinearized while the scale is the product of two scales (key switching adds noise of
/// about 2^16 in the slots, which the rescale then divides away; relinearizing after the
/// rescale, or rescaling the three-polynomial product, whose rounding error is multiplied by
/// s², costs most of the precision), then rescaled.
pub(crate) fn square_relin_rescale(ev: &Evaluator, x: &Ciphertext) -> Result<Ciphertext> {
    ev.rescale(&ev.relinearize(&ev.square(x)?)?)
}
