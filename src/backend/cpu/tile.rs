//! The inner kernel of the linear layers: `T` outputs that read the same inputs, summed over
//! [`LANES`] consecutive coefficients, with every sum held in registers across all the terms
//! (one load of each input's words feeds `T` products), in lazy 64-bit lanes ([`Wide`]).
//!
//! The inputs are read from a packed block (`stride` words per input, see `sparse.rs`):
//! read in place, inputs lie 32 KiB · limbs apart, every one of them in the same two sets of
//! the L2 cache, and the kernel ran at a third of the speed.
//!
//! Three versions compute the same lanes: AVX-512 and AVX2 through `pulp`'s safe intrinsics
//! (LLVM does not vectorise the register-held sums by itself), and a portable one for other
//! CPUs. A unit test holds them equal to u128 sums.

use super::wide::Wide;

/// Coefficients per sum held in registers: with 4 outputs, 8 AVX2 registers of sums.
pub(super) const LANES: usize = 8;

/// The instruction set the kernel runs with, found once per operation.
#[derive(Clone, Copy)]
pub(super) enum Kernel {
    /// A sum's [`LANES`] in one 512-bit register: half the instructions of AVX2 per term.
    #[cfg(target_arch = "x86_64")]
    Avx512(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    Avx2(pulp::x86::V3),
    Portable,
}

impl Kernel {
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return Kernel::Avx512(simd);
            }
            if let Some(simd) = pulp::x86::V3::try_new() {
                return Kernel::Avx2(simd);
            }
        }
        Kernel::Portable
    }

    /// Every kernel this CPU can run, the fastest first (for the tests that hold them equal).
    #[cfg(test)]
    fn available() -> Vec<Self> {
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            kernels.extend(pulp::x86::V4::try_new().map(Kernel::Avx512));
            kernels.extend(pulp::x86::V3::try_new().map(Kernel::Avx2));
        }
        kernels.push(Kernel::Portable);
        kernels
    }

    /// Runs `op` compiled with this kernel's instruction set enabled (so the intrinsics
    /// inside are inlined as instructions).
    #[inline(always)]
    pub(super) fn run<R>(self, op: impl pulp::NullaryFnOnce<Output = R>) -> R {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(simd) => simd.vectorize(op),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(simd) => simd.vectorize(op),
            Kernel::Portable => op.call(),
        }
    }
}

/// The terms of a tile of `T` outputs over one limb: the inputs they read and the weights,
/// `[term][output]`, of packed inputs `stride` words apart.
pub(super) struct TileTerms<'a> {
    pub(super) columns: &'a [usize],
    pub(super) weights: &'a [u32],
    pub(super) packed: &'a [u32],
    pub(super) stride: usize,
}

