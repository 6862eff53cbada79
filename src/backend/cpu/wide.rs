//! Lazy 64-bit accumulation shared by the dense and sparse linear layers: raw products
//! `x · w < p²` are summed in u64 lanes (one widening multiply and one add per term, which
//! vectorise), folded as `acc ≡ hi · (2^32 mod p) + lo` only as often as the prime's size
//! requires, and reduced once at the end with two Shoup products. Everything here is
//! `#[inline(always)]` and meant to be called inside a `pulp` dispatch, so the loops are
//! compiled for the SIMD level found at run time.

use super::lanes::{fold, shoup};
use crate::math::Modulus;

/// The constants of one prime for lazy accumulation.
#[derive(Clone, Copy)]
pub(super) struct Wide {
    p: u32,
    /// `2^32 mod p` and its Shoup companion.
    fold_c: u32,
    fold_cs: u32,
    /// Shoup companion of 1, `⌊2^32 / p⌋`: `lo mod p` for any word `lo`.
    one_s: u32,
    /// Products that may be added after a fold (or to a reduced start value) without overflow.
    pub(super) per_fold: usize,
}

impl Wide {
    #[inline(always)]
    pub(super) fn new(m: Modulus) -> Self {
        let p = m.value();
        let p64 = u64::from(p);
        let fold_c = ((1u64 << 32) % p64) as u32;
        // After a fold acc < 2^32 · p; this many products of (p-1)^2 then still fit in a u64.
        let per_fold = ((u64::MAX - (p64 << 32)) / ((p64 - 1) * (p64 - 1))).max(1) as usize;
        Self {
            p,
            fold_c,
            fold_cs: m.shoup(fold_c),
            one_s: m.shoup(1),
            per_fold,
        }
    }

    /// `2^32 mod p`, the constant of a fold (the SIMD row kernels').
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn fold_constant(&self) -> u32 {
        self.fold_c
    }

    /// `acc += x · w` lane by lane.
    #[inline(always)]
    pub(super) fn mac(acc: &mut [u64], xs: &[u32], w: u32) {
        let w = u64::from(w);
        for (a, &x) in acc.iter_mut().zip(xs) {
            *a += u64::from(x) * w;
        }
    }

    /// Brings every lane below `2^32 · p` without changing it mod p.
    #[inline(always)]
    pub(super) fn fold(&self, acc: &mut [u64]) {
        let c = u64::from(self.fold_c);
        for a in acc.iter_mut() {
            *a = (*a >> 32) * c + (*a & 0xffff_ffff);
        }
    }

    /// `out = (out + acc) mod p`, fully reduced, for reduced `out` and any u64 lanes.
    #[inline(always)]
    pub(super) fn reduce_add(&self, out: &mut [u32], acc: &[u64]) {
        let p = self.p;
        for (o, &a) in out.iter_mut().zip(acc) {
            let hi = shoup((a >> 32) as u32, self.fold_c, self.fold_cs, p);
            let lo = shoup(a as u32, 1, self.one_s, p);
            *o = fold(fold(hi + lo, p) + *o, p);
        }
    }

    /// `out = acc mod p`, fully reduced, for any u64 lanes.
    #[inline(always)]
    pub(super) fn reduce(&self, out: &mut [u32], acc: &[u64]) {
        let p = self.p;
        for (o, &a) in out.iter_mut().zip(acc) {
            let hi = shoup((a >> 32) as u32, self.fold_c, self.fold_cs, p);
            let lo = shoup(a as u32, 1, self.one_s, p);
            *o = fold(hi + lo, p);
        }
    }
}
