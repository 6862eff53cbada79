//! Sparse linear layers (convolutions, pooling, padding): each output is a weighted sum of a
//! few inputs, given in compressed-row form, so the cost follows the terms, not J × K.

use super::device_data::DeviceData;
use crate::math::Ring;
use crate::{Error, Result};
use std::sync::Arc;

/// The terms of a sparse affine layer in compressed-row form: output `j` is
/// `bias[j] + Σ_{e ∈ offsets[j]..offsets[j+1]} words[e] · x[columns[e]]`, where `words[e]` holds
/// one reduced word per limb (`[entry][limb]`) and `bias` is either empty (no constant) or one
/// reduced word per output and limb (`[output][limb]`), added to every coefficient of that limb.
/// In the NTT domain that is the constant polynomial `bias`; a caller working on coefficients
/// puts the constant in a column of ones instead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseRows {
    pub offsets: Vec<usize>,
    pub columns: Vec<usize>,
    pub words: Vec<u32>,
    pub bias: Vec<u32>,
}

/// A sparse layer prepared on one device.
pub struct SparseWeights {
    pub(crate) ring: Arc<Ring>,
    pub(crate) outputs: usize,
    pub(crate) inputs: usize,
    pub(crate) data: SparseStorage,
}

pub(crate) enum SparseStorage {
    Host {
        rows: SparseRows,
    },
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Device(DeviceData),
}

impl SparseWeights {
    /// `rows`, checked against `ring` and `inputs`, prepared as `data` by `prepare`.
    pub(crate) fn prepare(
        ring: &Arc<Ring>,
        inputs: usize,
        rows: &SparseRows,
        prepare: impl FnOnce() -> Result<SparseStorage>,
    ) -> Result<Self> {
        rows.check(ring, inputs)?;
        Ok(Self {
            ring: ring.clone(),
            outputs: rows.outputs(),
            inputs,
            data: prepare()?,
        })
    }

    /// Number of outputs J.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Number of inputs K.
    pub fn inputs(&self) -> usize {
        self.inputs
    }
}

impl SparseRows {
    /// The rows of a dense matrix `words` (`[j][k][limb]`, which is `[entry][limb]` of rows that
    /// read every input), with no bias.
    pub(crate) fn dense(outputs: usize, inputs: usize, words: &[u32]) -> Self {
        Self {
            offsets: (0..=outputs).map(|j| j * inputs).collect(),
            columns: (0..outputs).flat_map(|_| 0..inputs).collect(),
            words: words.to_vec(),
            bias: Vec::new(),
        }
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Checks the rows against a ring and an input count.
    pub(crate) fn check(&self, ring: &Ring, inputs: usize) -> Result<()> {
        let limbs = ring.limbs();
        let entries = self.columns.len();
        let bad = |why: String| Err(Error::Shape(format!("sparse layer: {why}")));
        if self.offsets.len() < 2 || self.offsets[0] != 0 || self.offsets.last() != Some(&entries) {
            return bad(format!(
                "offsets must run from 0 to the {entries} entries, one more than the outputs"
            ));
        }
        if self.offsets.windows(2).any(|w| w[0] > w[1]) {
            return bad("offsets decrease".into());
        }
        if self.words.len() != entries * limbs {
            return bad(format!(
                "{} words for {entries} entries × {limbs} limbs",
                self.words.len()
            ));
        }
        let outputs = self.outputs();
        if !self.bias.is_empty() && self.bias.len() != outputs * limbs {
            return bad(format!(
                "{} bias words for {outputs} outputs × {limbs} limbs",
                self.bias.len()
            ));
        }
        if inputs == 0 {
            return bad("no inputs".into());
        }
        if let Some(c) = self.columns.iter().find(|&&c| c >= inputs) {
            return bad(format!("column {c} of {inputs} inputs"));
        }
        if entries as u64 >= u64::from(u32::MAX) || inputs as u64 >= u64::from(u32::MAX) {
            return bad("too many entries".into());
        }
        ring.check_limb_words(&self.words)?;
        ring.check_limb_words(&self.bias)
    }
}

/// Checks that a sparse layer fits its input.
pub(crate) fn check_sparse(w: &SparseWeights, x: &super::PolyBatch) -> Result<()> {
    super::check_layer_input(&w.ring, w.inputs, x)
}
