//! How each linear stage is laid out in slots. Every scheme names the outputs' slots, a fold
//! and the rotations to try; [`SlotLinear::compile`] places the weights and checks that they
//! all found a place. The planner keeps the scheme with the fewest key switches.
//!
//! - **Convolution representation** (first stage, LoLa's): rows that read the same inputs
//!   (a convolution's maps at one position) form a group; the client puts the k-th input of
//!   each group in block k, so the k-th weights of all groups are one diagonal. No rotation
//!   inside a block: a rotation by whole blocks lines block k up with the row's output.
//! - **Blocks** (dense layers on a clean, compact input): the input is replicated with period
//!   L; output o owns a block of B slots that the fold sums; rotations by multiples of B bring
//!   every input to one of o's slots. L·M/S diagonals and log2(B) fold steps.
//! - **Lanes** (dense layers on an input spread at stride σ, as blocks leave it): output o sums
//!   lane o of every stride; rotations by −o; the fold adds the strides.
//! - **Any** (fallback): outputs in consecutive slots, one diagonal per distinct distance.

use super::layout::Layout;
use super::placement::{Placement, SlotLinear};
use crate::Result;
use crate::nn::layer::LinearRow;
use std::collections::HashMap;

/// A scheme tries at most this many rotations (and makes at most this many diagonals): past
/// it, a layer is better refused than run at hundreds of key switches per image.
const MOST_DIAGONALS: usize = 256;
/// The client sends at most this many ciphertexts per image for the first stage.
const CLIENT_CIPHERTEXTS: usize = 4;

/// A scheme's estimated cost: key switches, plus plaintext products at an eighth of one.
pub(crate) fn cost(lin: &SlotLinear, client_ciphertexts: usize) -> f64 {
    lin.map.key_switches() as f64
        + lin.map.products() as f64 / 8.0
        + 2.0 * client_ciphertexts as f64
}

/// The first stage: the client's layouts and the stage, for each scheme that applies, with
/// `share` images per ciphertext.
pub(crate) fn first_stage(
    rows: &[LinearRow],
    inputs: usize,
    slots: usize,
    share: usize,
) -> Result<Vec<(Vec<Layout>, SlotLinear)>> {
    let mut out = Vec::new();
    if let Some(found) = convolution(rows, slots, CLIENT_CIPHERTEXTS * share)? {
        out.push(found);
    }
    // The client can replicate a compact input itself.
    let period = inputs.next_power_of_two();
    if period <= slots {
        let mut compact = Layout::empty(slots, true);
        for j in 0..inputs {
            compact.place(j, j);
        }
        let replicated = compact.repeated(period);
        if let Some(lin) = blocks(rows, &replicated, false)? {
            out.push((vec![replicated], lin));
        }
    }
    Ok(out)
}

/// A later stage on `input`: each scheme that applies.
pub(crate) fn next_stage(
    rows: &[LinearRow],
    input: &Layout,
    inputs: usize,
) -> Result<Vec<SlotLinear>> {
    let mut out = Vec::new();
    for lin in [
        blocks(rows, input, true)?,
        lanes(rows, input, inputs)?,
        any(rows, input, inputs)?,
    ]
    .into_iter()
    .flatten()
    {
        out.push(lin);
    }
    Ok(out)
}

/// LoLa's convolution representation (see the module notes), in at most `most_ciphertexts`
/// client ciphertexts.
fn convolution(
    rows: &[LinearRow],
    slots: usize,
    most_ciphertexts: usize,
) -> Result<Option<(Vec<Layout>, SlotLinear)>> {
    let mut index: HashMap<Vec<usize>, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut member: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
    let mut members: Vec<usize> = Vec::new();
    for (_, terms) in rows {
        let reads: Vec<usize> = terms
            .iter()
            .filter(|(_, w)| *w != 0.0)
            .map(|&(j, _)| j)
            .collect();
        let g = *index.entry(reads.clone()).or_insert_with(|| {
            groups.push(reads);
            members.push(0);
            groups.len() - 1
        });
        member.push((g, members[g]));
        members[g] += 1;
    }
    let g_count = groups.len();
    let most = members.iter().copied().max().unwrap_or(0);
    let reads = groups.iter().map(Vec::len).max().unwrap_or(0);
    if g_count == 0 || most * g_count > slots || reads == 0 {
        return Ok(None);
    }
    let per_ct = slots / g_count;
    let ciphertexts = reads.div_ceil(per_ct);
    if ciphertexts > most_ciphertexts {
        return Ok(None);
    }
    let per = reads.div_ceil(ciphertexts);
    // Rotations by whole blocks, k − i for k < per and i < most, in each ciphertext.
    if ciphertexts * (per + most - 1) > MOST_DIAGONALS {
        return Ok(None);
    }
    let mut layouts = vec![Layout::empty(slots, true); ciphertexts];
    for (g, list) in groups.iter().enumerate() {
        for (k, &j) in list.iter().enumerate() {
            layouts[k / per].place((k % per) * g_count + g, j);
        }
    }
    let homes = member.iter().map(|&(g, i)| i * g_count + g).collect();
    let gc = g_count as i64;
    let candidates = (0..ciphertexts)
        .flat_map(|c| {
            (0..per as i64).flat_map(move |k| (0..most as i64).map(move |i| (c, gc * (k - i))))
        })
        .collect();
    let lin = SlotLinear::compile(Placement {
        rows,
        inputs: &layouts,
        homes,
        fold: vec![],
        replicate: vec![],
        candidates,
        rotate_inputs: false,
    })?;
    Ok(Some((layouts, lin)))
}

