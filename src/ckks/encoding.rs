//! The CKKS encoder: complex vectors of N/2 slots ↔ integer polynomials through the canonical
//! embedding, slot j at the root ζ^(5^j) (ζ = e^(iπ/N)) so that X → X^5 rotates the slots by one.

use super::ciphertext::Plaintext;
use super::params::Parameters;
use crate::backend::Backend;
use crate::math::Modulus;
use crate::math::Ring;
use crate::{Error, Result};
use num_bigint::BigUint;
use num_complex::Complex64;
use rayon::prelude::*;
use std::sync::Arc;

/// Encodes and decodes vectors for one parameter set.
pub struct Encoder {
    params: Arc<Parameters>,
    /// Index t (root ζ^(2t+1)) of every slot, and of its conjugate.
    slot_index: Vec<usize>,
    conj_index: Vec<usize>,
    /// ω^k = e^(2πik/N) for the size-N transform.
    roots: Vec<Complex64>,
    /// ζ^k = e^(iπk/N): the twist between the negacyclic and cyclic transforms.
    twist: Vec<Complex64>,
}

impl Encoder {
    /// Slots per plaintext, N/2.
    /// The parameter set it encodes for.
    pub fn params(&self) -> &Arc<Parameters> {
        &self.params
    }

    pub fn slots(&self) -> usize {
        self.params.slots()
    }

    pub fn new(params: &Arc<Parameters>) -> Self {
        let n = params.degree();
        let two_n = 2 * n;
        let mut slot_index = Vec::with_capacity(n / 2);
        let mut conj_index = Vec::with_capacity(n / 2);
        let mut e = 1usize;
        for _ in 0..n / 2 {
            slot_index.push((e - 1) / 2);
            conj_index.push((two_n - e - 1) / 2);
            e = e * 5 % two_n;
        }
        let angle = |k: usize, m: usize| {
            let a = std::f64::consts::TAU * k as f64 / m as f64;
            Complex64::new(a.cos(), a.sin())
        };
        Self {
            params: params.clone(),
            slot_index,
            conj_index,
            roots: (0..n).map(|k| angle(k, n)).collect(),
            twist: (0..n).map(|k| angle(k, two_n)).collect(),
        }
    }

    /// Encodes real values (at most N/2; missing slots are zero) at `level` and `scale`, onto
    /// `backend`'s device.
    pub fn encode(
        &self,
        values: &[f64],
        level: usize,
        scale: f64,
        backend: &dyn Backend,
    ) -> Result<Plaintext> {
        let complex: Vec<Complex64> = values.iter().map(|&v| Complex64::new(v, 0.0)).collect();
        self.encode_complex(&complex, level, scale, backend)
    }

    /// Encodes complex values (at most N/2) at `level` and `scale`.
    pub fn encode_complex(
        &self,
        values: &[Complex64],
        level: usize,
        scale: f64,
        backend: &dyn Backend,
    ) -> Result<Plaintext> {
        let ring = self.params.ring_q(level)?.clone();
        let words = self.encode_words(values, &ring, level, scale)?;
        self.upload(&ring, 1, words, level, scale, backend)
    }

    /// Encodes several real vectors into one plaintext of `vectors.len()` polynomials (one
    /// upload and one batched NTT).
    pub fn encode_many(
        &self,
        vectors: &[Vec<f64>],
        level: usize,
        scale: f64,
        backend: &dyn Backend,
    ) -> Result<Plaintext> {
        if vectors.is_empty() {
            return Err(Error::Encoding("no vectors to encode".into()));
        }
        let ring = self.params.ring_q(level)?.clone();
        let mut words = vec![0u32; vectors.len() * ring.poly_words()];
        // One vector per task: each encoding is independent, so the words do not depend on
        // the thread count.
        words
            .par_chunks_mut(ring.poly_words())
            .zip(vectors.par_iter())
            .try_for_each(|(out, v)| -> Result<()> {
                let complex: Vec<Complex64> = v.iter().map(|&x| Complex64::new(x, 0.0)).collect();
                out.copy_from_slice(&self.encode_words(&complex, &ring, level, scale)?);
                Ok(())
            })?;
        self.upload(&ring, vectors.len(), words, level, scale, backend)
    }

    fn upload(
        &self,
        ring: &Arc<Ring>,
        count: usize,
        words: Vec<u32>,
        level: usize,
        scale: f64,
        backend: &dyn Backend,
    ) -> Result<Plaintext> {
        let mut poly = backend.upload_vec(ring, count, words)?;
        backend.ntt_forward(&mut poly)?;
        Ok(Plaintext {
            poly,
            level,
            scale,
            params_id: self.params.id(),
        })
    }

