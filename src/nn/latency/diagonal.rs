//! A linear map between slot layouts as plaintext diagonals times rotations of the inputs
//! (the diagonal method, generalised to any layouts), in baby-step/giant-step form:
//!
//! `y = fold( Σ_g rot( Σ_{c,b} d_{c,b,g} ⊙ rot(x_c, b), g ) ) + bias`
//!
//! where each input `x_c` is rotated by its baby steps `b` from one decomposition (hoisted), the
//! giant rotations `g` act on sums, and the fold `y ← y + rot(y, f)` adds partial sums that sit
//! in different slots. A weight `w` of output `o` and input `j` goes to a slot `t` that the fold
//! sums into `o`'s slot, in the diagonal of a rotation `r` that brings a slot holding `j` to `t`.

use super::layout::{Layout, add_to, fold_offsets, rotate};
use crate::nn::model::LinearRow;
use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One product of a giant step: input `input`, rotated by its baby step `baby` (an index into
/// [`SlotLinear::baby`]), times `diagonal` (already rotated by minus the giant step).
#[derive(Clone, Debug)]
pub(crate) struct Term {
    pub input: usize,
    pub baby: usize,
    pub diagonal: Vec<f64>,
}

/// A giant step and the products summed before it.
#[derive(Clone, Debug)]
pub(crate) struct Giant {
    pub step: i64,
    pub terms: Vec<Term>,
}

/// A linear stage in slots.
#[derive(Clone, Debug)]
pub struct SlotLinear {
    /// `x ← x + rot(x, r)` on the (single) input first: replication.
    pub(crate) replicate: Vec<i64>,
    /// Baby steps of each input.
    pub(crate) baby: Vec<Vec<i64>>,
    pub(crate) giants: Vec<Giant>,
    pub(crate) fold: Vec<i64>,
    /// Added after the fold, in every slot that holds an output.
    pub(crate) bias: Vec<f64>,
    pub(crate) output: Layout,
}

/// What [`SlotLinear::compile`] places: the rows, the inputs' layouts (after replication), and
/// the outputs' slots.
pub(crate) struct Placement<'a> {
    pub rows: &'a [LinearRow],
    pub inputs: &'a [Layout],
    /// The slot each output ends in.
    pub homes: Vec<usize>,
    pub fold: Vec<i64>,
    pub replicate: Vec<i64>,
    /// Rotations `(input, step)` to try, in order; each weight goes to the first that can hold it.
    pub candidates: Vec<(usize, i64)>,
    /// Whether inputs may be rotated (hoisted baby steps). Each rotation adds key-switching
    /// noise of about 2^-10 at scale 2^24 with one special prime; rotations of products, before
    /// the rescale, add 2^24 times less. Inputs of small magnitude (the client's pixels) are
    /// better not rotated.
    pub rotate_inputs: bool,
}

fn internal(why: impl std::fmt::Display) -> Error {
    Error::Config(format!("latency plan: {why}"))
}