impl TileTerms<'_> {
    /// The `T` sums `bias[i] + Σ_e weights[e][i] · x_{columns[e]}[at + c]` for `c < LANES`,
    /// folded as often as `wide` requires, not yet reduced.
    #[inline(always)]
    pub(super) fn sums<const T: usize>(
        &self,
        kernel: Kernel,
        wide: &Wide,
        at: usize,
        bias: [u64; T],
    ) -> [[u64; LANES]; T] {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(simd) => self.sums_avx512(simd, wide, at, bias),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(simd) => self.sums_avx2(simd, wide, at, bias),
            Kernel::Portable => self.sums_portable(wide, at, bias),
        }
    }

    /// Portable twin of [`sums_avx2`](Self::sums_avx2).
    #[inline(always)]
    fn sums_portable<const T: usize>(
        &self,
        wide: &Wide,
        at: usize,
        bias: [u64; T],
    ) -> [[u64; LANES]; T] {
        let mut acc: [[u64; LANES]; T] = std::array::from_fn(|i| [bias[i]; LANES]);
        for (columns, weights) in self.chunks::<T>(wide) {
            for (&k, w) in columns.iter().zip(weights.chunks_exact(T)) {
                let x = &self.packed[k * self.stride + at..][..LANES];
                for (a, &w) in acc.iter_mut().zip(w) {
                    Wide::mac(a, x, w);
                }
            }
            if columns.len() == wide.per_fold {
                acc.iter_mut().for_each(|a| wide.fold(a));
            }
        }
        acc
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn sums_avx2<const T: usize>(
        &self,
        simd: pulp::x86::V3,
        wide: &Wide,
        at: usize,
        bias: [u64; T],
    ) -> [[u64; LANES]; T] {
        use core::arch::x86_64::{__m128i, __m256i};
        let avx2 = simd.avx2;
        let splat = |v: u64| -> __m256i { pulp::cast([v; 4]) };
        let (fold_c, low) = (splat(u64::from(wide.fold_constant())), splat(0xffff_ffff));
        let mut acc: [[__m256i; 2]; T] = std::array::from_fn(|i| [splat(bias[i]); 2]);
        for (columns, weights) in self.chunks::<T>(wide) {
            for (&k, w) in columns.iter().zip(weights.chunks_exact(T)) {
                let x = &self.packed[k * self.stride + at..][..LANES];
                let x0: __m128i = pulp::cast([x[0], x[1], x[2], x[3]]);
                let x1: __m128i = pulp::cast([x[4], x[5], x[6], x[7]]);
                let (x0, x1) = (
                    avx2._mm256_cvtepu32_epi64(x0),
                    avx2._mm256_cvtepu32_epi64(x1),
                );
                for (a, &w) in acc.iter_mut().zip(w) {
                    let w = splat(u64::from(w));
                    a[0] = avx2._mm256_add_epi64(a[0], avx2._mm256_mul_epu32(x0, w));
                    a[1] = avx2._mm256_add_epi64(a[1], avx2._mm256_mul_epu32(x1, w));
                }
            }
            if columns.len() == wide.per_fold {
                // acc ≡ hi · (2^32 mod p) + lo, as `Wide::fold`.
                for a in acc.iter_mut().flatten() {
                    let hi = avx2._mm256_srli_epi64::<32>(*a);
                    let lo = avx2._mm256_and_si256(*a, low);
                    *a = avx2._mm256_add_epi64(avx2._mm256_mul_epu32(hi, fold_c), lo);
                }
            }
        }
        acc.map(|a| {
            let [h0, h1]: [[u64; 4]; 2] = pulp::cast(a);
            std::array::from_fn(|c| if c < 4 { h0[c] } else { h1[c - 4] })
        })
    }

    /// [`sums_avx2`](Self::sums_avx2) with each sum's lanes in one 512-bit register.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn sums_avx512<const T: usize>(
        &self,
        simd: pulp::x86::V4,
        wide: &Wide,
        at: usize,
        bias: [u64; T],
    ) -> [[u64; LANES]; T] {
        use core::arch::x86_64::{__m256i, __m512i};
        let avx = simd.avx512f;
        let splat = |v: u64| -> __m512i { pulp::cast([v; LANES]) };
        let (fold_c, low) = (splat(u64::from(wide.fold_constant())), splat(0xffff_ffff));
        let mut acc: [__m512i; T] = std::array::from_fn(|i| splat(bias[i]));
        for (columns, weights) in self.chunks::<T>(wide) {
            for (&k, w) in columns.iter().zip(weights.chunks_exact(T)) {
                let x: &[u32; LANES] = self.packed[k * self.stride + at..][..LANES]
                    .try_into()
                    .expect("LANES words");
                let x = avx._mm512_cvtepu32_epi64(pulp::cast::<[u32; LANES], __m256i>(*x));
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a = avx._mm512_add_epi64(*a, avx._mm512_mul_epu32(x, splat(u64::from(w))));
                }
            }
            if columns.len() == wide.per_fold {
                // acc ≡ hi · (2^32 mod p) + lo, as `Wide::fold`.
                for a in &mut acc {
                    let hi = avx._mm512_srli_epi64::<32>(*a);
                    let lo = avx._mm512_and_si512(*a, low);
                    *a = avx._mm512_add_epi64(avx._mm512_mul_epu32(hi, fold_c), lo);
                }
            }
        }
        acc.map(pulp::cast)
    }

    /// The terms in runs of at most `wide.per_fold`: the products a sum takes between folds.
    #[inline(always)]
    fn chunks<const T: usize>(&self, wide: &Wide) -> impl Iterator<Item = (&[usize], &[u32])> {
        self.columns
            .chunks(wide.per_fold)
            .zip(self.weights.chunks(wide.per_fold * T))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::ntt_primes;
    use rand::{Rng, SeedableRng};

    /// Every kernel this CPU runs against u128 sums, for a 24-bit prime (no folds) and a 31-bit one (a fold
    /// every two terms), 1–4 outputs, with repeated columns.
    #[test]
    fn every_kernel_sums_equal_u128_sums() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for bits in [24, 31] {
            let m =
                crate::math::Modulus::new(ntt_primes(1 << 10, bits, 1, &[]).unwrap()[0]).unwrap();
            let (p, wide) = (m.value(), Wide::new(m));
            let (inputs, stride, terms) = (9, 11, 37);
            let packed: Vec<u32> = (0..inputs * stride)
                .map(|_| rng.random_range(0..p))
                .collect();
            let columns: Vec<usize> = (0..terms).map(|_| rng.random_range(0..inputs)).collect();
            let weights: Vec<u32> = (0..terms * 4).map(|_| rng.random_range(0..p)).collect();
            let bias: [u64; 4] = std::array::from_fn(|_| u64::from(rng.random_range(0..p)));
            let at = 2;
            let want = |t: usize, i: usize, c: usize| -> u64 {
                let mut s = u128::from(bias[i]);
                for (e, &k) in columns.iter().enumerate() {
                    s += u128::from(packed[k * stride + at + c]) * u128::from(weights[e * t + i]);
                }
                (s % u128::from(p)) as u64
            };
            fn check<const T: usize>(
                terms: &TileTerms,
                wide: &Wide,
                at: usize,
                bias: [u64; 4],
                p: u32,
                want: &dyn Fn(usize, usize, usize) -> u64,
            ) {
                let b: [u64; T] = std::array::from_fn(|i| bias[i]);
                for kernel in Kernel::available() {
                    let got = kernel.run(|| terms.sums::<T>(kernel, wide, at, b));
                    for (i, lanes) in got.iter().enumerate() {
                        for (c, &v) in lanes.iter().enumerate() {
                            assert_eq!(
                                v % u64::from(p),
                                want(T, i, c),
                                "T {T} output {i} lane {c}"
                            );
                        }
                    }
                }
            }
            for t in 1..=4 {
                let terms = TileTerms {
                    columns: &columns,
                    weights: &weights[..terms * t],
                    packed: &packed,
                    stride,
                };
                match t {
                    1 => check::<1>(&terms, &wide, at, bias, p, &want),
                    2 => check::<2>(&terms, &wide, at, bias, p, &want),
                    3 => check::<3>(&terms, &wide, at, bias, p, &want),
                    _ => check::<4>(&terms, &wide, at, bias, p, &want),
                }
            }
        }
    }
}