    /// One vector of reals encoded at `level` and `scale` on the host, in the NTT domain: the
    /// words [`encode_many`](Self::encode_many) gives that vector, for a caller that
    /// encrypts each as it is encoded.
    pub(crate) fn encode_host(&self, values: &[f64], level: usize, scale: f64) -> Result<Vec<u32>> {
        let ring = self.params.ring_q(level)?;
        let complex: Vec<Complex64> = values.iter().map(|&x| Complex64::new(x, 0.0)).collect();
        let mut words = self.encode_words(&complex, ring, level, scale)?;
        for (plan, row) in ring
            .plans()
            .iter()
            .zip(words.chunks_exact_mut(ring.degree()))
        {
            plan.forward(row);
        }
        Ok(words)
    }

    /// The coefficient-domain words of one encoded vector.
    fn encode_words(
        &self,
        values: &[Complex64],
        ring: &Ring,
        level: usize,
        scale: f64,
    ) -> Result<Vec<u32>> {
        let n = self.params.degree();
        if values.len() > n / 2 {
            return Err(Error::Encoding(format!(
                "{} values do not fit {} slots",
                values.len(),
                n / 2
            )));
        }
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(Error::Encoding(format!(
                "scale {scale} is not a finite number ≥ 1"
            )));
        }
        if let Some(v) = values
            .iter()
            .find(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(Error::Encoding(format!("value {v} is not finite")));
        }
        let mut v = vec![Complex64::new(0.0, 0.0); n];
        for (j, z) in values.iter().enumerate() {
            v[self.slot_index[j]] = *z;
            v[self.conj_index[j]] = z.conj();
        }
        self.transform(&mut v, true);
        let log_q: f64 = ring.primes().iter().map(|&p| f64::from(p).log2()).sum();
        let limit = 2f64.powf((log_q - 1.0).min(120.0));
        let mut coeffs = Vec::with_capacity(n);
        for (k, c) in v.iter().enumerate() {
            // m_k = Re(ζ^-k · (1/N) Σ_t v_t ω^-tk), scaled and rounded.
            let m = (c * self.twist[k].conj()).re / n as f64 * scale;
            if m.abs() >= limit {
                return Err(Error::Encoding(format!(
                    "a coefficient of {m:.3e} does not fit the {log_q:.0}-bit modulus of level {level}: lower the scale or the values"
                )));
            }
            coeffs.push(m.round() as i128);
        }
        let mut words = Vec::with_capacity(ring.poly_words());
        // Coefficients below 2^63 (all but huge scales) are reduced in i64, several times
        // faster than i128 division.
        let narrow: Option<Vec<i64>> = coeffs.iter().map(|&c| i64::try_from(c).ok()).collect();
        for l in 0..ring.limbs() {
            let p = ring.modulus(l).value();
            match &narrow {
                Some(c64) => {
                    words.extend(c64.iter().map(|&c| c.rem_euclid(i64::from(p)) as u32));
                }
                None => words.extend(coeffs.iter().map(|&c| c.rem_euclid(i128::from(p)) as u32)),
            }
        }
        Ok(words)
    }

    /// Decodes a host plaintext (from [`Decryptor::decrypt`](super::Decryptor::decrypt) or
    /// [`Plaintext::to_host`]) into its N/2 real parts.
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>> {
        Ok(self.decode_complex(pt)?.iter().map(|z| z.re).collect())
    }

    /// Decodes a host plaintext into its N/2 complex slots.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex64>> {
        self.params.check_id(pt.params_id, "plaintext")?;
        if pt.count() != 1 {
            return Err(Error::Shape(format!(
                "decode takes one encoded vector, this plaintext holds {}",
                pt.count()
            )));
        }
        let Some(words) = pt.poly.host_words() else {
            return Err(Error::WrongDevice {
                expected: "the host (use Plaintext::to_host)".into(),
                found: pt.poly.location(),
            });
        };
        let ring = pt.poly.ring.clone();
        let n = ring.degree();
        // The coefficients, limb by limb: the inverse transform the CPU backend runs.
        let mut words = words.to_vec();
        for (plan, limb) in ring.plans().iter().zip(words.chunks_mut(n)) {
            plan.inverse(limb);
        }
        let crt = CenteredCrt::new(&ring);
        let mut v: Vec<Complex64> = (0..n)
            .map(|k| {
                let residues: Vec<u32> = (0..ring.limbs()).map(|l| words[l * n + k]).collect();
                self.twist[k] * (crt.value(&residues) / pt.scale)
            })
            .collect();
        self.transform(&mut v, false);
        Ok(self.slot_index.iter().map(|&t| v[t]).collect())
    }

    /// In-place size-N DFT: `v_t ← Σ_k v_k ω^(±tk)` (minus sign when `inverse`).
    fn transform(&self, v: &mut [Complex64], inverse: bool) {
        let n = v.len();
        let bits = n.trailing_zeros();
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if i < j {
                v.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let step = n / len;
            for start in (0..n).step_by(len) {
                for j in 0..len / 2 {
                    let w = self.roots[j * step];
                    let w = if inverse { w.conj() } else { w };
                    let (a, b) = (v[start + j], v[start + j + len / 2] * w);
                    v[start + j] = a + b;
                    v[start + j + len / 2] = a - b;
                }
            }
            len *= 2;
        }
    }
}

