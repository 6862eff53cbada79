//! CKKS parameters: a literal (sizes, scale, security level) and the immutable [`Parameters`]
//! built from it, with generated primes, the rings of every level and the security check.

use crate::math::Ring;
use crate::math::{check_degree, ntt_primes};
use crate::{Error, ParamsError, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;

/// The security a parameter set must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityLevel {
    /// 128-bit classical security for ternary secrets (HomomorphicEncryption.org standard).
    Classical128,
    /// No check at all: for tests and experiments only, never for real data.
    None,
}

/// Most ciphertext primes a set may have (the 128-bit table allows at most 44 at N = 2^15).
pub const MAX_Q_PRIMES: usize = 64;

/// Largest log2(QP) for 128-bit classical security with ternary secrets, N = 2^10 … 2^15
/// (HomomorphicEncryption.org security standard, table of uniform ternary secrets).
pub fn max_log_qp_128(log_n: u32) -> Option<u32> {
    match log_n {
        10 => Some(27),
        11 => Some(54),
        12 => Some(109),
        13 => Some(218),
        14 => Some(438),
        15 => Some(881),
        _ => None,
    }
}

/// What a parameter set is made of: plain data that [`Parameters::new`] turns into primes and
/// rings, checking security.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParameterLiteral {
    /// log2 of the ring degree N (10 to 16); N/2 slots.
    pub log_n: u32,
    /// Bit sizes of the ciphertext primes q_0 … q_L (20 to 31 each); level l keeps q_0 … q_l.
    pub q_bits: Vec<u32>,
    /// Bit sizes of the special primes P of hybrid key switching (their count is the digit size).
    pub p_bits: Vec<u32>,
    /// log2 of the default scale.
    pub log_scale: u32,
    /// The security the set must reach.
    pub security: SecurityLevel,
}

/// The named parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// N = 2^13 for the CryptoNets network: q = 30 + 5×24 bits (five rescalings at scale 2^24),
    /// one 31-bit special prime: log2(QP) ≈ 181 ≤ 218.
    CryptoNets8192,
    /// N = 2^14 with more depth: q = 31 + 12×26 bits at scale 2^26, two 31-bit special primes:
    /// log2(QP) ≈ 405 ≤ 438.
    Deep16384,
    /// N = 2^15 for deep networks: q = 31 + 28×26 bits at scale 2^26, three 31-bit special
    /// primes: log2(QP) ≈ 852 ≤ 881.
    Deep32768,
}

impl Preset {
    /// Every preset, smallest ring first.
    pub const ALL: [Preset; 3] = [Preset::CryptoNets8192, Preset::Deep16384, Preset::Deep32768];

    /// The preset's name: `cryptonets8192`, `deep16384` or `deep32768`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::CryptoNets8192 => "cryptonets8192",
            Preset::Deep16384 => "deep16384",
            Preset::Deep32768 => "deep32768",
        }
    }

    /// The preset of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset with its ciphertext chain cut to q_0 … q_`levels`, for a network that
    /// uses fewer levels than the preset holds: every ciphertext and key then has fewer limbs,
    /// so every stage does less work, at the same security (log2(QP) only shrinks) and with the
    /// same primes (the cut chain is the preset's first `levels + 1` primes, P unchanged).
    pub fn literal_with_levels(self, levels: usize) -> Result<ParameterLiteral> {
        let mut literal = self.literal();
        let most = literal.q_bits.len() - 1;
        if levels > most {
            return Err(Error::Params(ParamsError::Unsupported(format!(
                "{} levels: the preset {} has {most}",
                levels,
                self.name()
            ))));
        }
        literal.q_bits.truncate(levels + 1);
        Ok(literal)
    }

    /// The preset `literal` is, whole or with its chain cut ([`literal_with_levels`]).
    ///
    /// [`literal_with_levels`]: Self::literal_with_levels
    pub fn of(literal: &ParameterLiteral) -> Option<Self> {
        Self::ALL.into_iter().find(|p| {
            let levels = literal.q_bits.len().wrapping_sub(1);
            p.literal_with_levels(levels)
                .is_ok_and(|cut| cut == *literal)
        })
    }

    /// The preset's literal.
    pub fn literal(self) -> ParameterLiteral {
        match self {
            Preset::CryptoNets8192 => ParameterLiteral {
                log_n: 13,
                q_bits: vec![30, 24, 24, 24, 24, 24],
                p_bits: vec![31],
                log_scale: 24,
                security: SecurityLevel::Classical128,
            },
            Preset::Deep16384 => ParameterLiteral {
                log_n: 14,
                q_bits: [31].into_iter().chain([26; 12]).collect(),
                p_bits: vec![31, 31],
                log_scale: 26,
                security: SecurityLevel::Classical128,
            },
            Preset::Deep32768 => ParameterLiteral {
                log_n: 15,
                q_bits: [31].into_iter().chain([26; 28]).collect(),
                p_bits: vec![31, 31, 31],
                log_scale: 26,
                security: SecurityLevel::Classical128,
            },
        }
    }
}

