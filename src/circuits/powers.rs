//! The power basis u¹ … u^d of every ciphertext, with lazy relinearization of the top powers.
//!
//! u^i is u^h · u^(i−h) for h the largest power of two below i, so u^i is ⌈log2 i⌉ products
//! deep. A power that is an operand of a higher one (u², u⁴, … and the i − h that some
//! product needs) is relinearized and rescaled; every other power (a *leaf*: u^d always, and
//! for d = 8 the powers u⁵ … u⁸) is only ever weighed by the sparse map that follows, which is
//! linear in each polynomial, so it is left as three polynomials at the scale of its
//! operands' product: no key switch and no rescale. The map then relinearizes its outputs
//! only and rescales twice ([`InputForm::Lazy`](super::InputForm::Lazy)). For degree 8 that
//! is 3 key switches per value instead of 7, at the same total depth: the leaves end one
//! level higher, and the map's second rescale takes that level.
//!
//! In the power basis the polynomial's coefficients ride on the next map's weights, so they
//! cost no product and no level: the evaluation order is the one with the fewest key switches
//! a map can follow. Where the polynomial must be summed into one ciphertext first (the
//! latency packing), baby steps and giant steps in the Chebyshev basis
//! ([`PolynomialWork`](super::PolynomialWork)) are counted against this basis and its weighing,
//! and the cheaper runs.

use crate::ckks::{Ciphertext, Evaluator};
use crate::{Error, Result};

/// The powers u¹ … u^`degree` of each of `inputs` ciphertexts at `level` (two polynomials),
/// all at [`output_level`](Self::output_level) as three polynomials, value-major (value k's
/// u^i is ciphertext k·d + i − 1). Their scales differ (each product multiplies two scales,
/// each rescale divides by a prime near, not at, the scale): the output carries `scale`, and
/// the map that weighs power i multiplies its weights by `scale / s_i` so that its sums are
/// exact (see [`factors`](Self::factors)).
#[derive(Clone, Debug, PartialEq)]
pub struct PowersWork {
    pub inputs: usize,
    pub level: usize,
    pub degree: usize,
    /// The scale the output is labelled with.
    pub scale: f64,
}

/// Where and at what scale one power ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Power {
    pub level: usize,
    pub scale: f64,
    /// Left as three polynomials, not rescaled (a leaf).
    pub lazy: bool,
}

/// The two powers whose product is u^i (i ≥ 2).
fn operands(i: usize) -> (usize, usize) {
    let h = i.next_power_of_two() / 2;
    (h, i - h)
}

/// Whether u^i is an operand of some u^j, j ≤ degree.
fn is_operand(i: usize, degree: usize) -> bool {
    (2..=degree).any(|j| {
        let (a, b) = operands(j);
        a == i || b == i
    })
}

impl PowersWork {
    /// The level and scale of every power u¹ … u^d for an input at `(level, scale)`, as
    /// [`powers`] computes them (`q`: the ciphertext primes), before they are brought to
    /// the output level.
    pub fn trace(degree: usize, level: usize, scale: f64, q: &[u32]) -> Vec<Power> {
        let mut out = vec![Power {
            level,
            scale,
            lazy: false,
        }];
        for i in 2..=degree {
            let (h, g) = operands(i);
            let (a, b) = (out[h - 1], out[g - 1]);
            let at = a.level.min(b.level);
            let product = a.scale * b.scale;
            out.push(if is_operand(i, degree) {
                Power {
                    level: at - 1,
                    scale: product / f64::from(q[at]),
                    lazy: false,
                }
            } else {
                Power {
                    level: at,
                    scale: product,
                    lazy: true,
                }
            });
        }
        out
    }

    /// The level every power is brought to: the lowest any ends at.
    pub fn output_level(&self) -> usize {
        self.level - Self::depth(self.degree)
    }

    /// Levels the stage uses: ⌈log2 degree⌉ − 1 (the map after it takes one more).
    pub fn levels(&self) -> usize {
        Self::depth(self.degree)
    }

    /// Levels a power basis of `degree` takes before its map.
    pub fn depth(degree: usize) -> usize {
        (degree.next_power_of_two().trailing_zeros() as usize).saturating_sub(1)
    }

    /// Key switches per input value: one per power that is an operand of another.
    pub fn key_switches_per_value(degree: usize) -> usize {
        (2..=degree).filter(|&i| is_operand(i, degree)).count()
    }

    /// The factor the map multiplies power i's weights by (`scale / s_i`), for i = 1 … d.
    pub fn factors(&self, q: &[u32], input_scale: f64) -> Vec<f64> {
        Self::trace(self.degree, self.level, input_scale, q)
            .iter()
            .map(|p| self.scale / p.scale)
            .collect()
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
        if self.degree < 2 {
            return Err(Error::Config(format!(
                "a power basis of degree {}: 2 at least",
                self.degree
            )));
        }
        Ok(())
    }
}

/// u¹ … u^d of every ciphertext of `x` (see [`PowersWork`]), value-major, three polynomials
/// each at the stage's output level, labelled with `work.scale`.
pub fn powers(ev: &Evaluator, work: &PowersWork, x: &Ciphertext) -> Result<Ciphertext> {
    work.check_input(x)?;
    let d = work.degree;
    // higher[i - 2] is u^i.
    let mut higher: Vec<Ciphertext> = Vec::with_capacity(d - 1);
    for i in 2..=d {
        let (h, g) = operands(i);
        let power = |j: usize| if j == 1 { x } else { &higher[j - 2] };
        let (a, b) = (power(h), power(g));
        let at = a.level().min(b.level());
        let product = ev.mul(&ev.drop_level(a, at)?, &ev.drop_level(b, at)?)?;
        higher.push(if is_operand(i, d) {
            ev.rescale(&ev.relinearize(&product)?)?
        } else {
            product
        });
    }
    let last = work.output_level();
    let dropped = std::iter::once(x)
        .chain(&higher)
        .map(|c| ev.three_at(c, last))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_the_powers_no_product_reads() {
        let leaves = |d: usize| -> Vec<usize> { (2..=d).filter(|&i| !is_operand(i, d)).collect() };
        assert_eq!(leaves(2), [2]);
        assert_eq!(leaves(3), [3]);
        assert_eq!(leaves(4), [3, 4]);
        assert_eq!(leaves(8), [5, 6, 7, 8]);
        assert_eq!(PowersWork::key_switches_per_value(8), 3);
        assert_eq!(PowersWork::key_switches_per_value(3), 1);
        assert_eq!(PowersWork::key_switches_per_value(16), 7);
    }

    #[test]
    fn every_power_ends_at_or_above_the_output_level() {
        let q = vec![1u32 << 26; 20];
        for d in 2..=16 {
            let work = PowersWork {
                inputs: 1,
                level: 12,
                degree: d,
                scale: 1.0,
            };
            let trace = PowersWork::trace(d, 12, 2f64.powi(26), &q);
            let lowest = trace.iter().map(|p| p.level).min().unwrap();
            assert_eq!(lowest, work.output_level(), "degree {d}");
            assert!(trace[d - 1].lazy, "u^d is a leaf");
            // A power basis and its map take ⌈log2 d⌉ levels, as without lazy leaves.
            assert_eq!(
                work.levels() + 1,
                d.next_power_of_two().trailing_zeros() as usize
            );
        }
    }
}
