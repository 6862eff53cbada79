//! Negacyclic NTT plans over `Z_p[X]/(X^N + 1)`.
//!
//! Convention (shared by both backends and by tfhe-ntt's `prime32`): the forward transform takes
//! coefficients in standard order and leaves evaluations in bit-reversed order; the inverse takes
//! bit-reversed evaluations back to standard order and includes the factor `N^{-1}`.
//! [`negacyclic_root`] is the one function that chooses the primitive 2N-th root ψ for each
//! (N, p); the twiddle tables hold `fwd[brv(k)] = ψ^k` and `inv[brv(k)] = ψ^{-k}`, each with its
//! Shoup companion. The CPU engine is tfhe-ntt; [`NttPlan::forward_reference`] is a plain
//! Cooley–Tukey loop over the same tables, which is also the algorithm of `shaders/ntt.wgsl`.

use super::degree::check_degree;
use super::modulus::Modulus;
use super::primes::is_prime;
use crate::{Error, ParamsError, Result};

/// Reverses the low `bits` bits of `x`.
#[inline]
pub fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

/// The primitive 2N-th root of unity ψ used for (N, p): starting from -1, take N's log2 square
/// roots, each by Tonelli–Shanks with the least quadratic non-residue. This is the choice
/// tfhe-ntt makes, so transforms agree with it word for word.
pub fn negacyclic_root(n: usize, p: u32) -> Result<u32> {
    check_degree(n)?;
    if !is_prime(p) {
        return Err(Error::Params(ParamsError::BadModulus {
            p: p.into(),
            why: "it is not prime",
        }));
    }
    if u64::from(p) % (2 * n as u64) != 1 {
        return Err(Error::Params(ParamsError::NotNttFriendly { p, n }));
    }
    let m = Modulus::new(p)?;
    let (mut q, mut s) = (u64::from(p) - 1, 0u32);
    while q % 2 == 0 {
        q /= 2;
        s += 1;
    }
    let z = (2..p)
        .find(|&z| m.pow(z, (u64::from(p) - 1) / 2) == p - 1)
        .expect("an odd prime has a non-residue");
    let sqrt = |a: u32| -> u32 {
        // Tonelli–Shanks; `a` is always a square here because p ≡ 1 (mod 2N).
        let (mut mm, mut c, mut t, mut r) = (s, m.pow(z, q), m.pow(a, q), m.pow(a, q.div_ceil(2)));
        loop {
            if t == 1 {
                return r;
            }
            let mut i = 0;
            let mut t_pow = t;
            while i < mm {
                t_pow = m.mul(t_pow, t_pow);
                i += 1;
                if t_pow == 1 {
                    break;
                }
            }
            let b = m.pow(c, 1u64 << (mm - i - 1));
            mm = i;
            c = m.mul(b, b);
            t = m.mul(t, c);
            r = m.mul(r, b);
        }
    };
    let mut root = p - 1;
    for _ in 0..n.trailing_zeros() {
        root = sqrt(root);
    }
    debug_assert_eq!(m.pow(root, n as u64), p - 1);
    Ok(root)
}

/// Twiddle tables and the CPU engine for one (N, p).
pub struct NttPlan {
    n: usize,
    modulus: Modulus,
    root: u32,
    fwd: Vec<u32>,
    fwd_shoup: Vec<u32>,
    inv: Vec<u32>,
    inv_shoup: Vec<u32>,
    n_inv: u32,
    n_inv_shoup: u32,
    engine: tfhe_ntt::prime32::Plan,
}

impl std::fmt::Debug for NttPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NttPlan")
            .field("n", &self.n)
            .field("p", &self.modulus.value())
            .finish()
    }
}

impl NttPlan {
    /// Builds the plan; fails for a bad degree or a prime that is not NTT-friendly for `n`.
    pub fn new(n: usize, p: u32) -> Result<Self> {
        let root = negacyclic_root(n, p)?;
        let modulus = Modulus::new(p)?;
        let bits = n.trailing_zeros();
        let root_inv = modulus.inv(root).expect("root is non-zero");
        let (mut fwd, mut inv) = (vec![0; n], vec![0; n]);
        let (mut w, mut w_inv) = (1u32, 1u32);
        for k in 0..n {
            let j = bit_reverse(k, bits);
            fwd[j] = w;
            inv[j] = w_inv;
            w = modulus.mul(w, root);
            w_inv = modulus.mul(w_inv, root_inv);
        }
        let shoups = |t: &[u32]| t.iter().map(|&w| modulus.shoup(w)).collect::<Vec<_>>();
        let n_inv = modulus
            .inv(n as u32 % p)
            .expect("n is invertible mod an odd prime");
        let engine = tfhe_ntt::prime32::Plan::try_new(n, p)
            .ok_or(Error::Params(ParamsError::NotNttFriendly { p, n }))?;
        Ok(Self {
            n,
            modulus,
            root,
            fwd_shoup: shoups(&fwd),
            inv_shoup: shoups(&inv),
            fwd,
            inv,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
            engine,
        })
    }