/// An immutable CKKS parameter set: primes, rings per level, and an identity that every key,
/// plaintext and ciphertext carries so that mixing sets is an error.
#[derive(Debug)]
pub struct Parameters {
    literal: ParameterLiteral,
    q: Vec<u32>,
    p: Vec<u32>,
    /// `Q_l` for every level l.
    rings_q: Vec<Arc<Ring>>,
    /// `[P, Q_l]` (special primes first) for every level l.
    rings_ext: Vec<Arc<Ring>>,
    id: u64,
}

impl Parameters {
    /// Builds a parameter set from a preset.
    pub fn preset(preset: Preset) -> Result<Arc<Self>> {
        Self::new(preset.literal())
    }

    /// Generates the primes (largest of each size first, all distinct), builds the rings and
    /// checks log2(QP) against the security table.
    pub fn new(literal: ParameterLiteral) -> Result<Arc<Self>> {
        let n = checked_degree(&literal)?;
        let alpha = literal.p_bits.len();
        let (q, p) = generate_primes(n, &literal)?;
        // Key-switching noise is divided by P: P must be at least as large as every digit.
        let digit_bits = literal
            .q_bits
            .chunks(alpha)
            .map(|c| c.iter().sum::<u32>())
            .max()
            .unwrap_or(0);
        if literal.p_bits.iter().sum::<u32>() < digit_bits {
            return Err(Error::Params(ParamsError::Unsupported(format!(
                "the special primes ({} bits) must be at least as large as a key-switching digit ({digit_bits} bits)",
                literal.p_bits.iter().sum::<u32>()
            ))));
        }
        let full: Vec<u32> = p.iter().chain(&q).copied().collect();
        let ring_full = Ring::new(n, &full)?;
        let mut rings_q = Vec::new();
        let mut rings_ext = Vec::new();
        for level in 0..q.len() {
            let q_limbs: Vec<usize> = (alpha..alpha + level + 1).collect();
            rings_q.push(ring_full.select(&q_limbs)?);
            rings_ext.push(ring_full.sub_ring(0..alpha + level + 1)?);
        }
        let id = fingerprint(n, &q, &p, literal.log_scale);
        Ok(Arc::new(Self {
            literal,
            q,
            p,
            rings_q,
            rings_ext,
            id,
        }))
    }

    /// The literal this set was built from.
    pub fn literal(&self) -> &ParameterLiteral {
        &self.literal
    }

    /// Ring degree N.
    pub fn degree(&self) -> usize {
        1 << self.literal.log_n
    }

    /// Complex slots per ciphertext (N/2).
    pub fn slots(&self) -> usize {
        self.degree() / 2
    }

    /// The highest level (fresh ciphertexts): the number of ciphertext primes minus one.
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    /// The ciphertext primes q_0 … q_L.
    pub fn q_primes(&self) -> &[u32] {
        &self.q
    }

    /// The special primes.
    pub fn p_primes(&self) -> &[u32] {
        &self.p
    }

    /// The default scale 2^log_scale.
    pub fn default_scale(&self) -> f64 {
        2f64.powi(self.literal.log_scale as i32)
    }

    /// log2(QP): the total modulus size the security check is made on.
    pub fn log_qp(&self) -> f64 {
        self.q
            .iter()
            .chain(&self.p)
            .map(|&p| f64::from(p).log2())
            .sum()
    }

    /// A 64-bit fingerprint of N, the primes and the scale; carried by everything made with
    /// this set and checked whenever two things meet.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The ring of ciphertexts at `level`.
    pub fn ring_q(&self, level: usize) -> Result<&Arc<Ring>> {
        self.rings_q.get(level).ok_or_else(|| {
            Error::Mismatch(format!(
                "level {level} does not exist (the highest is {})",
                self.max_level()
            ))
        })
    }