impl SlotLinear {
    /// Places every weight of `p.rows` in a diagonal, then groups the diagonals into baby and
    /// giant steps. An error when the candidates cannot hold some weight.
    pub(crate) fn compile(p: Placement<'_>) -> Result<Self> {
        let s = p
            .inputs
            .first()
            .ok_or_else(|| internal("no input"))?
            .slots();
        let offsets =
            fold_offsets(&p.fold, s).ok_or_else(|| internal("a fold sums a slot twice"))?;
        // owner[t]: the output whose slot the fold sums slot t into.
        let mut owner = vec![u32::MAX; s];
        for (o, &h) in p.homes.iter().enumerate() {
            for &f in &offsets {
                let t = (h + f) % s;
                if owner[t] != u32::MAX {
                    return Err(internal(format!(
                        "outputs {} and {o} share slot {t}",
                        owner[t]
                    )));
                }
                owner[t] = o as u32;
            }
        }
        let mut need: Vec<HashMap<u32, f32>> = p
            .rows
            .iter()
            .map(|(_, terms)| {
                terms
                    .iter()
                    .filter(|(_, w)| *w != 0.0)
                    .map(|&(j, w)| (j as u32, w))
                    .collect()
            })
            .collect();
        let mut diagonals: Vec<((usize, i64), Vec<f64>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for &(c, r) in &p.candidates {
            let r = r.rem_euclid(s as i64);
            if !seen.insert((c, r)) {
                continue;
            }
            let input = &p.inputs[c];
            let mut d: Option<Vec<f64>> = None;
            for (t, &o) in owner.iter().enumerate() {
                if o == u32::MAX {
                    continue;
                }
                let Some(j) = input.at[(t + r as usize) % s] else {
                    continue;
                };
                if let Some(w) = need[o as usize].remove(&j) {
                    d.get_or_insert_with(|| vec![0.0; s])[t] = f64::from(w);
                }
            }
            if let Some(d) = d {
                // Signed, so that small negative steps group with small positive ones.
                let signed = if r > s as i64 / 2 { r - s as i64 } else { r };
                diagonals.push(((c, signed), d));
            }
        }
        let missing: usize = need.iter().map(HashMap::len).sum();
        if missing > 0 {
            return Err(Error::Config(format!(
                "the latency packing cannot place {missing} weights of a {}-output layer \
                 with the rotations of its layout",
                p.rows.len()
            )));
        }
        let output = output_layout(&owner, &offsets, &p.homes, s);
        let mut bias = vec![0.0; s];
        for (t, v) in output.at.iter().enumerate() {
            if let Some(o) = v {
                bias[t] = f64::from(p.rows[*o as usize].0);
            }
        }
        let (baby, giants) = baby_giant(diagonals, p.inputs.len(), s, p.rotate_inputs);
        Ok(Self {
            replicate: p.replicate,
            baby,
            giants,
            fold: p.fold,
            bias,
            output,
        })
    }

    /// Every rotation step it makes (none of them 0), for the Galois keys.
    pub(crate) fn rotations(&self) -> BTreeSet<i64> {
        let giants = self.giants.iter().map(|g| g.step);
        let all = self.replicate.iter().copied();
        all.chain(self.baby.iter().flatten().copied())
            .chain(giants)
            .chain(self.fold.iter().copied())
            .filter(|&r| r != 0)
            .collect()
    }

    /// Key switches per evaluation: one per rotation made.
    pub(crate) fn key_switches(&self) -> usize {
        let nonzero = |v: &mut dyn Iterator<Item = i64>| v.filter(|&r| r != 0).count();
        nonzero(&mut self.replicate.iter().copied())
            + nonzero(&mut self.baby.iter().flatten().copied())
            + nonzero(&mut self.giants.iter().map(|g| g.step))
            + nonzero(&mut self.fold.iter().copied())
    }

    /// Plaintext products per evaluation.
    pub(crate) fn products(&self) -> usize {
        self.giants.iter().map(|g| g.terms.len()).sum()
    }

    /// The map on plaintext slot vectors: what the encrypted evaluation computes, without
    /// noise; the oracle plans are tested with. Also returns the largest magnitude any slot
    /// takes on the way (partial sums included), which the scales must leave room for.
    pub(crate) fn apply_plain(&self, inputs: &[Vec<f64>]) -> (Vec<f64>, f64) {
        let mut peak = 0.0f64;
        let mut watch = |v: &[f64]| {
            peak = v.iter().fold(peak, |m, x| m.max(x.abs()));
        };
        let mut inputs = inputs.to_vec();
        for &r in &self.replicate {
            let moved = rotate(&inputs[0], r);
            add_to(&mut inputs[0], &moved);
        }
        let rotated: Vec<Vec<Vec<f64>>> = inputs
            .iter()
            .zip(&self.baby)
            .map(|(x, steps)| steps.iter().map(|&b| rotate(x, b)).collect())
            .collect();
        let s = inputs[0].len();
        let mut y = vec![0.0; s];
        for g in &self.giants {
            let mut acc = vec![0.0; s];
            for t in &g.terms {
                let x = &rotated[t.input][t.baby];
                for ((a, d), v) in acc.iter_mut().zip(&t.diagonal).zip(x) {
                    *a += d * v;
                }
            }
            watch(&acc);
            add_to(&mut y, &rotate(&acc, g.step));
        }
        for &f in &self.fold {
            watch(&y);
            let moved = rotate(&y, f);
            add_to(&mut y, &moved);
        }
        add_to(&mut y, &self.bias);
        watch(&y);
        (y, peak)
    }
}

/// What each slot holds after the fold: output `o` where the fold sums exactly `o`'s slots;
/// clean when no slot sums a part of some output's slots.
fn output_layout(owner: &[u32], offsets: &[usize], homes: &[usize], s: usize) -> Layout {
    let mut out = Layout::empty(s, true);
    let size = offsets.len();
    for t in 0..s {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for &f in offsets {
            let o = owner[(t + f) % s];
            if o != u32::MAX {
                *counts.entry(o).or_default() += 1;
            }
        }
        match counts.len() {
            0 => {}
            1 if counts.values().all(|&c| c == size) => {
                out.place(t, *counts.keys().next().expect("one") as usize)
            }
            _ => out.clean = false,
        }
    }
    // The homes hold their outputs by construction; the loop above found them.
    debug_assert!(homes.iter().all(|&h| out.at[h].is_some()));
    out
}

/// Splits each rotation `r` (a multiple of the common stride δ) into a giant step
/// `δ·n1·⌊r/(δ·n1)⌋` and a baby step `r − giant` in `[0, δ·n1)`, with the `n1` that makes the
/// fewest rotations (babies of every input plus giants); without `rotate_inputs`, every
/// rotation is a giant step.
fn baby_giant(
    diagonals: Vec<((usize, i64), Vec<f64>)>,
    inputs: usize,
    s: usize,
    rotate_inputs: bool,
) -> (Vec<Vec<i64>>, Vec<Giant>) {
    let stride = diagonals
        .iter()
        .fold(0i64, |g, ((_, r), _)| gcd(g, r.abs()))
        .max(1);
    let split = |r: i64, n1: i64| {
        let giant = stride * n1 * (r / stride).div_euclid(n1);
        (giant, r - giant)
    };
    let cost = |n1: i64| {
        let mut babies = BTreeSet::new();
        let mut giants = BTreeSet::new();
        for ((c, r), _) in &diagonals {
            let (g, b) = split(*r, n1);
            if b != 0 {
                babies.insert((*c, b));
            }
            if g != 0 {
                giants.insert(g);
            }
        }
        babies.len() + giants.len()
    };
    let most = if rotate_inputs {
        (s as i64 / stride).max(1)
    } else {
        1
    };
    let n1 = (1..=most.min(256))
        .min_by_key(|&n1| (cost(n1), n1))
        .unwrap_or(1);
    let mut baby: Vec<Vec<i64>> = vec![Vec::new(); inputs];
    let mut giants: BTreeMap<i64, Vec<Term>> = BTreeMap::new();
    for ((c, r), d) in diagonals {
        let (g, b) = split(r, n1);
        let index = match baby[c].iter().position(|&x| x == b) {
            Some(i) => i,
            None => {
                baby[c].push(b);
                baby[c].len() - 1
            }
        };
        giants.entry(g).or_default().push(Term {
            input: c,
            baby: index,
            diagonal: rotate(&d, -g),
        });
    }
    let giants = giants
        .into_iter()
        .map(|(step, terms)| Giant { step, terms })
        .collect();
    (baby, giants)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random dense 5×12 map on a replicated 16-slot input of 12 values, compiled with the
    /// block scheme, equals the matrix product (f64 oracle).
    #[test]
    fn a_compiled_map_equals_the_matrix_product() {
        let s = 64;
        let (n, m) = (12usize, 5usize);
        let rows: Vec<LinearRow> = (0..m)
            .map(|o| {
                let terms = (0..n)
                    .map(|j| (j, ((o * 7 + j * 3) % 11) as f32 - 5.0))
                    .collect();
                (o as f32 * 0.5, terms)
            })
            .collect();
        let mut base = Layout::empty(s, true);
        for j in 0..n {
            base.place(j, j);
        }
        let input = base.repeated(16);
        // 8 outputs' blocks of 8 slots; rotations by multiples of 8 bring the 16 values.
        let p = Placement {
            rows: &rows,
            inputs: std::slice::from_ref(&input),
            homes: (0..m).map(|o| 8 * o).collect(),
            fold: vec![4, 2, 1],
            replicate: vec![],
            candidates: vec![(0, 0), (0, 8)],
            rotate_inputs: true,
        };
        let lin = SlotLinear::compile(p).unwrap();
        let x: Vec<f32> = (0..n).map(|j| (j as f32 * 0.37).sin()).collect();
        let (y, _) = lin.apply_plain(&[input.fill(&x)]);
        for (o, (b, terms)) in rows.iter().enumerate() {
            let want: f64 = f64::from(*b)
                + terms
                    .iter()
                    .map(|&(j, w)| f64::from(w) * f64::from(x[j]))
                    .sum::<f64>();
            assert!(
                (y[8 * o] - want).abs() < 1e-9,
                "{o}: {} vs {want}",
                y[8 * o]
            );
        }
        assert!(!lin.output.clean);
        assert_eq!(lin.output.homes(m).unwrap(), [0, 8, 16, 24, 32]);
    }

    #[test]
    fn weights_no_rotation_reaches_are_an_error() {
        let rows: Vec<LinearRow> = vec![(0.0, vec![(0, 1.0), (1, 2.0)])];
        let mut input = Layout::empty(8, true);
        input.place(0, 0);
        input.place(5, 1);
        let p = Placement {
            rows: &rows,
            inputs: std::slice::from_ref(&input),
            homes: vec![0],
            fold: vec![],
            replicate: vec![],
            candidates: vec![(0, 0), (0, 1)],
            rotate_inputs: true,
        };
        let e = SlotLinear::compile(p).unwrap_err().to_string();
        assert!(e.contains("cannot place 1 weights"), "{e}");
    }

    #[test]
    fn baby_and_giant_steps_cover_each_rotation_once() {
        let d = |r: i64| ((0usize, r), vec![1.0; 64]);
        let (baby, giants) = baby_giant((-4..13).map(|u| d(3 * u)).collect(), 1, 64, true);
        // 17 rotations by multiples of 3 in about 2·√17 key switches.
        let made = baby[0].iter().filter(|&&b| b != 0).count()
            + giants.iter().filter(|g| g.step != 0).count();
        assert!(made <= 8, "{made}: {baby:?}");
        let babies = &baby[0];
        let mut covered: Vec<i64> = giants
            .iter()
            .flat_map(|g| g.terms.iter().map(move |t| g.step + babies[t.baby]))
            .collect();
        covered.sort_unstable();
        assert_eq!(covered, (-4..13).map(|u| 3 * u).collect::<Vec<_>>());
    }
}
