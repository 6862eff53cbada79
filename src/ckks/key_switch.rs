//! Hybrid key switching: the key product over `[P, Q_l]` and the division by P (`mod_down`),
//! shared by the evaluator (relinearization, Galois automorphisms) and the encryptor (whose
//! public-key encryption ends with the same division).

use super::keys::{KeySetId, SwitchingKey};
use super::params::Parameters;
use crate::Result;
use crate::backend::{Backend, PolyBatch};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Divides NTT-domain polynomials over `[P, Q_level]` by P with rounding: subtracts the
/// special-prime part (converted to `Q_level`, centered) and multiplies by P^-1.
pub(crate) fn mod_down(
    be: &dyn Backend,
    params: &Parameters,
    x: &PolyBatch,
    level: usize,
) -> Result<PolyBatch> {
    let alpha = params.special_primes();
    let sources: Vec<Option<usize>> = (0..x.batch()).map(Some).collect();
    let mut p_part = be.gather(x, &sources, 0..alpha)?;
    be.ntt_inverse(&mut p_part)?;
    let ring_q = params.ring_q(level)?;
    let special = 0..alpha;
    let conv = be.base_convert(&p_part, std::slice::from_ref(&special), ring_q)?;
    let p_inv: Vec<u32> = (0..=level)
        .map(|l| {
            let m = ring_q.modulus(l);
            let p = params
                .p_primes()
                .iter()
                .fold(1u32, |a, &p| m.mul(a, m.reduce(p)));
            m.inv(p)
                .expect("special primes differ from the ciphertext primes")
        })
        .collect();
    be.ntt_forward_scaled_difference(x, conv, alpha, &p_inv)
}

/// Bytes of the decomposed form (every digit raised to `[P, Q_l]`) of the ciphertexts
/// key-switched together: a network's whole stage where it fits (at N = 2^13 with one special
/// prime, 195 ciphertexts at the top level and more below, so the 100 outputs of the CryptoNets
/// dense layer go through in one piece, with no copies in and out of chunks), a bounded
/// temporary where it does not.
const KEY_SWITCH_BYTES: usize = 256 << 20;

/// Ciphertexts at `level` key-switched together (see [`KEY_SWITCH_BYTES`]).
pub(crate) fn key_switch_chunk(params: &Parameters, level: usize) -> usize {
    let limbs = params.special_primes() + level + 1;
    let per = params.digits(level).len() * limbs * params.degree() * 4;
    (KEY_SWITCH_BYTES / per.max(1)).max(1)
}

/// Mod-up of `d` (one NTT-domain polynomial per ciphertext, over q_0 … q_level): each digit
/// raised to `[P, Q_level]`, in the NTT domain. A Galois automorphism commutes with it up to a
/// multiple of the digit's modulus, which the key product absorbs like any mod-up error, so one
/// decomposition serves many rotations (hoisting).
pub(crate) fn decompose(
    be: &dyn Backend,
    params: &Parameters,
    mut d: PolyBatch,
    level: usize,
) -> Result<PolyBatch> {
    be.ntt_inverse(&mut d)?;
    be.base_convert_ntt(&d, &params.digits(level), params.ring_ext(level))
}

/// The key product of a decomposed batch (see [`decompose`]) with `key` (from
/// [`DeviceKey::at_level`]) and the division by P: per ciphertext the pair `(k0, k1)`. The
/// decomposed batch is released before the division.
pub(crate) fn product(
    be: &dyn Backend,
    params: &Parameters,
    key: &PolyBatch,
    ext: PolyBatch,
    level: usize,
) -> Result<PolyBatch> {
    let digits = params.digits(level).len();
    let acc = be.key_mul_acc(&ext, key, digits)?;
    drop(ext);
    mod_down(be, params, &acc, level)
}

/// A switching key on the device, and its restrictions to lower levels (made on first use).
pub(crate) struct DeviceKey {
    pub(crate) key_set: KeySetId,
    full: Arc<PolyBatch>,
    digits: usize,
    /// The highest level it switches.
    level: usize,
    by_level: Mutex<HashMap<usize, Arc<PolyBatch>>>,
}

impl DeviceKey {
    /// `k` on `backend`, after checking it belongs to `params`.
    pub(crate) fn upload(
        backend: &dyn Backend,
        params: &Parameters,
        k: &SwitchingKey,
    ) -> Result<Self> {
        params.check_id(k.params_id, "evaluation key")?;
        Ok(DeviceKey {
            key_set: k.key_set,
            full: Arc::new(backend.upload(params.ring_ext(k.level), 2 * k.digits, &k.words)?),
            digits: k.digits,
            level: k.level,
            by_level: Mutex::new(HashMap::new()),
        })
    }

    /// Hybrid key switching of `d` (one NTT-domain polynomial per ciphertext, over q_0 … q_level):
    /// per ciphertext the pair `(k0, k1)` with `k0 + k1·s ≈ d·s'`. Large batches go through in
    /// chunks, which bounds the decomposed form (digits × ciphertexts × limbs) in memory.
    pub(crate) fn switch(
        &self,
        be: &dyn Backend,
        params: &Parameters,
        d: PolyBatch,
        level: usize,
    ) -> Result<PolyBatch> {
        let chunk = key_switch_chunk(params, level);
        if d.batch() <= chunk {
            return self.switch_chunk(be, params, d, level);
        }
        let mut parts = Vec::new();
        for start in (0..d.batch()).step_by(chunk) {
            let end = (start + chunk).min(d.batch());
            let sources: Vec<Option<usize>> = (start..end).map(Some).collect();
            let piece = be.gather(&d, &sources, 0..level + 1)?;
            parts.push(self.switch_chunk(be, params, piece, level)?);
        }
        let refs: Vec<&PolyBatch> = parts.iter().collect();
        be.concat(&refs)
    }

    fn switch_chunk(
        &self,
        be: &dyn Backend,
        params: &Parameters,
        d: PolyBatch,
        level: usize,
    ) -> Result<PolyBatch> {
        let key = self.at_level(be, params, level)?;
        let ext = decompose(be, params, d, level)?;
        product(be, params, &key, ext, level)
    }

    /// The key restricted to `[P, Q_level]` and the digits of that level (cached). Fetch it
    /// before making temporaries: the first call allocates the cached copy, which on the GPU
    /// would otherwise take a temporary's buffer from the arena and leave the next batch one
    /// short.
    pub(crate) fn at_level(
        &self,
        be: &dyn Backend,
        params: &Parameters,
        level: usize,
    ) -> Result<Arc<PolyBatch>> {
        if level > self.level {
            return Err(crate::Error::MissingKey(format!(
                "the key switches ciphertexts up to level {}, not at level {level} (make it for \
                 the levels the plan uses: KeyGenerator::galois_keys_up_to)",
                self.level
            )));
        }
        let digits = params.digits(level).len();
        if level == self.level {
            // The key as made: no copy (a key for a lower level is used at its own level).
            return Ok(self.full.clone());
        }
        let mut cache = self.by_level.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = cache.get(&level) {
            return Ok(k.clone());
        }
        let sources: Vec<Option<usize>> = (0..2)
            .flat_map(|c| (0..digits).map(move |d| Some(c * self.digits + d)))
            .collect();
        let limbs = 0..params.special_primes() + level + 1;
        let k = Arc::new(be.gather(&self.full, &sources, limbs)?);
        cache.insert(level, k.clone());
        Ok(k)
    }
}
