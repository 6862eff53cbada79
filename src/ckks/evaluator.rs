//! The evaluator: homomorphic operations on ciphertexts, each a short sequence of backend
//! operations, so a ciphertext on the GPU stays there. It holds public material only.

use super::ciphertext::{CipherMeta, Ciphertext, Plaintext};
use super::key_switch::DeviceKey;
use super::keys::EvaluationKeys;
use super::params::Parameters;
use crate::backend::{Backend, PolyBatch};
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Scales closer than this (relative) count as equal; the difference is far below CKKS noise.
const SCALE_TOLERANCE: f64 = 1.0 / (1u64 << 20) as f64;

/// Evaluates on one backend with the evaluation keys it was given.
pub struct Evaluator {
    params: Arc<Parameters>,
    backend: Arc<dyn Backend>,
    relin: Option<DeviceKey>,
    galois: HashMap<usize, DeviceKey>,
    /// Ciphertexts key-switched so far (relinearizations and Galois automorphisms).
    key_switches: AtomicU64,
}

impl Evaluator {
    /// Uploads the evaluation keys to `backend`.
    pub fn new(
        params: &Arc<Parameters>,
        backend: Arc<dyn Backend>,
        keys: &EvaluationKeys,
    ) -> Result<Self> {
        keys.key_set()?;
        let upload = |k| DeviceKey::upload(&*backend, params, k);
        let relin = keys.relin.as_ref().map(|r| upload(&r.0)).transpose()?;
        let galois = keys
            .galois
            .keys
            .iter()
            .map(|(&g, k)| Ok((g, upload(k)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            params: params.clone(),
            backend,
            relin,
            galois,
            key_switches: AtomicU64::new(0),
        })
    }

    /// Ciphertexts key-switched (relinearized, rotated, conjugated) by this evaluator so far.
    pub fn key_switches(&self) -> u64 {
        self.key_switches.load(Ordering::Relaxed)
    }

    /// The backend every operation runs on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The parameter set.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    /// As many ciphertexts as `ct` holds, in `polys`, described by `meta`.
    fn like(ct: &Ciphertext, polys: PolyBatch, meta: CipherMeta) -> Result<Ciphertext> {
        Ciphertext::new(meta, ct.count, polys, None)
    }

    /// Polynomial `j` of every ciphertext, in order (`None`: a zero polynomial there).
    fn pattern(ct: &Ciphertext, per_ct: &[Option<usize>]) -> Vec<Option<usize>> {
        (0..ct.count)
            .flat_map(|c| per_ct.iter().map(move |j| j.map(|j| c * ct.size + j)))
            .collect()
    }

    fn all_limbs(ct: &Ciphertext) -> std::ops::Range<usize> {
        0..ct.level + 1
    }

    fn check_pair(&self, a: &Ciphertext, b: &Ciphertext) -> Result<()> {
        a.check(&self.params)?;
        b.check(&self.params)?;
        a.key_set.check(b.key_set, "the second operand")?;
        if a.level != b.level {
            return Err(Error::Mismatch(format!(
                "levels {} and {} differ (align them first)",
                a.level, b.level
            )));
        }
        if a.count != b.count {
            return Err(Error::Mismatch(format!(
                "{} and {} ciphertexts",
                a.count, b.count
            )));
        }
        Ok(())
    }

    fn check_scales(a: f64, b: f64) -> Result<()> {
        if ((a - b) / a).abs() > SCALE_TOLERANCE {
            return Err(Error::Mismatch(format!(
                "scales {a:.6e} and {b:.6e} differ (align them first)"
            )));
        }
        Ok(())
    }

    fn check_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<()> {
        ct.check(&self.params)?;
        self.params.check_id(pt.params_id, "plaintext")?;
        if pt.count() != 1 && pt.count() != ct.count {
            return Err(Error::Mismatch(format!(
                "a plaintext of {} vectors for {} ciphertexts",
                pt.count(),
                ct.count
            )));
        }
        if pt.level < ct.level {
            return Err(Error::Mismatch(format!(
                "plaintext at level {} is below the ciphertext's level {}",
                pt.level, ct.level
            )));
        }
        Ok(())
    }

    /// `a + b` (same level, scale and size).
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale, b.scale)?;
        self.check_sizes(a, b)?;
        Self::like(a, self.backend.add(&a.polys, &b.polys)?, a.meta())
    }

    /// `a − b` (same level, scale and size).
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        Self::check_scales(a.scale, b.scale)?;
        self.check_sizes(a, b)?;
        Self::like(a, self.backend.sub(&a.polys, &b.polys)?, a.meta())
    }

    fn check_sizes(&self, a: &Ciphertext, b: &Ciphertext) -> Result<()> {
        if a.size != b.size {
            return Err(Error::Mismatch(format!(
                "ciphertexts of {} and {} polynomials (relinearize first)",
                a.size, b.size
            )));
        }
        Ok(())
    }

    /// `−a`.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        a.check(&self.params)?;
        Self::like(a, self.backend.neg(&a.polys)?, a.meta())
    }

    /// The plaintext spread over the first polynomial of every ciphertext (zero elsewhere).
    fn plain_in_c0(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<PolyBatch> {
        let broadcast = pt.count() == 1;
        let sources: Vec<Option<usize>> = (0..ct.count)
            .flat_map(|c| {
                let mut per_ct = vec![None; ct.size];
                per_ct[0] = Some(if broadcast { 0 } else { c });
                per_ct
            })
            .collect();
        self.backend.gather(&pt.poly, &sources, Self::all_limbs(ct))
    }

    /// `ct + pt` (same scale; a plaintext above the ciphertext's level is cut down to it).
    pub fn add_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale, pt.scale)?;
        let m = self.plain_in_c0(ct, pt)?;
        Self::like(ct, self.backend.add(&ct.polys, &m)?, ct.meta())
    }

    /// `ct − pt`.
    pub fn sub_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        Self::check_scales(ct.scale, pt.scale)?;
        let m = self.plain_in_c0(ct, pt)?;
        Self::like(ct, self.backend.sub(&ct.polys, &m)?, ct.meta())
    }

    /// `ct · pt` slot-wise; the scales multiply.
    pub fn mul_plain(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext> {
        self.check_plain(ct, pt)?;
        let broadcast = pt.count() == 1;
        let sources: Vec<Option<usize>> = (0..ct.size * ct.count)
            .map(|i| Some(if broadcast { 0 } else { i / ct.size }))
            .collect();
        let m = self
            .backend
            .gather(&pt.poly, &sources, Self::all_limbs(ct))?;
        let meta = CipherMeta {
            scale: ct.scale * pt.scale,
            ..ct.meta()
        };
        Self::like(ct, self.backend.mul(&ct.polys, &m)?, meta)
    }

    /// The integer `round(value · scale)` as one word per limb of `level`.
    fn integer_words(&self, level: usize, value: f64, scale: f64) -> Result<Vec<u32>> {
        let v = value * scale;
        if !v.is_finite() || v.abs() >= 2f64.powi(120) {
            return Err(Error::Encoding(format!(
                "constant {value} at scale {scale:e} is not a usable integer"
            )));
        }
        let v = v.round() as i128;
        Ok(self.params.q_primes()[..=level]
            .iter()
            .map(|&p| v.rem_euclid(i128::from(p)) as u32)
            .collect())
    }

    /// `ct + value` in every slot.
    pub fn add_const(&self, ct: &Ciphertext, value: f64) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        // A constant polynomial is the same constant at every NTT point: add it to c0 only.
        let c = self.integer_words(ct.level, value, ct.scale)?;
        let ring = self.params.ring_q(ct.level)?;
        let words: Vec<u32> = c
            .iter()
            .flat_map(|&w| std::iter::repeat_n(w, ring.degree()))
            .collect();
        let pt = Plaintext {
            poly: self.backend.upload(ring, 1, &words)?,
            level: ct.level,
            scale: ct.scale,
            params_id: ct.params_id,
        };
        self.add_plain(ct, &pt)
    }

    /// `ct · round(value · scale)`: every limb multiplied by one word, no level used (the
    /// linear-layer path); the ciphertext's scale is multiplied by `scale`.
    pub fn mul_const(&self, ct: &Ciphertext, value: f64, scale: f64) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(Error::Encoding(format!(
                "scale {scale} is not a finite number ≥ 1"
            )));
        }
        let w = self.integer_words(ct.level, value, scale)?;
        let zero = vec![0u32; w.len()];
        let meta = CipherMeta {
            scale: ct.scale * scale,
            ..ct.meta()
        };
        Self::like(ct, self.backend.scalar_affine(&ct.polys, &w, &zero)?, meta)
    }

    /// `ct · k` for an integer k: the scale is unchanged.
    pub fn mul_int(&self, ct: &Ciphertext, k: i64) -> Result<Ciphertext> {
        let mut out = self.mul_const(ct, k as f64, 1.0)?;
        out.scale = ct.scale;
        Ok(out)
    }

    /// `a · b`: a ciphertext of three polynomials (relinearize it next); the scales multiply.
    pub fn mul(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.check_pair(a, b)?;
        if a.size != 2 || b.size != 2 {
            return Err(Error::Mismatch(
                "multiply ciphertexts of two polynomials (relinearize first)".into(),
            ));
        }
        let polys = self.backend.tensor(&a.polys, &b.polys)?;
        let meta = CipherMeta {
            size: 3,
            scale: a.scale * b.scale,
            ..a.meta()
        };
        Self::like(a, polys, meta)
    }

    /// `a²`.
    pub fn square(&self, a: &Ciphertext) -> Result<Ciphertext> {
        self.mul(a, a)
    }

    /// Back to two polynomials with the relinearization key.
    pub fn relinearize(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if ct.size != 3 {
            return Err(Error::Mismatch(format!(
                "relinearize takes three polynomials, not {}",
                ct.size
            )));
        }
        let key = self
            .relin
            .as_ref()
            .ok_or_else(|| Error::MissingKey("no relinearization key was given".into()))?;
        key.key_set.check(ct.key_set, "the ciphertext")?;
        let be = &*self.backend;
        let limbs = Self::all_limbs(ct);
        let d = be.gather(&ct.polys, &Self::pattern(ct, &[Some(2)]), limbs.clone())?;
        let switched = self.key_switch(d, ct.level, key)?;
        let base = be.gather(&ct.polys, &Self::pattern(ct, &[Some(0), Some(1)]), limbs)?;
        self.pair_like(ct, &base, &switched)
    }

    /// The same ciphertexts as three polynomials at `level` (primes above it dropped, as
    /// [`drop_level`](Self::drop_level) does), in one copy: a third polynomial of zeros where
    /// `ct` has two (it decrypts the same). Maps on lazy products take inputs of one form.
    pub fn three_at(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        let per_ct: &[Option<usize>] = match ct.size {
            2 => &[Some(0), Some(1), None],
            3 => &[Some(0), Some(1), Some(2)],
            n => {
                return Err(Error::Mismatch(format!(
                    "ciphertexts of {n} polynomials cannot be padded to three"
                )));
            }
        };
        self.copy_down(ct, per_ct, level)
    }

    /// Polynomials `per_ct` of every ciphertext (see [`pattern`](Self::pattern)) over the
    /// primes up to `level`: one gather for dropping levels and changing the form.
    fn copy_down(
        &self,
        ct: &Ciphertext,
        per_ct: &[Option<usize>],
        level: usize,
    ) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if level > ct.level {
            return Err(Error::Mismatch(format!(
                "cannot raise a level-{} ciphertext to level {level}",
                ct.level
            )));
        }
        let polys = self
            .backend
            .gather(&ct.polys, &Self::pattern(ct, per_ct), 0..level + 1)?;
        let meta = CipherMeta {
            size: per_ct.len(),
            level,
            ..ct.meta()
        };
        Self::like(ct, polys, meta)
    }

    /// `a · b` relinearized.
    pub fn mul_relin(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        self.relinearize(&self.mul(a, b)?)
    }

    /// `base + switched`, two polynomials per ciphertext, otherwise like `ct`: the end of
    /// relinearization and of Galois automorphisms.
    fn pair_like(
        &self,
        ct: &Ciphertext,
        base: &PolyBatch,
        switched: &PolyBatch,
    ) -> Result<Ciphertext> {
        let meta = CipherMeta {
            size: 2,
            ..ct.meta()
        };
        Self::like(ct, self.backend.add(base, switched)?, meta)
    }

    /// Key switching of `d` with `key`, counted.
    fn key_switch(&self, d: PolyBatch, level: usize, key: &DeviceKey) -> Result<PolyBatch> {
        self.key_switches
            .fetch_add(d.batch() as u64, Ordering::Relaxed);
        key.switch(&*self.backend, &self.params, d, level)
    }

    /// Divides by the last prime q_level and drops it: the scale becomes `scale / q_level`.
    pub fn rescale(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if ct.level == 0 {
            return Err(Error::Mismatch(
                "a level-0 ciphertext cannot be rescaled".into(),
            ));
        }
        let be = &*self.backend;
        let l = ct.level;
        let all: Vec<Option<usize>> = (0..ct.polys.batch()).map(Some).collect();
        let mut last = be.gather(&ct.polys, &all, l..l + 1)?;
        be.ntt_inverse(&mut last)?;
        let ring = self.params.ring_q(l - 1)?;
        let only = 0..1;
        let conv = be.base_convert(&last, std::slice::from_ref(&only), ring)?;
        let q_last = self.params.q_primes()[l];
        let inv: Vec<u32> = (0..l)
            .map(|i| {
                let m = ring.modulus(i);
                m.inv(m.reduce(q_last)).expect("distinct primes")
            })
            .collect();
        let polys = be.ntt_forward_scaled_difference(&ct.polys, conv, 0, &inv)?;
        let meta = CipherMeta {
            level: l - 1,
            scale: ct.scale / f64::from(q_last),
            ..ct.meta()
        };
        Self::like(ct, polys, meta)
    }

    /// `times` rescales in a row.
    pub fn rescale_by(&self, ct: &Ciphertext, times: usize) -> Result<Ciphertext> {
        if times > ct.level {
            return Err(Error::Mismatch(format!(
                "{times} rescales of a level-{} ciphertext",
                ct.level
            )));
        }
        if times == 0 {
            return self.drop_level(ct, ct.level);
        }
        let mut out = self.rescale(ct)?;
        for _ in 1..times {
            out = self.rescale(&out)?;
        }
        Ok(out)
    }

    /// Drops primes down to `level` without changing the scale.
    pub fn drop_level(&self, ct: &Ciphertext, level: usize) -> Result<Ciphertext> {
        let all: Vec<Option<usize>> = (0..ct.size).map(Some).collect();
        self.copy_down(ct, &all, level)
    }

    /// The ciphertexts `indices` of the batch `ct`, in that order (a batch of `indices.len()`).
    pub fn select(&self, ct: &Ciphertext, indices: &[usize]) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if indices.is_empty() {
            return Err(Error::Mismatch("select at least one ciphertext".into()));
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= ct.count) {
            return Err(Error::Mismatch(format!(
                "ciphertext {i} of a batch of {}",
                ct.count
            )));
        }
        let sources: Vec<Option<usize>> = indices
            .iter()
            .flat_map(|&i| (0..ct.size).map(move |j| Some(i * ct.size + j)))
            .collect();
        let polys = self
            .backend
            .gather(&ct.polys, &sources, Self::all_limbs(ct))?;
        Ciphertext::new(ct.meta(), indices.len(), polys, None)
    }

    /// Brings two ciphertexts to the same level (the lower) and the same scale: when scales
    /// differ, the one with the smaller scale is multiplied by the integer that matches them
    /// after one rescale, and the other drops one level.
    pub fn align(&self, a: &Ciphertext, b: &Ciphertext) -> Result<(Ciphertext, Ciphertext)> {
        let level = a.level.min(b.level);
        let (a, b) = (self.drop_level(a, level)?, self.drop_level(b, level)?);
        if Self::check_scales(a.scale, b.scale).is_ok() {
            return Ok((a, b));
        }
        if level == 0 {
            return Err(Error::Mismatch(
                "scales differ at level 0: no prime is left to match them".into(),
            ));
        }
        let q = f64::from(self.params.q_primes()[level]);
        let fix = |small: &Ciphertext, big: &Ciphertext| -> Result<(Ciphertext, Ciphertext)> {
            let k = (big.scale * q / small.scale).round();
            let raised = self.rescale(&self.mul_const(small, 1.0, k)?)?;
            Ok((raised, self.drop_level(big, level - 1)?))
        };
        if a.scale < b.scale {
            fix(&a, &b)
        } else {
            let (b, a) = fix(&b, &a)?;
            Ok((a, b))
        }
    }

    /// Rotates the slots by `step` towards slot 0 (negative: the other way).
    pub fn rotate(&self, ct: &Ciphertext, step: i64) -> Result<Ciphertext> {
        self.apply_galois(ct, self.params.galois_element(step))
    }

    /// Rotations of `ct` by each of `steps` (as [`rotate`](Self::rotate)), sharing one
    /// decomposition of the second polynomial (hoisting): the inverse NTT, base conversion and
    /// forward NTTs run once, and each rotation costs an automorphism of the decomposed digits,
    /// the key product and the division by P. The results decrypt like [`rotate`](Self::rotate)'s, but the
    /// words differ: the automorphism moves the mod-up error along with the digits.
    pub fn rotate_hoisted(&self, ct: &Ciphertext, steps: &[i64]) -> Result<Vec<Ciphertext>> {
        ct.check(&self.params)?;
        if ct.size != 2 {
            return Err(Error::Mismatch(
                "rotate ciphertexts of two polynomials".into(),
            ));
        }
        let elements: Vec<usize> = steps
            .iter()
            .map(|&s| self.params.galois_element(s))
            .collect();
        let be = &*self.backend;
        // Each key at this level first (see `DeviceKey::at_level`), then the decomposition.
        let keys = elements
            .iter()
            .filter(|&&g| g != 1)
            .map(|g| {
                let key = self
                    .galois
                    .get(g)
                    .ok_or_else(|| Error::MissingKey(format!("no Galois key for element {g}")))?;
                key.key_set.check(ct.key_set, "the ciphertext")?;
                Ok((*g, key.at_level(be, &self.params, ct.level)?))
            })
            .collect::<Result<HashMap<usize, _>>>()?;
        let limbs = Self::all_limbs(ct);
        let ext = if keys.is_empty() {
            None
        } else {
            let d = be.gather(&ct.polys, &Self::pattern(ct, &[Some(1)]), limbs.clone())?;
            Some(super::key_switch::decompose(be, &self.params, d, ct.level)?)
        };
        let c0 = be.gather(&ct.polys, &Self::pattern(ct, &[Some(0), None]), limbs)?;
        elements
            .iter()
            .map(|&g| {
                let (Some(key), Some(ext)) = (keys.get(&g), ext.as_ref()) else {
                    return self.drop_level(ct, ct.level);
                };
                self.key_switches
                    .fetch_add(ct.count as u64, Ordering::Relaxed);
                let moved = be.automorphism(ext, g)?;
                let switched = super::key_switch::product(be, &self.params, key, moved, ct.level)?;
                let base = be.automorphism(&c0, g)?;
                self.pair_like(ct, &base, &switched)
            })
            .collect()
    }

    /// Complex conjugation of every slot.
    pub fn conjugate(&self, ct: &Ciphertext) -> Result<Ciphertext> {
        self.apply_galois(ct, self.params.conjugation_element())
    }

    fn apply_galois(&self, ct: &Ciphertext, g: usize) -> Result<Ciphertext> {
        ct.check(&self.params)?;
        if ct.size != 2 {
            return Err(Error::Mismatch(
                "rotate ciphertexts of two polynomials".into(),
            ));
        }
        if g == 1 {
            return self.drop_level(ct, ct.level);
        }
        let key = self
            .galois
            .get(&g)
            .ok_or_else(|| Error::MissingKey(format!("no Galois key for element {g}")))?;
        key.key_set.check(ct.key_set, "the ciphertext")?;
        let be = &*self.backend;
        let limbs = Self::all_limbs(ct);
        let moved = be.automorphism(&ct.polys, g)?;
        let d = be.gather(&moved, &Self::pattern(ct, &[Some(1)]), limbs.clone())?;
        let switched = self.key_switch(d, ct.level, key)?;
        let base = be.gather(&moved, &Self::pattern(ct, &[Some(0), None]), limbs)?;
        self.pair_like(ct, &base, &switched)
    }
}

/// Accumulating forms: each replaces its first argument with the sum (a new ciphertext; the
/// old one is dropped).
impl Evaluator {
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<()> {
        *a = self.add(a, b)?;
        Ok(())
    }

    pub fn add_plain_assign(&self, a: &mut Ciphertext, pt: &Plaintext) -> Result<()> {
        *a = self.add_plain(a, pt)?;
        Ok(())
    }
}
