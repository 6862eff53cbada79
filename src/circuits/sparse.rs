//! Sparse plaintext maps across ciphertexts: output `o` is `bias_o + Σ_j w_oj · x_j` with
//! integer weights, every ciphertext of the batch one value (the batch packing's layers, and
//! the weighting of a polynomial's powers). The map is linear in each polynomial of a
//! ciphertext, so it runs as well on three-polynomial ciphertexts that are not yet
//! relinearized (lazy relinearization): only its outputs are relinearized.

use crate::backend::SparseRows;
use crate::ckks::{Ciphertext, Evaluator, Parameters};
use crate::math::Modulus;
use crate::math::Ring;
use crate::{Error, Result};
use std::ops::Range;
use std::sync::Arc;

/// The form of a sparse map's input ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputForm {
    /// Two polynomials at the working scale: one rescale after the map.
    Relinearized,
    /// Three polynomials, not relinearized and not rescaled (a product left as it is, at about
    /// the square of the working scale): the map's outputs are relinearized, then rescaled
    /// twice (the product's rescale and the map's own).
    Lazy,
}

impl InputForm {
    /// Polynomials per ciphertext.
    pub fn polys(self) -> usize {
        match self {
            InputForm::Relinearized => 2,
            InputForm::Lazy => 3,
        }
    }

    /// Rescales after the map.
    pub fn rescales(self) -> usize {
        match self {
            InputForm::Relinearized => 1,
            InputForm::Lazy => 2,
        }
    }

    /// The form of ciphertexts of `polys` polynomials.
    pub fn of(polys: usize) -> Result<Self> {
        match polys {
            2 => Ok(InputForm::Relinearized),
            3 => Ok(InputForm::Lazy),
            n => Err(Error::Mismatch(format!(
                "ciphertexts of {n} polynomials: a map takes 2 or 3"
            ))),
        }
    }
}

/// What follows a sparse map, on its rescaled outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Nothing: the outputs are the map's.
    Nothing,
    /// x², relinearized and rescaled (one level).
    Square,
    /// x² left as it is (three polynomials, not rescaled) for the next map, whose input form
    /// is then [`InputForm::Lazy`].
    LazySquare,
}

/// A sparse map with integer weights on ciphertexts at `level`, then its rescales, then
/// [`Then`].
///
/// Lazy relinearization: a square followed by another map is left as it is, and that map runs
/// on the three-polynomial ciphertexts, so only its outputs are relinearized and rescaled. In
/// the CryptoNets network that is 110 key switches per batch instead of 945.
#[derive(Clone, Debug)]
pub struct LinearWork {
    /// One row per output over the level's primes taken [`InputForm::polys`] times (each
    /// ciphertext is one polynomial of that ring); the bias, when there is one, is in the first
    /// part.
    pub rows: SparseRows,
    pub inputs: usize,
    pub level: usize,
    pub input: InputForm,
    /// The factor the integer weights carry: outputs are at the input scale times this.
    pub weight_scale: f64,
    pub then: Then,
}

impl LinearWork {
    /// Rows `(bias, [(input, weight)])` as residues over the level's primes taken once per
    /// polynomial of the input form (each ciphertext is one polynomial of that ring); the bias
    /// is the constant plaintext `round(b · Δ_w · s_in)` in the first part.
    /// Weights are `round(w · Δ_w · f)` with `f = factors[column mod factors.len()]`: the
    /// correction of each power's scale after a powers stage, else 1.
    pub fn encode(
        params: &Parameters,
        (level, inputs, input): (usize, usize, InputForm),
        rows: &[(f32, Vec<(usize, f32)>)],
        (weight_scale, factors): (f64, &[f64]),
        scale_in: f64,
    ) -> Result<Self> {
        let ring = params.ring_q(level)?;
        // The residues of round(v) (which can pass 2^64: a lazy square's bias is at about
        // 2^72), repeated for the input's polynomials after the first when `all`, else zeros.
        let residues = |v: f64, all: bool| -> Result<Vec<u32>> {
            let first: Vec<u32> = (0..ring.limbs())
                .map(|l| integer_residue(v.round(), &ring.modulus(l)))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Encoding(format!("weight {v:e} is not a finite number")))?;
            let rest = if all {
                first.clone()
            } else {
                vec![0; first.len()]
            };
            let mut out = first;
            for _ in 1..input.polys() {
                out.extend(&rest);
            }
            Ok(out)
        };
        let mut w = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for (bias, terms) in rows {
            for &(k, v) in terms {
                w.columns.push(k);
                let factor = factors[k % factors.len()];
                w.words
                    .extend(residues(f64::from(v) * weight_scale * factor, true)?);
            }
            w.offsets.push(w.columns.len());
            w.bias
                .extend(residues(f64::from(*bias) * weight_scale * scale_in, false)?);
        }
        Ok(Self {
            rows: w,
            inputs,
            level,
            input,
            weight_scale,
            then: Then::Nothing,
        })
    }

    pub fn outputs(&self) -> usize {
        self.rows.offsets.len().saturating_sub(1)
    }

    /// Polynomials per input ciphertext.
    pub fn input_size(&self) -> usize {
        self.input.polys()
    }

    /// Rescales after the map (after relinearizing three-polynomial outputs).
    pub fn rescales(&self) -> usize {
        self.input.rescales()
    }

    /// Words per weight: the limbs of the level's ring taken `input_size` times.
    fn word_len(&self) -> usize {
        self.input_size() * (self.level + 1)
    }

    /// The ring each input ciphertext is one polynomial of: the level's primes taken
    /// `input_size` times.
    pub(crate) fn input_ring(&self, params: &Parameters) -> Result<Arc<Ring>> {
        params.ring_q(self.level)?.repeat(self.input_size())
    }

    /// Polynomials per output ciphertext: 3 after a lazy square, else 2.
    pub fn output_size(&self) -> usize {
        if self.then == Then::LazySquare { 3 } else { 2 }
    }

    /// Levels the stage uses: its rescales, and the square's when it is not lazy.
    pub fn levels(&self) -> usize {
        self.rescales() + usize::from(self.then == Then::Square)
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
        if count != self.inputs || level != self.level || size != self.input_size() {
            return Err(Error::Shape(format!(
                "a linear stage over {} ciphertexts of {} polynomials at level {} was given \
                 {count} of {size} at level {level}",
                self.inputs,
                self.input_size(),
                self.level
            )));
        }
        Ok(())
    }

    /// The whole map on `x` on one evaluator's device, the outputs finished (relinearized,
    /// rescaled, then what [`Then`] says). The batch packing's scheduler runs maps in ranges of
    /// outputs and blocks of inputs instead; this is the path for small maps (a polynomial's
    /// weighting).
    pub fn apply(&self, ev: &Evaluator, x: Ciphertext) -> Result<Ciphertext> {
        self.check_input(&x)?;
        let be = ev.backend();
        let ring = self.input_ring(ev.params())?;
        let weights = be.upload_sparse(&ring, self.inputs, &self.rows)?;
        let meta = x.meta();
        let grouped = x.polys.regroup(&ring)?;
        let polys = be
            .linear_sparse(&weights, &grouped)?
            .regroup(ev.params().ring_q(self.level)?)?;
        let linear = linear_output(meta, self, polys, self.outputs())?;
        finish_linear(ev, self, linear)
    }
}

