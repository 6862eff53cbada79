//! A layer plan, and the order of its intermediate outputs: outputs that read the same inputs (the channels of
//! a convolution at one position) placed next to each other, so a range of outputs holds whole
//! groups and the linear kernels sum each group as one tile (each input word read once for the
//! group, not once per output). The next linear map's columns follow the new order; squares and
//! powers in between work ciphertext by ciphertext, and the last map keeps its order (its
//! outputs are the results), as does a map a diagonal map follows.

use super::work::Work;
use crate::backend::SparseRows;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stages run in order on a tensor; `id` tells prepared weights of different plans apart.
#[derive(Debug)]
pub struct LayerPlan {
    pub(crate) id: u64,
    pub stages: Vec<Work>,
}

static NEXT_PLAN: AtomicU64 = AtomicU64::new(1);

impl LayerPlan {
    /// A plan of `stages`, with intermediate outputs reordered so that outputs reading the
    /// same inputs are neighbours (see `group_shared_inputs` below); the last linear map keeps its order.
    pub fn new(mut stages: Vec<Work>) -> Self {
        group_shared_inputs(&mut stages);
        Self {
            id: NEXT_PLAN.fetch_add(1, Ordering::Relaxed),
            stages,
        }
    }
}

/// Reorders the outputs of every linear stage that another linear stage follows.
pub(crate) fn group_shared_inputs(stages: &mut [Work]) {
    let linear: Vec<usize> = stages
        .iter()
        .enumerate()
        .filter(|(_, w)| matches!(w, Work::Linear(_)))
        .map(|(i, _)| i)
        .collect();
    for pair in linear.windows(2) {
        // A powers stage in between makes value k's powers columns k·d … k·d + d − 1; a
        // diagonal map in between moves values between slots, so its input keeps its order.
        let d = match &stages[pair[0] + 1..pair[1]] {
            [Work::Powers(p)] => p.degree,
            between if between.iter().any(|w| matches!(w, Work::Diagonal(_))) => continue,
            _ => 1,
        };
        let Work::Linear(w) = &mut stages[pair[0]] else {
            unreachable!("a linear stage")
        };
        let order = grouped_order(&w.rows);
        w.rows = permute_rows(&w.rows, &order);
        let mut position = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let Work::Linear(next) = &mut stages[pair[1]] else {
            unreachable!("a linear stage")
        };
        for c in &mut next.rows.columns {
            *c = position[*c / d] * d + *c % d;
        }
    }
}

/// The outputs in groups of equal columns, groups in the order of their first output, each in
/// output order.
fn grouped_order(rows: &SparseRows) -> Vec<usize> {
    let columns = |j: usize| &rows.columns[rows.offsets[j]..rows.offsets[j + 1]];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<&[usize], usize> = HashMap::new();
    for j in 0..rows.outputs() {
        let g = *index.entry(columns(j)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(j);
    }
    groups.concat()
}

/// Row `order[i]` of `rows` as row `i`.
fn permute_rows(rows: &SparseRows, order: &[usize]) -> SparseRows {
    let limbs = rows.words.len() / rows.columns.len().max(1);
    let bias_limbs = rows.bias.len() / rows.outputs().max(1);
    let mut out = SparseRows {
        offsets: vec![0],
        columns: Vec::with_capacity(rows.columns.len()),
        words: Vec::with_capacity(rows.words.len()),
        bias: Vec::with_capacity(rows.bias.len()),
    };
    for &j in order {
        let entries = rows.offsets[j]..rows.offsets[j + 1];
        out.columns
            .extend_from_slice(&rows.columns[entries.clone()]);
        out.words
            .extend_from_slice(&rows.words[entries.start * limbs..entries.end * limbs]);
        out.bias
            .extend_from_slice(&rows.bias[j * bias_limbs..(j + 1) * bias_limbs]);
        out.offsets.push(out.columns.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::circuits::{InputForm, LinearWork, Then};

    fn work(rows: SparseRows, inputs: usize) -> Work {
        Work::Linear(LinearWork {
            rows,
            inputs,
            level: 1,
            input: InputForm::Relinearized,
            weight_scale: 1.0,
            then: Then::Square,
        })
    }

    /// Output j reads `cols[j]`, with weight 10·j + e per entry, bias 100 + j (one limb).
    fn rows(cols: &[&[usize]]) -> SparseRows {
        let mut r = SparseRows {
            offsets: vec![0],
            ..Default::default()
        };
        for (j, c) in cols.iter().enumerate() {
            for (e, &k) in c.iter().enumerate() {
                r.columns.push(k);
                r.words.push((10 * j + e) as u32);
            }
            r.bias.push(100 + j as u32);
            r.offsets.push(r.columns.len());
        }
        r
    }

    #[test]
    fn channels_at_one_position_become_neighbours_and_the_next_map_follows() {
        // Two channels over three positions, channel-major: outputs 0..3 and 3..6 read the
        // same windows.
        let first = rows(&[&[0, 1], &[1, 2], &[2, 3], &[0, 1], &[1, 2], &[2, 3]]);
        let next = rows(&[&[0, 3, 5], &[4]]);
        let mut stages = vec![work(first, 4), Work::Square, work(next.clone(), 6)];
        group_shared_inputs(&mut stages);
        let (Work::Linear(a), Work::Linear(b)) = (&stages[0], &stages[2]) else {
            panic!()
        };
        // New order: old 0, 3, 1, 4, 2, 5.
        assert_eq!(a.rows.columns, vec![0, 1, 0, 1, 1, 2, 1, 2, 2, 3, 2, 3]);
        assert_eq!(
            a.rows.words,
            vec![0, 1, 30, 31, 10, 11, 40, 41, 20, 21, 50, 51]
        );
        assert_eq!(a.rows.bias, vec![100, 103, 101, 104, 102, 105]);
        // Old inputs 0, 3, 5, 4 are now 0, 1, 5, 3; the last map keeps its own order.
        assert_eq!(b.rows.columns, vec![0, 1, 5, 3]);
        assert_eq!((&b.rows.words, &b.rows.bias), (&next.words, &next.bias));
    }
}
