//! Device-resident data: batches of RNS polynomials and prepared weight matrices.

use super::device_data::DeviceData;
use super::pool::BufferPool;
use crate::math::Ring;
use crate::{Error, Result};
use std::sync::Arc;

/// `batch` polynomials of one ring, laid out `[batch][limb][n]` in u32 words, on one device.
/// Built and read back only through a [`Backend`](super::Backend): every upload and readback
/// is explicit.
pub struct PolyBatch {
    pub(crate) ring: Arc<Ring>,
    pub(crate) batch: usize,
    pub(crate) data: Storage,
}

/// Where a batch's words are: in host memory, or held by a device backend.
pub(crate) enum Storage {
    Host(HostWords),
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Device(DeviceData),
}

/// A host batch's words, given back to the pool of the backend that made them (if any) when
/// dropped.
pub(crate) struct HostWords {
    words: Vec<u32>,
    pool: Option<Arc<BufferPool>>,
}

impl HostWords {
    pub(crate) fn new(words: Vec<u32>, pool: Option<Arc<BufferPool>>) -> Self {
        Self { words, pool }
    }

    /// The words, taken out (the pool does not get them back).
    pub(crate) fn take(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.words)
    }
}

impl std::ops::Deref for HostWords {
    type Target = Vec<u32>;

    fn deref(&self) -> &Vec<u32> {
        &self.words
    }
}

impl std::ops::DerefMut for HostWords {
    fn deref_mut(&mut self) -> &mut Vec<u32> {
        &mut self.words
    }
}

impl Drop for HostWords {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give(std::mem::take(&mut self.words));
        }
    }
}

impl PolyBatch {
    /// The ring of the polynomials.
    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    /// Number of polynomials.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Rows of N words (`batch × limbs`): what a transform over the batch touches.
    pub fn rows(&self) -> usize {
        self.batch * self.ring.limbs()
    }

    /// Total words (`batch × limbs × n`).
    pub fn words(&self) -> usize {
        self.batch * self.ring.poly_words()
    }

    /// Where the data lives, for messages.
    pub fn location(&self) -> String {
        match &self.data {
            Storage::Host(_) => "the CPU".into(),
            Storage::Device(d) => d.location(),
        }
    }

    /// The same words viewed over `ring`, whose polynomials are `factor` of this batch's
    /// polynomials laid end to end ([`Ring::repeat`]), or the reverse: no data moves. On the GPU
    /// every chunk must hold whole groups (true unless bindings hold fewer than six
    /// polynomials).
    pub fn regroup(mut self, ring: &Arc<Ring>) -> Result<PolyBatch> {
        let (from, to) = (self.ring.primes(), ring.primes());
        let fits = |small: &[u32], big: &[u32]| {
            !small.is_empty()
                && big.len().is_multiple_of(small.len())
                && big.chunks(small.len()).all(|c| c == small)
        };
        let words = self.words();
        let (grouping, factor) = if fits(&from, &to) {
            (true, to.len() / from.len())
        } else if fits(&to, &from) {
            (false, from.len() / to.len())
        } else {
            return Err(Error::Shape(format!(
                "cannot view polynomials over {from:?} as polynomials over {to:?}"
            )));
        };
        if ring.degree() != self.ring.degree() || (grouping && !self.batch.is_multiple_of(factor)) {
            return Err(Error::Shape(format!(
                "{} polynomials do not form groups of {factor}",
                self.batch
            )));
        }
        let batch = if grouping {
            self.batch / factor
        } else {
            self.batch * factor
        };
        if let Storage::Device(d) = &mut self.data {
            d.regroup(grouping, factor)?;
        }
        debug_assert_eq!(words, batch * ring.poly_words());
        Ok(PolyBatch {
            ring: ring.clone(),
            batch,
            data: self.data,
        })
    }

    /// The words, when the batch lives on the host.
    pub(crate) fn host_words(&self) -> Option<&[u32]> {
        match &self.data {
            Storage::Host(v) => Some(v),
            Storage::Device(_) => None,
        }
    }

    /// The words: read in place where the batch lives on the host, downloaded through
    /// `backend` (which holds it) from a device.
    pub(crate) fn words_via<'a>(
        &'a self,
        backend: &dyn super::Backend,
    ) -> crate::Result<std::borrow::Cow<'a, [u32]>> {
        match self.host_words() {
            Some(words) => Ok(std::borrow::Cow::Borrowed(words)),
            None => Ok(std::borrow::Cow::Owned(backend.download(self)?)),
        }
    }

    /// Checks that `other` has this batch's ring and batch size.
    pub(crate) fn check_same_shape(&self, other: &PolyBatch) -> Result<()> {
        if !self.ring.same_as(&other.ring) {
            return Err(Error::Shape(format!(
                "operands are in different rings (N = {} primes {:?} vs N = {} primes {:?})",
                self.ring.degree(),
                self.ring.primes(),
                other.ring.degree(),
                other.ring.primes()
            )));
        }
        if self.batch != other.batch {
            return Err(Error::Shape(format!(
                "batch sizes differ: {} vs {}",
                self.batch, other.batch
            )));
        }
        Ok(())
    }
}

/// Plaintext weights of a linear layer, `words[j][k][l]` = weight from input `k` to output `j`
/// reduced modulo limb `l`'s prime, prepared (with Shoup companions) on one device.
pub struct Weights {
    pub(crate) ring: Arc<Ring>,
    pub(crate) outputs: usize,
    pub(crate) inputs: usize,
    pub(crate) data: WeightStorage,
}

pub(crate) enum WeightStorage {
    /// The matrix as compressed rows (every column in every row): the CPU runs dense and
    /// sparse layers with one kernel.
    Host { rows: super::sparse::SparseRows },
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))]
    Device(DeviceData),
}

impl Weights {
    /// Number of outputs J.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Number of inputs K.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Validates `words` (`[J][K][limbs]`, reduced) for a layer of `outputs × inputs`.
    pub(crate) fn check(ring: &Ring, outputs: usize, inputs: usize, words: &[u32]) -> Result<()> {
        let limbs = ring.limbs();
        if outputs == 0 || inputs == 0 || words.len() != outputs * inputs * limbs {
            return Err(Error::Shape(format!(
                "{} weight words given for {outputs} outputs × {inputs} inputs × {limbs} limbs",
                words.len()
            )));
        }
        ring.check_limb_words(words)
    }
}