    /// Ring degree N.
    pub fn degree(&self) -> usize {
        self.n
    }

    /// The modulus.
    pub fn modulus(&self) -> Modulus {
        self.modulus
    }

    /// The primitive 2N-th root ψ.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// Forward twiddles `ψ^k` at `brv(k)` and their Shoup companions.
    pub fn forward_twiddles(&self) -> (&[u32], &[u32]) {
        (&self.fwd, &self.fwd_shoup)
    }

    /// Inverse twiddles `ψ^{-k}` at `brv(k)` and their Shoup companions.
    pub fn inverse_twiddles(&self) -> (&[u32], &[u32]) {
        (&self.inv, &self.inv_shoup)
    }

    /// `N^{-1} mod p` and its Shoup companion.
    pub fn n_inv(&self) -> (u32, u32) {
        (self.n_inv, self.n_inv_shoup)
    }

    /// Forward transform in place with the fast CPU engine (tfhe-ntt, SIMD chosen at run time).
    /// `a.len()` must be N and every word below p (the backends check this at their boundary).
    pub fn forward(&self, a: &mut [u32]) {
        self.engine.fwd(a);
    }

    /// Inverse transform in place, including the factor `N^{-1}`.
    pub fn inverse(&self, a: &mut [u32]) {
        self.engine.inv(a);
        self.engine.normalize(a);
    }

    /// `acc[i] = acc[i] + a[i] · b[i] mod p` with the CPU engine (SIMD chosen at run time).
    pub fn mul_accumulate(&self, acc: &mut [u32], a: &[u32], b: &[u32]) {
        self.engine.mul_accumulate(acc, a, b);
    }

    /// Forward transform by the textbook iterative Cooley–Tukey loop over this plan's tables:
    /// the algorithm of the WGSL kernels, kept as the reference the engine is checked against.
    pub fn forward_reference(&self, a: &mut [u32]) {
        assert_eq!(a.len(), self.n);
        let m = &self.modulus;
        let (mut t, mut groups) = (self.n, 1);
        while groups < self.n {
            t /= 2;
            for i in 0..groups {
                let (w, ws) = (self.fwd[groups + i], self.fwd_shoup[groups + i]);
                for j in 2 * i * t..2 * i * t + t {
                    let u = a[j];
                    let v = m.mul_shoup(a[j + t], w, ws);
                    a[j] = m.add(u, v);
                    a[j + t] = m.sub(u, v);
                }
            }
            groups *= 2;
        }
    }

    /// Inverse transform by the textbook Gentleman–Sande loop (the reference of the engine).
    pub fn inverse_reference(&self, a: &mut [u32]) {
        assert_eq!(a.len(), self.n);
        let m = &self.modulus;
        let (mut t, mut groups) = (1, self.n / 2);
        while groups >= 1 {
            for i in 0..groups {
                let (w, ws) = (self.inv[groups + i], self.inv_shoup[groups + i]);
                for j in 2 * i * t..2 * i * t + t {
                    let (u, v) = (a[j], a[j + t]);
                    a[j] = m.add(u, v);
                    a[j + t] = m.mul_shoup(m.sub(u, v), w, ws);
                }
            }
            t *= 2;
            groups /= 2;
        }
        for x in a.iter_mut() {
            *x = m.mul_shoup(*x, self.n_inv, self.n_inv_shoup);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::ntt_primes;

    #[test]
    fn root_has_order_2n() {
        for n in [1 << 10, 1 << 13, 1 << 16] {
            for p in ntt_primes(n, 30, 2, &[]).unwrap() {
                let m = Modulus::new(p).unwrap();
                let psi = negacyclic_root(n, p).unwrap();
                assert_eq!(m.pow(psi, n as u64), p - 1);
            }
        }
    }

    #[test]
    fn bad_plans_are_errors() {
        assert!(matches!(
            NttPlan::new(1 << 13, 1_073_741_827),
            Err(Error::Params(ParamsError::NotNttFriendly { .. }))
        ));
        assert!(matches!(
            NttPlan::new(1 << 13, 65537 * 3),
            Err(Error::Params(ParamsError::BadModulus { .. }))
        ));
        assert!(matches!(
            NttPlan::new(3000, 12289),
            Err(Error::Params(ParamsError::BadDegree { .. }))
        ));
        assert!(matches!(
            NttPlan::new(1 << 17, 786433),
            Err(Error::Params(ParamsError::BadDegree { .. }))
        ));
    }
}
