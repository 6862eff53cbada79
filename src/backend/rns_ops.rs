//! Host-side constants and checks shared by both backends' RNS operations (base conversion,
//! automorphisms, gathers, key-switching products), so the two twins cannot disagree on them.

use super::batch::PolyBatch;
use crate::math::Ring;
use crate::math::{BaseConverter, Modulus, RnsBasis};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Most source limbs one base conversion may read (`MAX_SOURCE` in `shaders/rns.wgsl`).
pub const MAX_CONVERT_SOURCE_LIMBS: usize = 16;

/// The centered fast base conversion from source primes `S = Π s_i` to target primes `t_j`:
/// [`BaseConverter`]'s constants plus `h = ⌊S/2⌋`. With `y_i = [(x_i + h) · (S/s_i)^{-1}]_{s_i}`,
/// `out_j = [Σ_i y_i · (S/s_i) − h]_{t_j}`, which is `x_c + u·S mod t_j` for the centered
/// representative `x_c ∈ [−S/2, S/2)` and some `0 ≤ u < len(S)`.
#[derive(Clone, Debug)]
pub(crate) struct ConversionTable {
    pub base: BaseConverter,
    /// `⌊S/2⌋ mod s_i` per source limb.
    pub half_source: Vec<u32>,
    /// `⌊S/2⌋ mod t_j` per target limb.
    pub half_target: Vec<u32>,
}

impl ConversionTable {
    pub fn new(source: &[Modulus], target: &[Modulus]) -> Result<Self> {
        if source.is_empty() || source.len() > MAX_CONVERT_SOURCE_LIMBS {
            return Err(Error::Shape(format!(
                "base conversion reads 1 to {MAX_CONVERT_SOURCE_LIMBS} limbs, not {}",
                source.len()
            )));
        }
        let primes = |ms: &[Modulus]| ms.iter().map(Modulus::value).collect::<Vec<u32>>();
        let from = RnsBasis::new(&primes(source))?;
        let to = RnsBasis::new(&primes(target))?;
        let half = from.product() >> 1u32;
        let residues = |ms: &[Modulus]| -> Vec<u32> {
            ms.iter()
                .map(|m| {
                    (&half % m.value())
                        .try_into()
                        .expect("a residue fits its prime")
                })
                .collect()
        };
        Ok(Self {
            half_source: residues(source),
            half_target: residues(target),
            base: BaseConverter::new(&from, &to),
        })
    }

    /// The source moduli.
    pub fn source(&self) -> &[Modulus] {
        self.base.from().moduli()
    }

    /// `(S/s_i)^{-1} mod s_i`.
    pub fn hat_inv(&self, i: usize) -> u32 {
        self.base.from().q_hat_inv()[i].0
    }

    /// The table as the GPU reads it: per source limb `[s, hat_inv, hat_inv', half]`, then the
    /// target halves, then `[j][i]` pairs `(S/s_i mod t_j, Shoup)`.
    #[cfg(feature = "gpu")]
    pub fn gpu_words(&self) -> Vec<u32> {
        let mut w = Vec::new();
        for (i, (m, &(inv, inv_shoup))) in self
            .source()
            .iter()
            .zip(self.base.from().q_hat_inv())
            .enumerate()
        {
            w.extend([m.value(), inv, inv_shoup, self.half_source[i]]);
        }
        w.extend(&self.half_target);
        for (t, row) in self.base.to().iter().zip(self.base.q_hat_mod_p()) {
            for &h in row {
                w.extend([h, t.shoup(h)]);
            }
        }
        w
    }
}

/// Conversion tables by source and target primes, built once per backend that owns the cache
/// (the big-integer work costs more than converting a polynomial).
#[derive(Default)]
pub(crate) struct ConversionCache(Mutex<BTreeMap<PrimePair, Arc<ConversionTable>>>);

/// Source and target primes.
type PrimePair = (Vec<u32>, Vec<u32>);

impl ConversionCache {
    /// The table for converting from `source` to `target` primes.
    fn table(&self, source: &[Modulus], target: &[Modulus]) -> Result<Arc<ConversionTable>> {
        let key = (
            source.iter().map(Modulus::value).collect(),
            target.iter().map(Modulus::value).collect(),
        );
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let t = Arc::new(ConversionTable::new(source, target)?);
        if cache.len() < 4096 {
            cache.insert(key, t.clone());
        }
        Ok(t)
    }
}