/// Dense layers on a clean input whose values sit below a power of two L in each period
/// (see the module notes).
fn blocks(rows: &[LinearRow], input: &Layout, rotate_inputs: bool) -> Result<Option<SlotLinear>> {
    let s = input.slots();
    let period = input.period();
    let length = input.span(period).next_power_of_two();
    let outputs = rows.len().next_power_of_two();
    if !input.clean || length > period || outputs > s {
        return Ok(None);
    }
    // x ← x + rot(x, −m) for m = L, 2L, … up to the period fills the gaps.
    let mut replicate = Vec::new();
    let mut m = length;
    while m < period {
        replicate.push(-(m as i64));
        m *= 2;
    }
    let replicated = input.repeated(length);
    let block = (s / outputs).min(length);
    if length / block > MOST_DIAGONALS {
        return Ok(None);
    }
    let fold = halvings(block, 1);
    let candidates = (0..(length / block) as i64)
        .map(|i| (0, i * block as i64))
        .collect();
    let lin = SlotLinear::compile(Placement {
        rows,
        inputs: std::slice::from_ref(&replicated),
        homes: (0..rows.len()).map(|o| o * block).collect(),
        fold,
        replicate,
        candidates,
        rotate_inputs,
    })?;
    Ok(Some(lin))
}

/// Dense layers on `inputs` values at slots `a + σ·j` (see the module notes). With more
/// outputs than σ, each output takes c lanes (c a power of two) and sums c·σ-strides.
fn lanes(rows: &[LinearRow], input: &Layout, inputs: usize) -> Result<Option<SlotLinear>> {
    let s = input.slots();
    let homes = input.homes(inputs)?;
    if inputs < 2 {
        return Ok(None);
    }
    let (a, stride) = (homes[0], homes[1].wrapping_sub(homes[0]));
    if stride == 0 || homes.iter().enumerate().any(|(j, &h)| h != a + stride * j) {
        return Ok(None);
    }
    let padded = inputs.next_power_of_two();
    let lanes = rows.len().div_ceil(stride).next_power_of_two();
    if stride * padded > s || lanes > padded || lanes * rows.len() > MOST_DIAGONALS {
        return Ok(None);
    }
    let fold = halvings(stride * padded, stride * lanes);
    let candidates = (0..lanes as i64)
        .flat_map(|k| (0..rows.len() as i64).map(move |o| (0, a as i64 + stride as i64 * k - o)))
        .collect();
    let lin = SlotLinear::compile(Placement {
        rows,
        inputs: std::slice::from_ref(input),
        homes: (0..rows.len()).collect(),
        fold,
        replicate: vec![],
        candidates,
        rotate_inputs: true,
    })?;
    Ok(Some(lin))
}

/// Outputs in consecutive slots, one diagonal per distance from an input's slot to an
/// output's; none when that passes [`MOST_DIAGONALS`].
fn any(rows: &[LinearRow], input: &Layout, inputs: usize) -> Result<Option<SlotLinear>> {
    let s = input.slots();
    if rows.len() > s {
        return Ok(None);
    }
    let homes = input.homes(inputs)?;
    let mut distances: Vec<i64> = rows
        .iter()
        .enumerate()
        .flat_map(|(o, (_, terms))| {
            let homes = &homes;
            terms
                .iter()
                .map(move |&(j, _)| (homes[j] as i64 - o as i64).rem_euclid(s as i64))
        })
        .collect();
    distances.sort_unstable();
    distances.dedup();
    if distances.len() > MOST_DIAGONALS {
        return Ok(None);
    }
    let lin = SlotLinear::compile(Placement {
        rows,
        inputs: std::slice::from_ref(input),
        homes: (0..rows.len()).collect(),
        fold: vec![],
        replicate: vec![],
        candidates: distances.into_iter().map(|d| (0, d)).collect(),
        rotate_inputs: true,
    })?;
    Ok(Some(lin))
}

/// The fold steps `from/2, from/4, …, down to` (sums `from/down` slots `down` apart).
fn halvings(from: usize, down: usize) -> Vec<i64> {
    let mut steps = Vec::new();
    let mut f = from / 2;
    while f >= down && f > 0 {
        steps.push(f as i64);
        f /= 2;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::halvings;

    #[test]
    fn halvings_fold_down_to_the_stride() {
        assert_eq!(halvings(32, 1), [16, 8, 4, 2, 1]);
        assert_eq!(halvings(4096, 32), [2048, 1024, 512, 256, 128, 64, 32]);
        assert!(halvings(1, 1).is_empty());
    }
}
