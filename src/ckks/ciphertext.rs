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

/// What every ciphertext of a batch shares besides its polynomials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CipherMeta {
    /// Polynomials per ciphertext: 2, or 3 after a product before relinearization.
    pub size: usize,
    /// The ciphertexts are over `q_0 … q_level`.
    pub level: usize,
    /// The scale the values are multiplied by.
    pub scale: f64,
    /// The parameter set.
    pub params_id: u64,
    /// The key set they are encrypted under.
    pub key_set: KeySetId,
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

    /// The one constructor: `count` ciphertexts described by `meta` in `polys`
    /// (`[ciphertext][polynomial]`), checked against each other. `seed` marks a fresh
    /// secret-key encryption whose second polynomials are drawn from it.
    pub(crate) fn new(
        meta: CipherMeta,
        count: usize,
        polys: PolyBatch,
        seed: Option<[u8; 32]>,
    ) -> Result<Ciphertext> {
        let CipherMeta {
            size,
            level,
            scale,
            params_id,
            key_set,
        } = meta;
        let limbs = polys.ring().limbs();
        if !(size == 2 || size == 3) || polys.batch != size * count || limbs != level + 1 {
            return Err(Error::Shape(format!(
                "{} polynomials of {limbs} limbs are not {count} ciphertexts of {size} \
                 polynomials at level {level}",
                polys.batch
            )));
        }
        if seed.is_some() && size != 2 {
            return Err(Error::Shape(
                "only two-polynomial ciphertexts are seeded".into(),
            ));
        }
        Ok(Ciphertext {
            polys,
            size,
            count,
            level,
            scale,
            params_id,
            key_set,
            seed,
        })
    }

    /// What this batch's ciphertexts share besides their polynomials.
    pub fn meta(&self) -> CipherMeta {
        CipherMeta {
            size: self.size,
            level: self.level,
            scale: self.scale,
            params_id: self.params_id,
            key_set: self.key_set,
        }
    }

    /// `count` ciphertexts in `polys` with this one's size, level, scale and set.
    pub(crate) fn with_polys(&self, polys: PolyBatch, count: usize) -> Result<Ciphertext> {
        Ciphertext::new(self.meta(), count, polys, None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckks::Preset;

    #[test]
    fn the_constructor_refuses_polynomials_that_do_not_match_the_meta() {
        let params = Parameters::preset(Preset::CryptoNets8192).unwrap();
        let cpu = CpuBackend::new(Some(1)).unwrap();
        let level = 2;
        let ring = params.ring_q(level).unwrap();
        let meta = CipherMeta {
            size: 2,
            level,
            scale: 2f64.powi(24),
            params_id: params.id(),
            key_set: KeySetId::default(),
        };
        let six = || cpu.zeros(ring, 6).unwrap();
        let three = CipherMeta { size: 3, ..meta };
        assert_eq!(Ciphertext::new(meta, 3, six(), None).unwrap().meta(), meta);
        assert_eq!(Ciphertext::new(three, 2, six(), None).unwrap().count(), 2);
        assert!(
            Ciphertext::new(meta, 3, six(), Some([7; 32]))
                .unwrap()
                .is_seeded()
        );
        assert!(Ciphertext::new(meta, 2, six(), None).is_err(), "count");
        let above = CipherMeta { level: 3, ..meta };
        assert!(Ciphertext::new(above, 3, six(), None).is_err(), "level");
        let six_polys = CipherMeta { size: 6, ..meta };
        assert!(Ciphertext::new(six_polys, 1, six(), None).is_err(), "size");
        let seeded = Ciphertext::new(three, 2, six(), Some([7; 32]));
        assert!(seeded.is_err(), "a seeded product");
    }
}