    /// The key-switching ring at `level`: the special primes, then q_0 … q_l.
    pub(crate) fn ring_ext(&self, level: usize) -> &Arc<Ring> {
        &self.rings_ext[level]
    }

    /// The full key ring: the special primes, then every ciphertext prime.
    pub(crate) fn ring_keys(&self) -> &Arc<Ring> {
        &self.rings_ext[self.max_level()]
    }

    /// Number of special primes (the digit size of key switching).
    pub fn special_primes(&self) -> usize {
        self.p.len()
    }

    /// The key-switching digits at `level`: ranges of q-limbs, `special_primes()` limbs each.
    pub(crate) fn digits(&self, level: usize) -> Vec<Range<usize>> {
        let alpha = self.p.len();
        (0..=level)
            .step_by(alpha)
            .map(|s| s..(s + alpha).min(level + 1))
            .collect()
    }

    /// The Galois element of a rotation by `step` slots towards slot 0 (negative: away):
    /// 5^step mod 2N.
    pub fn galois_element(&self, step: i64) -> usize {
        let slots = self.slots() as i64;
        let two_n = 2 * self.degree() as u64;
        let mut k = step.rem_euclid(slots) as u64;
        let (mut g, mut base) = (1u64, 5u64);
        while k > 0 {
            if k & 1 == 1 {
                g = g * base % two_n;
            }
            base = base * base % two_n;
            k >>= 1;
        }
        g as usize
    }

    /// The Galois element of complex conjugation: 2N − 1.
    pub fn conjugation_element(&self) -> usize {
        2 * self.degree() - 1
    }

    /// The rule for the scale of a ciphertext at `level`: a finite number with
    /// `1 ≤ scale < Q_level / 2`, where `Q_level = q_0 ⋯ q_level`. Below 1 the encoded values
    /// would be rounded away; at `Q_level / 2` even a value of magnitude 1 wraps around the
    /// modulus. Every scale the encoder and evaluator produce for values that still decrypt
    /// meets it; readers refuse any other.
    pub fn check_scale(&self, level: usize, scale: f64) -> Result<()> {
        let log_q: f64 = self
            .q
            .get(..=level)
            .ok_or_else(|| Error::Mismatch(format!("level {level} does not exist")))?
            .iter()
            .map(|&q| f64::from(q).log2())
            .sum();
        if !(scale.is_finite() && scale >= 1.0 && scale.log2() < log_q - 1.0) {
            return Err(Error::Mismatch(format!(
                "scale {scale:e} at level {level}: a scale must be at least 1 and below \
                 Q_{level}/2 = 2^{:.1}",
                log_q - 1.0
            )));
        }
        Ok(())
    }

    /// Checks that something made with parameter set `id` belongs to this one.
    pub(crate) fn check_id(&self, id: u64, what: &str) -> Result<()> {
        if id != self.id {
            return Err(Error::Mismatch(format!(
                "{what} belongs to another parameter set ({id:#018x}, expected {:#018x})",
                self.id
            )));
        }
        Ok(())
    }
}

/// FNV-1a over the set's defining numbers.
fn fingerprint(n: usize, q: &[u32], p: &[u32], log_scale: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(n as u64);
    eat(q.len() as u64);
    q.iter().for_each(|&v| eat(v.into()));
    eat(p.len() as u64);
    p.iter().for_each(|&v| eat(v.into()));
    eat(log_scale.into());
    h
}

