//! Arithmetic modulo a word-sized prime, exactly as both devices do it.
//!
//! Every public value is fully reduced, in `[0, p)`. Products with a known multiplicand use
//! Shoup's precomputed quotient; products of two variables use Montgomery reduction with
//! R = 2^32 followed by a Shoup multiplication by R mod p, which is what the WGSL prelude does
//! (`shaders/prelude.wgsl`). [`mul_wide`] is the four-16×16-partial-product multiply the
//! shaders use, kept here so it can be checked against `u64` on the CPU.

use crate::{Error, ParamsError, Result};

/// A prime modulus `p` with `2 < p < 2^31` and the constants its reductions need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Modulus {
    p: u32,
    /// `-p^{-1} mod 2^32`, for Montgomery reduction.
    p_inv_neg: u32,
    /// `2^32 mod p`, to leave the Montgomery domain with one Shoup multiplication.
    r_mod_p: u32,
    /// Shoup companion of `r_mod_p`.
    r_mod_p_shoup: u32,
}

impl Modulus {
    /// Largest supported modulus bound: every prime is below 2^31.
    pub const MAX_BITS: u32 = 31;

    /// Builds a modulus. `p` must be odd, at least 3 and below 2^31 (primality is checked where
    /// it matters: NTT plans and RNS bases).
    pub fn new(p: u32) -> Result<Self> {
        if p < 3 || p.is_multiple_of(2) {
            return Err(Error::Params(ParamsError::BadModulus {
                p: p.into(),
                why: "it must be odd and at least 3",
            }));
        }
        if p >= 1 << Self::MAX_BITS {
            return Err(Error::Params(ParamsError::BadModulus {
                p: p.into(),
                why: "it must be below 2^31",
            }));
        }
        // Newton iteration for p^{-1} mod 2^32: each step doubles the correct low bits.
        let mut inv: u32 = p;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(p.wrapping_mul(inv)));
        }
        debug_assert_eq!(p.wrapping_mul(inv), 1);
        let r_mod_p = ((1u64 << 32) % u64::from(p)) as u32;
        Ok(Self {
            p,
            p_inv_neg: inv.wrapping_neg(),
            r_mod_p,
            r_mod_p_shoup: shoup(r_mod_p, p),
        })
    }

    /// The prime itself.
    #[inline]
    pub fn value(&self) -> u32 {
        self.p
    }

    /// Number of bits of `p`.
    pub fn bits(&self) -> u32 {
        32 - self.p.leading_zeros()
    }

    /// `-p^{-1} mod 2^32` (the Montgomery constant the shaders receive).
    pub fn p_inv_neg(&self) -> u32 {
        self.p_inv_neg
    }

    /// `2^32 mod p` and its Shoup companion (the shaders receive both).
    pub fn r_mod_p(&self) -> (u32, u32) {
        (self.r_mod_p, self.r_mod_p_shoup)
    }

    /// `x mod p` for any word.
    #[inline]
    pub fn reduce(&self, x: u32) -> u32 {
        x % self.p
    }

    /// `x mod p` for any 64-bit value.
    #[inline]
    pub fn reduce_u64(&self, x: u64) -> u32 {
        (x % u64::from(self.p)) as u32
    }

    /// `(a + b) mod p` for reduced inputs.
    #[inline]
    pub fn add(&self, a: u32, b: u32) -> u32 {
        let s = a + b; // < 2^32 since both are below 2^31
        if s >= self.p { s - self.p } else { s }
    }

    /// `(a - b) mod p` for reduced inputs.
    #[inline]
    pub fn sub(&self, a: u32, b: u32) -> u32 {
        if a >= b { a - b } else { a + self.p - b }
    }

    /// `-a mod p` for a reduced input.
    #[inline]
    pub fn neg(&self, a: u32) -> u32 {
        if a == 0 { 0 } else { self.p - a }
    }

    /// `(a * b) mod p` with a 64-bit product: the plain oracle.
    #[inline]
    pub fn mul(&self, a: u32, b: u32) -> u32 {
        (u64::from(a) * u64::from(b) % u64::from(self.p)) as u32
    }

    /// Shoup companion of a known multiplicand `w < p`: `floor(w * 2^32 / p)`.
    #[inline]
    pub fn shoup(&self, w: u32) -> u32 {
        shoup(w, self.p)
    }

    /// `a * w mod p` in `[0, 2p)`, given `w_shoup = self.shoup(w)`; `a` may be any word.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u32, w: u32, w_shoup: u32) -> u32 {
        let q = ((u64::from(a) * u64::from(w_shoup)) >> 32) as u32;
        a.wrapping_mul(w).wrapping_sub(q.wrapping_mul(self.p))
    }

    /// `a * w mod p`, fully reduced, given `w_shoup = self.shoup(w)`.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u32, w: u32, w_shoup: u32) -> u32 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.p { r - self.p } else { r }
    }

    /// Montgomery reduction of a 64-bit value `x < p * 2^32`: returns `x * 2^-32 mod p`,
    /// fully reduced, computed the way the shaders do it (high and low words only).
    #[inline]
    pub fn montgomery_reduce(&self, lo: u32, hi: u32) -> u32 {
        let m = lo.wrapping_mul(self.p_inv_neg);
        // lo + low(m * p) is 0 mod 2^32; it carries exactly when lo != 0.
        let carry = u32::from(lo != 0);
        let t = hi + mul_wide(m, self.p).1 + carry; // < 2p < 2^32
        if t >= self.p { t - self.p } else { t }
    }

    /// `(a * b) mod p` for two reduced variables, by the shaders' method: Montgomery reduction
    /// of the 64-bit product (built from 16×16 partial products), then a Shoup multiplication by
    /// `2^32 mod p` to leave the Montgomery domain. Equal to [`Modulus::mul`] for every input.
    #[inline]
    pub fn mul_montgomery(&self, a: u32, b: u32) -> u32 {
        let (lo, hi) = mul_wide(a, b);
        let t = self.montgomery_reduce(lo, hi);
        self.mul_shoup(t, self.r_mod_p, self.r_mod_p_shoup)
    }

    /// `base^exp mod p`.
    pub fn pow(&self, base: u32, mut exp: u64) -> u32 {
        let mut result = 1 % self.p;
        let mut b = self.reduce(base);
        while exp > 0 {
            if exp & 1 == 1 {
                result = self.mul(result, b);
            }
            b = self.mul(b, b);
            exp >>= 1;
        }
        result
    }

    /// Multiplicative inverse for prime `p`; `None` for 0.
    pub fn inv(&self, a: u32) -> Option<u32> {
        let a = self.reduce(a);
        (a != 0).then(|| self.pow(a, u64::from(self.p) - 2))
    }
}