/// Exact CRT to a centered value, in mixed radix (Garner): x = Σ a_i · Π_{k<i} q_k with
/// 0 ≤ a_i < q_i; compared with ⌊Q/2⌋ digit by digit and turned into an f64 from the top digit.
struct CenteredCrt {
    moduli: Vec<Modulus>,
    /// `[i][k]`: Π_{j<k} q_j mod q_i, for k < i.
    partial: Vec<Vec<u32>>,
    /// (Π_{j<i} q_j)^-1 mod q_i.
    inv: Vec<u32>,
    /// Mixed-radix digits of ⌊Q/2⌋.
    half: Vec<u32>,
    /// Π_{j<i} q_j as f64.
    weight: Vec<f64>,
}

impl CenteredCrt {
    fn new(ring: &Ring) -> Self {
        let moduli: Vec<Modulus> = (0..ring.limbs()).map(|l| ring.modulus(l)).collect();
        let partial: Vec<Vec<u32>> = moduli
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut acc = 1u32 % m.value();
                let mut row = Vec::with_capacity(i + 1);
                for q in &moduli[..i] {
                    row.push(acc);
                    acc = m.mul(acc, m.reduce(q.value()));
                }
                row.push(acc);
                row
            })
            .collect();
        let inv = moduli
            .iter()
            .enumerate()
            .map(|(i, m)| m.inv(partial[i][i]).expect("distinct primes are coprime"))
            .collect();
        let q: BigUint = moduli.iter().map(|m| BigUint::from(m.value())).product();
        let mut rest = q >> 1u32;
        let half = moduli
            .iter()
            .map(|m| {
                let d: u32 = (&rest % m.value()).try_into().expect("below the prime");
                rest /= m.value();
                d
            })
            .collect();
        let mut w = 1.0;
        let weight = moduli
            .iter()
            .map(|m| {
                let here = w;
                w *= f64::from(m.value());
                here
            })
            .collect();
        Self {
            moduli,
            partial,
            inv,
            half,
            weight,
        }
    }

    fn value(&self, residues: &[u32]) -> f64 {
        let mut digits = Vec::with_capacity(residues.len());
        for (i, m) in self.moduli.iter().enumerate() {
            let acc = digits
                .iter()
                .zip(&self.partial[i])
                .fold(0u32, |acc, (&a, &w)| m.add(acc, m.mul(m.reduce(a), w)));
            digits.push(m.mul(m.sub(residues[i], acc), self.inv[i]));
        }
        // x > ⌊Q/2⌋ (compared from the top digit) means x stands for x − Q = −((Q − 1 − x) + 1).
        let above = digits
            .iter()
            .rev()
            .zip(self.half.iter().rev())
            .find(|(a, h)| a != h)
            .is_some_and(|(a, h)| a > h);
        let sum = |f: &dyn Fn(usize, u32) -> f64| -> f64 {
            (0..digits.len())
                .rev()
                .map(|i| f(i, digits[i]) * self.weight[i])
                .sum()
        };
        if above {
            -(sum(&|i, a| f64::from(self.moduli[i].value() - 1 - a)) + 1.0)
        } else {
            sum(&|_, a| f64::from(a))
        }
    }
}

/// Precision of decoded values against expected ones, in bits (−log2 of an absolute error,
/// capped at 60 when they agree exactly).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Precision {
    /// From the mean absolute error: the figure CKKS papers and libraries usually report.
    pub mean_bits: f64,
    /// From the largest absolute error over all slots.
    pub min_bits: f64,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} bits (mean), {:.1} bits (worst slot)",
            self.mean_bits, self.min_bits
        )
    }
}

/// The precision of `got` against `expected` (compared pairwise over the shorter length).
pub fn precision(expected: &[f64], got: &[f64]) -> Precision {
    let errors: Vec<f64> = expected
        .iter()
        .zip(got)
        .map(|(e, g)| (e - g).abs())
        .collect();
    let bits = |err: f64| {
        if err == 0.0 {
            60.0
        } else {
            (-err.log2()).min(60.0)
        }
    };
    let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    Precision {
        mean_bits: bits(mean),
        min_bits: bits(errors.iter().copied().fold(0.0, f64::max)),
    }
}
