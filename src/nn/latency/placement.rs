//! Where each weight of a linear stage goes: a weight `w` of output `o` and input `j` goes to a
//! slot `t` that the fold sums into `o`'s slot, in the diagonal of a rotation `r` that brings
//! a slot holding `j` to `t`. The diagonals then form a [`DiagonalMap`] (the algorithm, in
//! `circuits`), and the fold tells what each slot holds afterwards (the output [`Layout`]).

use super::layout::{Layout, fold_offsets};
use crate::circuits::{DiagonalMap, Steps};
use crate::nn::layer::LinearRow;
use crate::{Error, PlanError, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A linear stage in slots: the diagonal map and what each slot holds after it.
#[derive(Clone, Debug)]
pub struct SlotLinear {
    pub(crate) map: Arc<DiagonalMap>,
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
    Error::Internal(format!("latency plan: {why}"))
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
            return Err(Error::Plan(PlanError::Unsupported(format!(
                "the latency packing cannot place {missing} weights of a {}-output layer \
                 with the rotations of its layout",
                p.rows.len()
            ))));
        }
        let output = output_layout(&owner, &offsets, &p.homes, s);
        let mut bias = vec![0.0; s];
        for (t, v) in output.at.iter().enumerate() {
            if let Some(o) = v {
                bias[t] = f64::from(p.rows[*o as usize].0);
            }
        }
        let steps = Steps {
            replicate: p.replicate,
            fold: p.fold,
            bias,
            rotate_inputs: p.rotate_inputs,
        };
        Ok(Self {
            map: Arc::new(DiagonalMap::new(diagonals, p.inputs.len(), s, steps)),
            output,
        })
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
        let (y, _) = lin.map.apply_plain(&[input.fill(&x)]);
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
}