/// `floor(w * 2^32 / p)`.
#[inline]
fn shoup(w: u32, p: u32) -> u32 {
    ((u64::from(w) << 32) / u64::from(p)) as u32
}

/// Full 32×32→64 product as (low word, high word), built from four 16×16 partial products:
/// the method of the WGSL prelude, where no 64-bit integers exist.
#[inline]
pub fn mul_wide(a: u32, b: u32) -> (u32, u32) {
    let (a0, a1) = (a & 0xffff, a >> 16);
    let (b0, b1) = (b & 0xffff, b >> 16);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    let hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    (a.wrapping_mul(b), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(seed: u64, count: usize) -> Vec<u32> {
        // SplitMix64: a tiny seeded generator for unit tests of this module.
        let mut s = seed;
        (0..count)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u32
            })
            .collect()
    }

    #[test]
    fn mul_wide_matches_u64() {
        let w = words(1, 20_000);
        let edges = [0, 1, 0xffff, 0x1_0000, u32::MAX, u32::MAX - 1, 1 << 31];
        for pair in w.chunks(2).map(|c| (c[0], c[1])).chain(
            edges
                .iter()
                .flat_map(|&a| edges.iter().map(move |&b| (a, b))),
        ) {
            let full = u64::from(pair.0) * u64::from(pair.1);
            assert_eq!(mul_wide(pair.0, pair.1), (full as u32, (full >> 32) as u32));
        }
    }

    #[test]
    fn every_reduction_matches_u64() {
        for p in [
            3u32, 65537, 786433, 132120577, 1073479681, 2147352577, 2147483647,
        ] {
            let m = Modulus::new(p).unwrap();
            let mut samples: Vec<u32> = words(u64::from(p), 4000)
                .into_iter()
                .map(|x| x % p)
                .collect();
            samples.extend([0, 1, p - 1, p / 2]);
            for pair in samples.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let want = (u64::from(a) * u64::from(b) % u64::from(p)) as u32;
                assert_eq!(m.mul(a, b), want);
                assert_eq!(m.mul_montgomery(a, b), want, "montgomery p={p} a={a} b={b}");
                assert_eq!(m.mul_shoup(a, b, m.shoup(b)), want);
                assert!(m.mul_shoup_lazy(a, b, m.shoup(b)) < 2 * p);
                assert_eq!(
                    m.add(a, b) as u64,
                    (u64::from(a) + u64::from(b)) % u64::from(p)
                );
                assert_eq!(
                    m.sub(a, b) as u64,
                    (u64::from(a) + u64::from(p) - u64::from(b)) % u64::from(p)
                );
                assert_eq!((m.neg(a) as u64 + a as u64) % u64::from(p), 0);
            }
            assert_eq!(
                m.mul(m.inv(12345 % p).unwrap_or(1), 12345 % p),
                if 12345 % p == 0 { 0 } else { 1 }
            );
        }
    }

    #[test]
    fn bad_moduli_are_errors() {
        for p in [0, 1, 2, 4, 1 << 31, u32::MAX] {
            assert!(Modulus::new(p).is_err(), "{p}");
        }
    }
}
