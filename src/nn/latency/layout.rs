//! Slot layouts of the latency packing: which value of a vector each slot of one ciphertext
//! holds, and the slot arithmetic (rotations, folds) the plans are checked with.

use crate::{Error, Result};

/// Where a vector's values sit in the slots of one ciphertext. A value may sit in several slots
/// (replicas).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The value each slot holds (`None`: no value).
    pub(crate) at: Vec<Option<u32>>,
    /// Whether the slots without a value hold zeros (up to CKKS noise). A partial fold leaves
    /// partial sums there instead.
    pub(crate) clean: bool,
}

impl Layout {
    /// `slots` slots holding nothing.
    pub(crate) fn empty(slots: usize, clean: bool) -> Self {
        Self {
            at: vec![None; slots],
            clean,
        }
    }

    /// Slots of the ciphertext.
    pub fn slots(&self) -> usize {
        self.at.len()
    }

    /// Puts value `value` in slot `slot`.
    pub(crate) fn place(&mut self, slot: usize, value: usize) {
        self.at[slot] = Some(value as u32);
    }

    /// The first slot of each of the `values` values; an error names a value no slot holds.
    pub(crate) fn homes(&self, values: usize) -> Result<Vec<usize>> {
        let mut homes = vec![usize::MAX; values];
        for (t, v) in self.at.iter().enumerate().rev() {
            if let Some(h) = v.and_then(|v| homes.get_mut(v as usize)) {
                *h = t;
            }
        }
        match homes.iter().position(|&h| h == usize::MAX) {
            Some(v) => Err(Error::Internal(format!(
                "latency plan: value {v} of {values} has no slot"
            ))),
            None => Ok(homes),
        }
    }

    /// The slot vector holding `x` where this layout says (zero elsewhere).
    pub(crate) fn fill(&self, x: &[f32]) -> Vec<f64> {
        self.at
            .iter()
            .map(|v| v.map_or(0.0, |v| f64::from(x[v as usize])))
            .collect()
    }

    /// The smallest power of two `p` with `at[t] == at[t mod p]` for every slot.
    pub(crate) fn period(&self) -> usize {
        let s = self.slots();
        let mut p = 1;
        while p < s && !(0..s).all(|t| self.at[t] == self.at[t % p]) {
            p *= 2;
        }
        p
    }

    /// One past the last of the first `within` slots that holds a value (0: none).
    pub(crate) fn span(&self, within: usize) -> usize {
        self.at[..within]
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |t| t + 1)
    }

    /// The values of the first `period` slots repeated over all slots.
    pub(crate) fn repeated(&self, period: usize) -> Self {
        Self {
            at: (0..self.slots()).map(|t| self.at[t % period]).collect(),
            clean: self.clean,
        }
    }
}

/// The offsets a fold by `steps` sums into one slot (`y ← y + rot(y, f)` for each `f`: slot t
/// ends with the sum over `t + φ`), or `None` when two coincide modulo `slots`.
pub(crate) fn fold_offsets(steps: &[i64], slots: usize) -> Option<Vec<usize>> {
    let mut offsets = vec![0usize];
    for &f in steps {
        let f = f.rem_euclid(slots as i64) as usize;
        let more: Vec<usize> = offsets.iter().map(|&o| (o + f) % slots).collect();
        offsets.extend(more);
    }
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == offsets.len()).then_some(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_sum_distinct_offsets_only() {
        assert_eq!(fold_offsets(&[2, 1], 8), Some(vec![0, 2, 1, 3]));
        assert_eq!(fold_offsets(&[4, 4], 8), None);
        assert_eq!(fold_offsets(&[], 8), Some(vec![0]));
    }

    #[test]
    fn period_span_and_homes() {
        let mut l = Layout::empty(8, true);
        l.place(1, 0);
        l.place(5, 0);
        assert_eq!(l.period(), 4);
        assert_eq!(l.span(4), 2);
        assert_eq!(l.homes(1).unwrap(), [1]);
        assert!(l.homes(2).is_err());
        assert_eq!(l.repeated(2).at[3], Some(0));
        assert_eq!(Layout::empty(8, true).period(), 1);
    }
}
