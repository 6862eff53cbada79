//! Sampling on the host, the CPU twins of `shaders/sampling.wgsl`: the uniform masks of seeded
//! encryption (ChaCha20 keyed by a seed, one stream per polynomial, two draws per word) and
//! polynomials of small signed coefficients; and uniform words from any generator (keys).

use crate::math::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// ChaCha20 keyed by `seed`, stream `index`: each ciphertext's mask and noise have their own
/// stream, so ciphertexts are drawn in parallel and the words do not depend on the thread
/// count.
pub(crate) fn stream(seed: &[u8; 32], index: u64) -> ChaCha20Rng {
    let mut rng = ChaCha20Rng::from_seed(*seed);
    rng.set_stream(index);
    rng
}

/// Uniform words modulo each limb's prime from `rng` into one polynomial of `ring`, limb
/// after limb (`rand`'s range sampling: keys and their masks, drawn on the host only).
pub(crate) fn fill_uniform(rng: &mut impl Rng, ring: &Ring, words: &mut [u32]) {
    for (l, row) in words.chunks_exact_mut(ring.degree()).enumerate() {
        let p = ring.modulus(l).value();
        row.iter_mut().for_each(|w| *w = rng.random_range(0..p));
    }
}

/// The uniform mask of stream `index` of `seed`: one polynomial of `ring` into `out`. Word k
/// of the polynomial (limb after limb) is [`below`] of draws 2k and 2k + 1 of the stream, so
/// every word's draws are known in advance and a device draws the words in parallel (one
/// ChaCha20 block gives eight), where rejecting draws would make a polynomial one thread's
/// sequential work.
pub(crate) fn seeded_mask_into(seed: &[u8; 32], index: u64, ring: &Ring, out: &mut [u32]) {
    let mut rng = stream(seed, index);
    // The draws in blocks (the generator fills them several ChaCha20 blocks at a time), the
    // same words as one draw after another.
    let mut draws = [0u32; 2 * DRAWN];
    for (l, row) in out.chunks_exact_mut(ring.degree()).enumerate() {
        let p = ring.modulus(l).value();
        for part in row.chunks_mut(DRAWN) {
            let draws = &mut draws[..2 * part.len()];
            rng.fill(draws);
            for (w, xy) in part.iter_mut().zip(draws.chunks_exact(2)) {
                *w = below(xy[0], xy[1], p);
            }
        }
    }
}

/// Mask words made from one fill of draws.
const DRAWN: usize = 512;

/// A number below `p` from two uniform words: `⌊(x·2³² + y)·p / 2⁶⁴⌋`, as the high word of
/// `x·p` plus the carry of its low word and the high word of `y·p` (Canon's method, which
/// `rand` uses with the second word drawn only when it can carry). Its distance from uniform
/// is below p/2⁶⁴ per word.
pub(crate) fn below(x: u32, y: u32, p: u32) -> u32 {
    let xp = u64::from(x) * u64::from(p);
    let yp_high = ((u64::from(y) * u64::from(p)) >> 32) as u32;
    let (_, carry) = (xp as u32).overflowing_add(yp_high);
    (xp >> 32) as u32 + u32::from(carry)
}

/// Small signed coefficients as the words of one polynomial of `ring` (coefficient domain)
/// into `out` (what `small_polys` in sampling.wgsl writes).
pub(crate) fn small_into(ring: &Ring, coeffs: &[i8], out: &mut [u32]) {
    for (l, row) in out.chunks_exact_mut(ring.degree()).enumerate() {
        let p = ring.modulus(l).value();
        for (w, &c) in row.iter_mut().zip(coeffs) {
            *w = if c >= 0 {
                c as u32
            } else {
                p - u32::from(c.unsigned_abs())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn below_is_the_high_word_of_the_wide_product() {
        let mut rng = stream(&[9; 32], 3);
        let primes = [3u32, 65_537, 1_073_479_681, 2_147_483_647, u32::MAX];
        for _ in 0..20_000 {
            let (x, y) = (rng.next_u32(), rng.next_u32());
            for (i, &p) in primes.iter().enumerate() {
                // The edges too: x and y at 0 and 2^32 − 1.
                let (x, y) = match i {
                    0 => (x, u32::MAX),
                    1 => (u32::MAX, y),
                    _ => (x, y),
                };
                let wide = ((u128::from(x) << 32 | u128::from(y)) * u128::from(p)) >> 64;
                let got = below(x, y, p);
                assert_eq!(u128::from(got), wide, "x {x} y {y} p {p}");
                assert!(got < p);
            }
        }
    }
}
