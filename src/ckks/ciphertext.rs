//! Plaintexts and ciphertexts: RNS polynomials in the NTT domain on one device, with the level,
//! the exactly tracked scale and the identity of their parameter set.

use super::keys::KeySetId;
use super::params::Parameters;
use crate::backend::{Backend, CpuBackend, PolyBatch};
use crate::{Error, Result};

/// One or more encoded vectors: polynomials over `q_0 … q_level`, in the NTT domain.
pub struct Plaintext {
    pub(crate) poly: PolyBatch,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
}

/// One or more ciphertexts sharing level and scale: `count` groups of `size` polynomials
/// (`size` is 2, or 3 after a multiplication before relinearization), laid out
/// `[ciphertext][polynomial][limb][n]`, in the NTT domain, resident on one device.
pub struct Ciphertext {
    pub(crate) polys: PolyBatch,
    pub(crate) size: usize,
    pub(crate) count: usize,
    pub(crate) level: usize,
    pub(crate) scale: f64,
    pub(crate) params_id: u64,
    /// The key set it is encrypted under.
    pub(crate) key_set: KeySetId,
    /// Fresh from secret-key encryption: ciphertext i's second polynomial is the mask drawn
    /// from this seed, stream i, and the compact format sends the seed instead. Any operation
    /// drops it.
    pub(crate) seed: Option<[u8; 32]>,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plaintext {{ count: {}, level: {}, scale: 2^{:.2}, on: {} }}",
            self.count(),
            self.level,
            self.scale.log2(),
            self.poly.location()
        )
    }
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ciphertext {{ size: {}, count: {}, level: {}, scale: 2^{:.2}, key set: {}, on: {} }}",
            self.size,
            self.count,
            self.level,
            self.scale.log2(),
            self.key_set,
            self.location()
        )
    }
}

impl Plaintext {
    /// Level: the plaintext has `level + 1` limbs.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale its values were multiplied by.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Number of encoded vectors.
    pub fn count(&self) -> usize {
        self.poly.batch
    }

    /// A copy on the host (what [`Encoder::decode`](super::Encoder::decode) reads), fetched
    /// through the backend that holds it.
    pub fn to_host(&self, backend: &dyn Backend) -> Result<Plaintext> {
        let words = backend.download(&self.poly)?;
        Ok(Plaintext {
            poly: CpuBackend::host_batch(&self.poly.ring, self.poly.batch, words)?,
            level: self.level,
            scale: self.scale,
            params_id: self.params_id,
        })
    }
}

impl Plaintext {
    /// Wraps host words (NTT domain) as a plaintext; used by the decryptor.
    pub(crate) fn from_host(
        params: &Parameters,
        level: usize,
        scale: f64,
        words: Vec<u32>,
    ) -> Result<Self> {
        let ring = params.ring_q(level)?;
        Ok(Self {
            poly: CpuBackend::host_batch(ring, 1, words)?,
            level,
            scale,
            params_id: params.id(),
        })
    }
}

impl Ciphertext {
    /// Level: each polynomial has `level + 1` limbs; every rescale lowers it by one.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The scale of the encrypted values, tracked exactly.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Polynomials per ciphertext: 2, or 3 after a multiplication until relinearized.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Number of ciphertexts held together.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The identity of the parameter set it was made with.
    pub fn params_id(&self) -> u64 {
        self.params_id
    }

    /// The key set it is encrypted under.
    pub fn key_set(&self) -> KeySetId {
        self.key_set
    }

    /// Whether its compact form carries a seed for its masks instead of the polynomials: fresh
    /// from secret-key encryption, not yet through any operation.
    pub fn is_seeded(&self) -> bool {
        self.seed.is_some()
    }

    /// Bytes of polynomial data (what a transfer or the compact format carries, at most).
    pub fn data_bytes(&self) -> usize {
        4 * self.polys.words()
    }

    /// Where the ciphertext lives, for messages.
    pub fn location(&self) -> String {
        self.polys.location()
    }

    /// `count` ciphertexts in `polys` with this one's size, level, scale and set.
    pub(crate) fn with_polys(&self, polys: PolyBatch, count: usize) -> Ciphertext {
        Ciphertext {
            polys,
            size: self.size,
            count,
            level: self.level,
            scale: self.scale,
            params_id: self.params_id,
            key_set: self.key_set,
            seed: None,
        }
    }

    /// Checks that this ciphertext belongs to `params` and its shape is consistent.
    pub(crate) fn check(&self, params: &Parameters) -> Result<()> {
        params.check_id(self.params_id, "ciphertext")?;
        if self.polys.batch != self.size * self.count {
            return Err(Error::Shape(
                "ciphertext polynomials do not match its size".into(),
            ));
        }
        Ok(())
    }
}
