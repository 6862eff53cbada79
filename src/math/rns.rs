//! Residue number system bases: CRT composition to big integers and fast base conversion.

use super::modulus::Modulus;
use super::primes::is_prime;
use crate::{Error, ParamsError, Result};
use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};

/// A list of distinct word-sized primes `q_0 … q_{k-1}` with the CRT constants over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnsBasis {
    moduli: Vec<Modulus>,
    /// `(Q / q_i)^{-1} mod q_i` and its Shoup companion.
    q_hat_inv: Vec<(u32, u32)>,
}

impl RnsBasis {
    /// Builds a basis from distinct primes below 2^31.
    pub fn new(primes: &[u32]) -> Result<Self> {
        if primes.is_empty() {
            return Err(Error::Shape("an RNS basis needs at least one prime".into()));
        }
        let mut moduli = Vec::with_capacity(primes.len());
        for (i, &p) in primes.iter().enumerate() {
            if !is_prime(p) {
                return Err(Error::Params(ParamsError::BadModulus {
                    p: p.into(),
                    why: "it is not prime",
                }));
            }
            if primes[..i].contains(&p) {
                return Err(Error::Params(ParamsError::BadModulus {
                    p: p.into(),
                    why: "it appears twice in the basis",
                }));
            }
            moduli.push(Modulus::new(p)?);
        }
        let q_hat_inv = moduli
            .iter()
            .enumerate()
            .map(|(i, qi)| {
                let q_hat = moduli
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .fold(1u32, |acc, (_, qj)| qi.mul(acc, qi.reduce(qj.value())));
                let inv = qi.inv(q_hat).expect("distinct primes are coprime");
                (inv, qi.shoup(inv))
            })
            .collect();
        Ok(Self { moduli, q_hat_inv })
    }

    /// `(Q / q_i)^{-1} mod q_i` and its Shoup companion, per limb.
    pub fn q_hat_inv(&self) -> &[(u32, u32)] {
        &self.q_hat_inv
    }

    /// The moduli, in order.
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// The primes, in order.
    pub fn primes(&self) -> Vec<u32> {
        self.moduli.iter().map(Modulus::value).collect()
    }

    /// Number of primes.
    pub fn len(&self) -> usize {
        self.moduli.len()
    }

    /// Never true: a basis has at least one prime.
    pub fn is_empty(&self) -> bool {
        self.moduli.is_empty()
    }

    /// The product Q of all primes.
    pub fn product(&self) -> BigUint {
        self.moduli
            .iter()
            .fold(BigUint::from(1u32), |acc, m| acc * m.value())
    }

    /// Total bit size of Q.
    pub fn bits(&self) -> u64 {
        self.product().bits()
    }

    /// Residues of a big integer (reduced mod Q first).
    pub fn decompose(&self, x: &BigUint) -> Vec<u32> {
        self.moduli
            .iter()
            .map(|m| (x % m.value()).to_u32().expect("residue fits"))
            .collect()
    }

    /// The unique `x` in `[0, Q)` with the given residues (Chinese remainder theorem).
    pub fn compose(&self, residues: &[u32]) -> Result<BigUint> {
        if residues.len() != self.len() {
            return Err(Error::Shape(format!(
                "{} residues for a basis of {} primes",
                residues.len(),
                self.len()
            )));
        }
        let q = self.product();
        let mut x = BigUint::zero();
        for ((m, &(inv, inv_shoup)), &r) in self.moduli.iter().zip(&self.q_hat_inv).zip(residues) {
            if r >= m.value() {
                return Err(Error::Unreduced {
                    index: 0,
                    word: r,
                    p: m.value(),
                });
            }
            let y = m.mul_shoup(r, inv, inv_shoup);
            x += (&q / m.value()) * y;
        }
        Ok(x % q)
    }
}

/// Fast (approximate) base conversion from basis Q to basis P:
/// `y_j = Σ_i [x_i (Q/q_i)^{-1}]_{q_i} · (Q/q_i) mod p_j`, which equals `x + e·Q (mod p_j)` for
/// some `0 ≤ e < len(Q)` — the conversion used by hybrid key switching and rescaling.
#[derive(Clone, Debug)]
pub struct BaseConverter {
    from: RnsBasis,
    to: Vec<Modulus>,
    /// `(Q / q_i) mod p_j`, indexed `[j][i]`.
    q_hat_mod_p: Vec<Vec<u32>>,
}