/// Checks the digit ranges of a base conversion of `x` and returns their tables, from `cache`.
pub(crate) fn conversion_tables(
    x: &PolyBatch,
    digits: &[Range<usize>],
    to: &Ring,
    cache: &ConversionCache,
) -> Result<Vec<Arc<ConversionTable>>> {
    if to.degree() != x.ring.degree() {
        return Err(Error::Shape(format!(
            "base conversion from degree {} to degree {}",
            x.ring.degree(),
            to.degree()
        )));
    }
    if digits.is_empty() {
        return Err(Error::Shape("base conversion of no digits".into()));
    }
    let target: Vec<Modulus> = (0..to.limbs()).map(|l| to.modulus(l)).collect();
    digits
        .iter()
        .map(|d| {
            if d.is_empty() || d.end > x.ring.limbs() {
                return Err(Error::Shape(format!(
                    "digit limbs {d:?} of a ring with {} limbs",
                    x.ring.limbs()
                )));
            }
            let source: Vec<Modulus> = d.clone().map(|l| x.ring.modulus(l)).collect();
            cache.table(&source, &target)
        })
        .collect()
}

/// Checks per-limb scalars: one word per limb, each reduced.
pub(crate) fn check_limb_scalars(ring: &Ring, words: &[u32], what: &str) -> Result<()> {
    if words.len() != ring.limbs() {
        return Err(Error::Shape(format!(
            "{} {what} words for {} limbs",
            words.len(),
            ring.limbs()
        )));
    }
    ring.check_limb_words(words)
}

/// Checks a gather and returns the output ring.
pub(crate) fn check_gather(
    x: &PolyBatch,
    sources: &[Option<usize>],
    limbs: &Range<usize>,
) -> Result<Arc<Ring>> {
    if sources.is_empty() {
        return Err(Error::Shape("a gather of no polynomials".into()));
    }
    if let Some(bad) = sources.iter().flatten().find(|&&s| s >= x.batch) {
        return Err(Error::Shape(format!(
            "gather reads polynomial {bad} of a batch of {}",
            x.batch
        )));
    }
    if limbs.start == 0 && limbs.end == x.ring.limbs() {
        return Ok(x.ring.clone());
    }
    x.ring.sub_ring(limbs.clone())
}

/// Checks the parts of a concatenation and returns their ring and total count.
pub(crate) fn check_concat(parts: &[&PolyBatch]) -> Result<(Arc<Ring>, usize)> {
    let first = parts
        .first()
        .ok_or_else(|| Error::Shape("nothing to concatenate".into()))?;
    if let Some(p) = parts.iter().find(|p| !p.ring.same_as(&first.ring)) {
        return Err(Error::Shape(format!(
            "concatenating rings with primes {:?} and {:?}",
            first.ring.primes(),
            p.ring.primes()
        )));
    }
    Ok((first.ring.clone(), parts.iter().map(|p| p.batch).sum()))
}

/// Checks a ciphertext tensor product; returns the number of pairs.
pub(crate) fn check_tensor(a: &PolyBatch, b: &PolyBatch) -> Result<usize> {
    a.check_same_shape(b)?;
    if a.batch == 0 || !a.batch.is_multiple_of(2) {
        return Err(Error::Shape(format!(
            "{} polynomials do not form ciphertext pairs",
            a.batch
        )));
    }
    Ok(a.batch / 2)
}

/// The factor pairs `(a index, b index)` of output polynomial `c` of a tensor triple, relative
/// to the pair's first polynomial.
pub(crate) const TENSOR_TERMS: [&[(usize, usize)]; 3] = [&[(0, 0)], &[(0, 1), (1, 0)], &[(1, 1)]];

/// Checks a key-switching product and returns `(outputs per input, inputs M)`.
pub(crate) fn check_key_mul_acc(
    ext: &PolyBatch,
    key: &PolyBatch,
    digits: usize,
) -> Result<(usize, usize)> {
    if !ext.ring.same_as(&key.ring) {
        return Err(Error::Shape(
            "key and decomposed input are in different rings".into(),
        ));
    }
    if digits == 0
        || !ext.batch.is_multiple_of(digits)
        || !key.batch.is_multiple_of(digits)
        || key.batch == 0
    {
        return Err(Error::Shape(format!(
            "{} decomposed polynomials and a key of {} cannot form {digits} digits",
            ext.batch, key.batch
        )));
    }
    Ok((key.batch / digits, ext.batch / digits))
}

/// Checks `scaled_difference` operands; returns the first limb of `a` that `b` lines up with.
pub(crate) fn check_scaled_difference(
    a: &PolyBatch,
    b: &PolyBatch,
    offset: usize,
    scale: &[u32],
) -> Result<()> {
    let (pa, pb) = (a.ring.primes(), b.ring.primes());
    if a.batch != b.batch
        || a.ring.degree() != b.ring.degree()
        || offset + pb.len() > pa.len()
        || pa[offset..offset + pb.len()] != pb[..]
    {
        return Err(Error::Shape(format!(
            "cannot subtract {} polynomials over primes {pb:?} from limbs {offset}.. of {} over {pa:?}",
            b.batch, a.batch
        )));
    }
    check_limb_scalars(&b.ring, scale, "scale")
}