/// Output ranges of at most `size` outputs covering `0..outputs`.
pub(crate) fn ranges(outputs: usize, size: usize) -> Vec<Range<usize>> {
    (0..outputs)
        .step_by(size.max(1))
        .map(|s| s..(s + size.max(1)).min(outputs))
        .collect()
}

/// The ciphertexts a map's raw output polynomials form: `outputs` of the input's size, at the
/// input scale times the weight scale.
pub(crate) fn linear_output(
    x: crate::ckks::CipherMeta,
    work: &LinearWork,
    polys: crate::backend::PolyBatch,
    outputs: usize,
) -> Result<Ciphertext> {
    let meta = crate::ckks::CipherMeta {
        size: work.input_size(),
        scale: x.scale * work.weight_scale,
        ..x
    };
    Ciphertext::new(meta, outputs, polys, None)
}

/// A map's output (`linear`, at the input's level and the input scale times the weight scale)
/// relinearized when it has three polynomials, rescaled, and then what [`Then`] says.
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
    let y = ev.rescale_by(&linear, work.rescales())?;
    drop(linear);
    match work.then {
        Then::Nothing => Ok(y),
        Then::Square => square_relin_rescale(ev, &y),
        Then::LazySquare => ev.square(&y),
    }
}

/// x², relinearized while the scale is the product of two scales (key switching adds noise of
/// about 2^16 in the slots, which the rescale then divides away; relinearizing after the
/// rescale, or rescaling the three-polynomial product, whose rounding error is multiplied by
/// s², costs most of the precision), then rescaled.
pub(crate) fn square_relin_rescale(ev: &Evaluator, x: &Ciphertext) -> Result<Ciphertext> {
    ev.rescale(&ev.relinearize(&ev.square(x)?)?)
}

/// `v mod p` for an integer-valued `v` of any magnitude (None when not finite): an f64 is
/// exactly `± m · 2^e` with an integer `m < 2^53`.
fn integer_residue(v: f64, p: &Modulus) -> Option<u32> {
    if !v.is_finite() {
        return None;
    }
    let (m, e, sign) = num_traits::Float::integer_decode(v);
    // A negative exponent only shifts out zero bits: `v` is an integer.
    let r = if e < 0 {
        p.reduce_u64(m.checked_shr(e.unsigned_abs().into()).unwrap_or(0))
    } else {
        p.mul(p.reduce_u64(m), p.pow(2, e as u64))
    };
    Some(if sign < 0 { p.neg(r) } else { r })
}

#[cfg(test)]
mod tests {
    use super::integer_residue;
    use crate::math::Modulus;

    #[test]
    fn residues_of_large_integers_match_exact_arithmetic() {
        let p = 1_073_479_681u32; // a 30-bit prime
        let modulus = Modulus::new(p).unwrap();
        for &v in &[
            0.0,
            1.0,
            -1.0,
            12345.0,
            -(2f64.powi(52)) - 3.0,
            2f64.powi(72) * 1.5,
            -3.0 * 2f64.powi(70),
        ] {
            let exact = {
                // v is m · 2^e exactly: u128 arithmetic as the oracle.
                let (m, e) = if v.abs() < 2f64.powi(64) {
                    (v.abs() as u128, 0)
                } else {
                    ((v.abs() / 2f64.powi(60)) as u128, 60)
                };
                let r = ((m % u128::from(p)) * ((1u128 << e) % u128::from(p))) % u128::from(p);
                if v < 0.0 && r != 0 {
                    u128::from(p) - r
                } else {
                    r
                }
            };
            assert_eq!(integer_residue(v, &modulus), Some(exact as u32), "{v}");
        }
        assert_eq!(integer_residue(f64::NAN, &modulus), None);
        assert_eq!(integer_residue(f64::INFINITY, &modulus), None);
    }
}