impl BaseConverter {
    /// Prepares the conversion constants.
    pub fn new(from: &RnsBasis, to: &RnsBasis) -> Self {
        let q_hat_mod_p = to
            .moduli()
            .iter()
            .map(|pj| {
                (0..from.len())
                    .map(|i| {
                        from.moduli()
                            .iter()
                            .enumerate()
                            .filter(|&(k, _)| k != i)
                            .fold(1u32, |acc, (_, qk)| pj.mul(acc, pj.reduce(qk.value())))
                    })
                    .collect()
            })
            .collect();
        Self {
            from: from.clone(),
            to: to.moduli().to_vec(),
            q_hat_mod_p,
        }
    }

    /// The source basis.
    pub fn from(&self) -> &RnsBasis {
        &self.from
    }

    /// The target moduli.
    pub fn to(&self) -> &[Modulus] {
        &self.to
    }

    /// `(Q / q_i) mod p_j`, indexed `[j][i]`.
    pub fn q_hat_mod_p(&self) -> &[Vec<u32>] {
        &self.q_hat_mod_p
    }

    /// Converts polynomials: `input` is `[from limbs][n]`, `output` is `[to limbs][n]`.
    pub fn convert(&self, n: usize, input: &[u32], output: &mut [u32]) -> Result<()> {
        let (k, l) = (self.from.len(), self.to.len());
        if input.len() != k * n || output.len() != l * n {
            return Err(Error::Shape(format!(
                "base conversion of {k}→{l} limbs at n = {n} got {} input and {} output words",
                input.len(),
                output.len()
            )));
        }
        let mut y = vec![0u32; k * n];
        for (i, (m, &(inv, inv_shoup))) in self
            .from
            .moduli
            .iter()
            .zip(&self.from.q_hat_inv)
            .enumerate()
        {
            for (dst, &x) in y[i * n..(i + 1) * n]
                .iter_mut()
                .zip(&input[i * n..(i + 1) * n])
            {
                if x >= m.value() {
                    return Err(Error::Unreduced {
                        index: i * n,
                        word: x,
                        p: m.value(),
                    });
                }
                *dst = m.mul_shoup(x, inv, inv_shoup);
            }
        }
        for (j, pj) in self.to.iter().enumerate() {
            let row = &self.q_hat_mod_p[j];
            for c in 0..n {
                let acc: u128 = (0..k)
                    .map(|i| u128::from(y[i * n + c]) * u128::from(row[i]))
                    .sum();
                output[j * n + c] = (acc % u128::from(pj.value())) as u32;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::ntt_primes;

    #[test]
    fn compose_inverts_decompose() {
        let basis = RnsBasis::new(&ntt_primes(1 << 12, 30, 4, &[]).unwrap()).unwrap();
        let q = basis.product();
        for seed in 0u64..50 {
            let x = (&q * BigUint::from(seed * 7919 + 13)) / BigUint::from(401u32) % &q;
            assert_eq!(basis.compose(&basis.decompose(&x)).unwrap(), x);
        }
        assert!(basis.compose(&[1, 2]).is_err());
    }

    #[test]
    fn fast_base_conversion_is_exact_up_to_multiples_of_q() {
        let n = 1 << 10;
        let qs = ntt_primes(n, 28, 3, &[]).unwrap();
        let ps = ntt_primes(n, 30, 2, &[]).unwrap();
        let (from, to) = (RnsBasis::new(&qs).unwrap(), RnsBasis::new(&ps).unwrap());
        let q = from.product();
        let xs: Vec<BigUint> = (0..n as u64)
            .map(|i| (&q * BigUint::from(i * i + 3)) / BigUint::from(n as u64 * n as u64 + 7) % &q)
            .collect();
        let mut input = vec![0u32; 3 * n];
        for (c, x) in xs.iter().enumerate() {
            for (i, r) in from.decompose(x).into_iter().enumerate() {
                input[i * n + c] = r;
            }
        }
        let mut out = vec![0u32; 2 * n];
        BaseConverter::new(&from, &to)
            .convert(n, &input, &mut out)
            .unwrap();
        for (c, x) in xs.iter().enumerate() {
            let ok = (0u32..3).any(|e| {
                let v = x + &q * e;
                to.decompose(&v) == [out[c], out[n + c]]
            });
            assert!(ok, "coefficient {c}");
        }
    }

    #[test]
    fn bad_bases_are_errors() {
        assert!(RnsBasis::new(&[]).is_err());
        assert!(RnsBasis::new(&[12289, 12289]).is_err());
        assert!(RnsBasis::new(&[12289, 15]).is_err());
    }
}