/// The ring degree of `literal`, once its prime counts and sizes, scale and (when asked)
/// 128-bit security are within what hegpu supports.
fn checked_degree(literal: &ParameterLiteral) -> Result<usize> {
    let n = 1usize
        .checked_shl(literal.log_n)
        .ok_or(Error::Params(ParamsError::BadDegree { n: 0 }))?;
    check_degree(n)?;
    if literal.q_bits.is_empty() || literal.p_bits.is_empty() {
        return Err(Error::Params(ParamsError::Unsupported(
            "CKKS needs at least one ciphertext prime and one special prime".into(),
        )));
    }
    if literal.q_bits.len() > MAX_Q_PRIMES {
        return Err(Error::Params(ParamsError::Unsupported(format!(
            "{} ciphertext primes; at most {MAX_Q_PRIMES}",
            literal.q_bits.len()
        ))));
    }
    if let Some(&b) = literal
        .q_bits
        .iter()
        .chain(&literal.p_bits)
        .find(|&&b| !(20..=31).contains(&b))
    {
        return Err(Error::Params(ParamsError::Unsupported(format!(
            "prime sizes must be 20 to 31 bits, not {b}"
        ))));
    }
    let alpha = literal.p_bits.len();
    if alpha > crate::backend::MAX_CONVERT_SOURCE_LIMBS {
        return Err(Error::Params(ParamsError::Unsupported(format!(
            "at most {} special primes",
            crate::backend::MAX_CONVERT_SOURCE_LIMBS
        ))));
    }
    if literal.log_scale == 0 || literal.log_scale > 60 {
        return Err(Error::Params(ParamsError::Unsupported(format!(
            "log2 of the scale must be 1 to 60, not {}",
            literal.log_scale
        ))));
    }
    let bits_total: u32 = literal.q_bits.iter().chain(&literal.p_bits).sum();
    if literal.security == SecurityLevel::Classical128 {
        match max_log_qp_128(literal.log_n) {
            Some(max) if bits_total <= max => {}
            Some(max) => {
                return Err(Error::Params(ParamsError::Insecure {
                    n,
                    log_qp: bits_total,
                    max,
                }));
            }
            None => {
                return Err(Error::Params(ParamsError::Unsupported(format!(
                    "the security table has no entry for N = 2^{}; use N = 2^10 … 2^15",
                    literal.log_n
                ))));
            }
        }
    }
    Ok(n)
}

/// The ciphertext and special primes of `literal`'s sizes for degree `n`: the largest of each
/// size first, all distinct.
fn generate_primes(n: usize, literal: &ParameterLiteral) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut primes: Vec<u32> = Vec::new();
    let take = |bits: u32, primes: &mut Vec<u32>| -> Result<u32> {
        let p = ntt_primes(n, bits, 1, primes)?[0];
        primes.push(p);
        Ok(p)
    };
    let mut q = Vec::new();
    for &b in &literal.q_bits {
        q.push(take(b, &mut primes)?);
    }
    let mut p = Vec::new();
    for &b in &literal.p_bits {
        p.push(take(b, &mut primes)?);
    }
    Ok((q, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_secure_and_distinct() {
        for preset in Preset::ALL {
            let params = Parameters::preset(preset).unwrap();
            let max = max_log_qp_128(params.literal().log_n).unwrap();
            assert!(params.log_qp() <= f64::from(max), "{preset:?}");
            let mut all: Vec<u32> = params.q_primes().to_vec();
            all.extend(params.p_primes());
            let len = all.len();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), len);
        }
    }

    #[test]
    fn a_cut_chain_is_the_presets_first_primes() {
        for preset in Preset::ALL {
            let whole = Parameters::preset(preset).unwrap();
            for levels in [1, whole.max_level() / 2, whole.max_level()] {
                let cut = Parameters::new(preset.literal_with_levels(levels).unwrap()).unwrap();
                assert_eq!(cut.max_level(), levels);
                assert_eq!(cut.q_primes(), &whole.q_primes()[..=levels], "{preset:?}");
                assert_eq!(cut.p_primes(), whole.p_primes());
                assert!(cut.log_qp() < whole.log_qp() || levels == whole.max_level());
                assert_eq!(Preset::of(cut.literal()), Some(preset));
            }
            assert!(preset.literal_with_levels(whole.max_level() + 1).is_err());
        }
        let mut other = Preset::Deep16384.literal();
        other.log_scale = 25;
        assert_eq!(Preset::of(&other), None);
        other.log_scale = 26;
        other.q_bits[3] = 27;
        assert_eq!(Preset::of(&other), None);
    }

    #[test]
    fn insecure_sets_are_refused_unless_asked_for() {
        let mut lit = Preset::CryptoNets8192.literal();
        lit.q_bits = vec![31; 7];
        assert!(matches!(
            Parameters::new(lit.clone()),
            Err(Error::Params(ParamsError::Insecure { .. }))
        ));
        lit.security = SecurityLevel::None;
        assert!(Parameters::new(lit).is_ok());
    }

    #[test]
    fn digits_cover_the_level() {
        let params = Parameters::preset(Preset::Deep16384).unwrap();
        assert_eq!(params.digits(4), vec![0..2, 2..4, 4..5]);
        assert_eq!(params.digits(12).len(), 7);
    }
}
